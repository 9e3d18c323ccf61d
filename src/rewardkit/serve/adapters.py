"""The other protocols RL stacks speak, each a thin translation onto the server's one scoring path.

Every adapter here turns a client's request into ``(prompts, completions, columns)`` and the scored
:class:`RewardOutput` back into the body that client reads; the endpoints in ``serve.app`` run the
samples through the same micro-batched ``run(...)`` as ``/v1/score`` (deadlines, ``finite_scores``,
503 / 504 all apply). The wire formats were read from each client's own code:

* **slime** ``remote_rm`` (``slime/rollout/rm_hub/__init__.py``, slime 0.3.1, commit 624b824a) posts
  one sample per request, ``{"prompt": sample.prompt, "response": sample.response, "label": sample.label}``,
  to ``--rm-url`` as given (the full URL), and keeps ``await resp.json()`` as ``sample.reward``: with
  no ``--reward-key`` that must be a bare number (``Sample.get_reward_value``, ``slime/utils/types.py``).
  ``sample.prompt`` is text (chat-templated when slime applies the template) or a list of messages.
* **NeMo Gym** resources server ``POST /verify`` (``nemo_gym/base_resources_server.py``, NeMo Gym 0.5.1,
  commit 07d6b0d0): ``BaseVerifyRequest`` is the task row (``responses_create_params`` plus task fields
  such as ``question`` and ``expected_answer`` in ``math_with_judge``) with ``response``, the policy's
  Responses API object; ``BaseVerifyResponse`` is the request echoed back plus ``reward`` (a float),
  and ``BaseMultiRewardVerifyResponse`` adds ``reward_components``. The simple agent
  (``responses_api_agents/simple_agent/app.py``) posts ``body.model_dump() | {"response": ...}`` and
  validates the answer as a ``BaseVerifyResponse``, so the echo is required. The assistant's text is
  the ``output_text`` parts of the ``message`` items of ``response.output``, joined, as
  ``resources_servers/math_with_judge/app.py`` reads it.
* **vLLM** ``POST /classify`` (``vllm/entrypoints/pooling/classify/protocol.py`` and
  ``pooling/base/protocol.py``, vLLM commit dff4cad3): the request has ``model``, and ``input`` (text or
  a list of texts) or ``messages`` (a chat); the answer is ``{"id", "object": "list", "created",
  "model", "data": [{"index", "label", "probs", "num_classes"}], "usage"}``. verl's reward loop
  (``verl/experimental/reward_loop/reward_loop.py``, verl 0.8.0.dev, commit b178a3cd,
  ``compute_score_disrm``) posts ``{"model", "input": <the reward model's chat template applied to
  prompt + response>, "activation": false}`` per sample and reads ``data[-1]["probs"][-1]``.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field

from ..protocol import message_text
from ..types import RewardOutput
from .schemas import COLUMN_NAME, RESERVED_COLUMNS, _finite, _jsonable


class AdapterError(ValueError):
    """A request that fits the client's schema but cannot be turned into samples; ``field`` names where."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def plain_chat(messages: list[dict[str, Any]], field: str) -> list[dict[str, str]]:
    """Client messages as ``{"role", "content"}`` text messages (content parts' text joined); a message
    without a role is an :class:`AdapterError` naming ``field[i]``."""
    out = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise AdapterError(f"{field}[{i}]", f"{field}[{i}]: a message needs a 'role'")
        out.append({"role": role, "content": message_text(m.get("content"))})
    return out


def _sample_extras(out: RewardOutput, i: int) -> dict[str, Any]:
    return {str(k): _jsonable(v[i]) for k, v in out.extras.items() if i < len(v)}


# --------------------------------------------------------------------------------------------- slime
class SlimeRequest(BaseModel):
    """slime's ``remote_rm`` payload: one sample. ``label`` goes to the reward as the column named by
    ``--labels-column`` (default ``answer``), as OpenRLHF's ``labels`` do."""

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "examples": [{"prompt": "What is 2+2?", "response": "\\boxed{4}", "label": "4"}]})

    prompt: Union[str, list[dict[str, Any]]]
    response: str
    label: Any = None


def slime_sample(req: SlimeRequest, labels_column: str) -> tuple[Any, str, dict[str, list[Any]]]:
    prompt = req.prompt if isinstance(req.prompt, str) else plain_chat(req.prompt, "prompt")
    columns = {labels_column: [req.label]} if req.label is not None else {}
    return prompt, req.response, columns


# ------------------------------------------------------------------------------------------ NeMo Gym
class NemoCreateParams(BaseModel):
    """The part of NeMo Gym's ``responses_create_params`` the prompt is read from (the rest is echoed)."""

    model_config = ConfigDict(extra="allow")

    input: Union[str, list[dict[str, Any]]]
    instructions: str | None = None


class NemoResponse(BaseModel):
    """The part of the policy's Responses API object the completion is read from (the rest is echoed)."""

    model_config = ConfigDict(extra="allow")

    output: list[dict[str, Any]]


class NemoVerifyRequest(BaseModel):
    """NeMo Gym's ``BaseVerifyRequest``: the task row plus the policy's ``response``. Task fields whose
    names are Python identifiers (``expected_answer``, ``question``...) become per-sample columns;
    ``expected_answer`` is also passed as the ``--labels-column`` column (default ``answer``) unless
    the row has that field itself."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "responses_create_params": {"input": [{"role": "user", "content": "What is 2+2? Put the answer in \\boxed{}."}]},
        "response": {"output": [{"type": "message", "role": "assistant",
                                 "content": [{"type": "output_text", "text": "\\boxed{4}", "annotations": []}]}]},
        "expected_answer": "4"}]})

    responses_create_params: NemoCreateParams
    response: NemoResponse


#: the role chat templates know for the Responses API's ``developer`` messages
_ROLES = {"developer": "system"}


def nemo_prompt(params: NemoCreateParams) -> Any:
    """The prompt of a Responses API request: ``input`` text, or its message items as a chat (function
    calls, their outputs and reasoning items carry no prompt text and are left out), with
    ``instructions`` as a first system message."""
    system = [{"role": "system", "content": params.instructions}] if params.instructions else []
    if isinstance(params.input, str):
        return system + [{"role": "user", "content": params.input}] if system else params.input
    chat = []
    for i, item in enumerate(params.input):
        if item.get("type", "message") != "message":
            continue
        role = item.get("role")
        if not isinstance(role, str) or not role:
            raise AdapterError(f"responses_create_params.input[{i}]", f"responses_create_params.input[{i}]: a message needs a 'role'")
        chat.append({"role": _ROLES.get(role, role), "content": message_text(item.get("content"))})
    chat = system + chat
    return chat or ""


def nemo_completion(response: NemoResponse) -> str:
    """What the assistant wrote: the ``output_text`` parts of the ``message`` items, joined (tool calls
    and reasoning items are not part of it)."""
    texts = []
    for item in response.output:
        if item.get("type") != "message":
            continue
        for part in item.get("content") or []:
            if isinstance(part, dict) and part.get("type") == "output_text":
                texts.append(str(part.get("text") or ""))
    return "".join(texts)


def nemo_columns(req: NemoVerifyRequest, labels_column: str) -> dict[str, list[Any]]:
    """Task fields as one-sample columns; names that cannot be columns (not identifiers) are left out."""
    fields = dict(req.model_extra or {})
    columns = {k: [v] for k, v in fields.items() if COLUMN_NAME.match(k) and k not in RESERVED_COLUMNS}
    if "expected_answer" in fields and labels_column not in columns:
        columns[labels_column] = [fields["expected_answer"]]
    return columns


def to_nemo_verify(req: NemoVerifyRequest, out: RewardOutput, unscored: float | None) -> dict[str, Any]:
    """``BaseVerifyResponse``: the request echoed, ``reward`` (the score, or ``unscored`` for a sample
    the reward could not score), ``reward_components`` (each named objective of a multi-objective
    reward, as ``BaseMultiRewardVerifyResponse``), ``unscored`` and ``unscored_reason``, and the
    reward's per-sample extras in ``reward_extras``."""
    score = _finite(out.scores[0])
    reasons = out.extras.get("reason") or [None]
    body = req.model_dump()
    body["reward"] = score if score is not None else unscored
    if out.vector is not None and out.dims:
        body["reward_components"] = {str(d): (_finite(v) if score is not None else unscored)
                                     for d, v in zip(out.dims, out.vector[0])}
    body["unscored"] = score is None
    body["unscored_reason"] = None if score is not None else (reasons[0] or "the reward returned no score")
    body["reward_extras"] = _sample_extras(out, 0)
    return body


# ------------------------------------------------------------------------------------ vLLM /classify
class ClassifyRequest(BaseModel):
    """vLLM's ``/classify`` request: ``input`` (text, or a list of texts: one sample each) or ``messages``
    (one chat: one sample). vLLM's other fields (``activation``, ``use_activation``,
    ``truncate_prompt_tokens``, ``add_special_tokens``, ``priority``, ``request_id``...) are accepted and
    have no effect: the reward decides the scale of its score."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "rm", "input": "<|user|>What is 2+2?<|assistant|>4", "activation": False}]})

    model: str | None = None
    input: Union[str, list[Any], None] = None
    messages: list[dict[str, Any]] | None = Field(default=None, min_length=1)


def classify_samples(req: ClassifyRequest) -> tuple[list[Any], list[Any]]:
    """(prompts, completions). An ``input`` text is the whole conversation the caller already rendered
    (verl applies the reward model's chat template to prompt + response): it is the completion, after
    an empty prompt, so serve with ``--chat-template off`` to score exactly that text. ``messages``
    are split at the final assistant message: that message is the completion, the ones before it the
    prompt (rendered with the reward's own chat template). A request that has neither, or a text that
is not text (token ids), is an :class:`AdapterError`."""
    if (req.input is None) == (req.messages is None):
        raise AdapterError("input", "give either 'input' (text or a list of texts) or 'messages' (a chat)")
    if req.messages is not None:
        chat = plain_chat(req.messages, "messages")
        if chat[-1]["role"] != "assistant":
            raise AdapterError("messages", "the last message must be the assistant's response (the text to score)")
        if len(chat) < 2:
            raise AdapterError("messages", "'messages' needs the conversation before the assistant's response")
        return [chat[:-1]], [chat[-1]["content"]]
    texts = [req.input] if isinstance(req.input, str) else req.input
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise AdapterError(f"input[{i}]",
                             "only text inputs are served (token ids and multimodal inputs are not): send the text")
    return [""] * len(texts), list(texts)


def to_classify(out: RewardOutput, model: str, unscored: float | None) -> dict[str, Any]:
    """vLLM's ``ClassificationResponse``. ``probs`` ends with the reward's score (what verl reads as
    ``probs[-1]``); a multi-objective reward puts its objectives (``dims`` order) before it. ``label`` is
    ``null`` (a reward has no class names) and ``usage`` counts no tokens (nothing here tokenizes)."""
    data = []
    width = len(out.dims) if out.vector is not None and out.dims else 0
    for i, s in enumerate(out.scores):
        score = _finite(s)
        if score is None:
            probs = [unscored] * (width + 1)
        else:
            probs = ([_finite(v) for v in out.vector[i]] if width else []) + [score]
        data.append({"index": i, "label": None, "probs": probs, "num_classes": len(probs)})
    return {"id": f"classify-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()), "model": model, "data": data,
            "usage": {"prompt_tokens": 0, "total_tokens": 0, "completion_tokens": 0, "prompt_tokens_details": None}}

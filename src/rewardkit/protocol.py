"""The one reward protocol: batch-first, and callable the way TRL's GRPO calls a reward function."""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import json
import time
from typing import Any, Callable, Iterator, Literal, Protocol, Sequence, runtime_checkable

from .images import IMAGE_COLUMNS, count_images, image_sides, is_parts
from .types import Completion, Prompt, RewardOutput


@runtime_checkable
class Reward(Protocol):
    name: str

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput: ...

    def __call__(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **kwargs: Any) -> list[float | None]: ...


class MissingColumnError(KeyError):
    """A reward needs a dataset column that the caller did not pass."""

    def __init__(self, reward: str, column: str, available: Sequence[str]):
        self.reward, self.column = reward, column
        have = ", ".join(sorted(available)) or "none"
        super().__init__(f"reward {reward!r} needs the column {column!r}, which was not given (columns given: {have})")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def message_text(content: Any) -> str:
    """The text of a message's ``content``: a string, ``None`` (an assistant turn that only calls tools)
    as "", or a list of content parts whose ``text`` parts are joined (images and other parts carry no text)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return "".join(message_text(p) for p in content)
    if isinstance(content, dict):  # a content part: text parts ("text", and the Responses API's "input_text"/"output_text")
        kind = str(content.get("type", "text"))
        return str(content.get("text") or "") if kind == "text" or kind.endswith("_text") else ""
    return str(content)


def completion_text(completion: Any) -> str:
    """Whole text of a completion: plain text, pre-split steps (joined by newlines), or a TRL
    conversational completion (a list of messages). Of a conversational completion the reward reads what
    the assistant wrote: the assistant messages' text, joined; tool calls and the tool results TRL appends
    (``{"role": "tool", ...}``) are not part of it, and an assistant message with ``content: None`` adds
    nothing (never the text "None"). Of a list of content parts (a generated image with or without a
    caption) it is the text parts' text."""
    if isinstance(completion, str):
        return completion
    if is_parts(completion):
        return message_text(list(completion))
    if isinstance(completion, (list, tuple)):
        if all(isinstance(c, dict) for c in completion):
            roles = {m.get("role", "assistant") for m in completion}
            if roles - {"assistant", "tool"}:
                raise ValueError(f"a conversational completion holds assistant (and tool) messages, got role(s) {sorted(roles - {'assistant', 'tool'})}")
            return "".join(message_text(m.get("content")) for m in completion if m.get("role", "assistant") == "assistant")
        if all(isinstance(c, str) for c in completion):
            return "\n".join(completion)
    raise TypeError(f"a completion must be str, list[str] (steps) or a list of messages, got {type(completion).__name__}")


_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("rewardkit_deadline", default=None)


@contextlib.contextmanager
def work_deadline(at: float | None) -> Iterator[None]:
    """Within this block, rewards that can stop early (rules, the code sandbox) leave samples they
    cannot finish by ``at`` (a ``time.monotonic()`` instant) unscored, with the reason, instead of
    running on. Nested deadlines keep the earlier one. The server sets it per request."""
    current = _DEADLINE.get()
    token = _DEADLINE.set(current if at is None else at if current is None else min(at, current))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def time_left() -> float | None:
    """Seconds left before the :func:`work_deadline` in force (``None``: no deadline)."""
    at = _DEADLINE.get()
    return None if at is None else at - time.monotonic()


def turn_text(completion: Any) -> str:
    """The whole turn of a conversational completion as text (``transform:turn``): each message on
    its own line: what the assistant wrote, each tool call as ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``
    and each tool result as ``<tool_response>...</tool_response>``. Other completions as :func:`completion_text`."""
    if not (isinstance(completion, (list, tuple)) and completion and all(isinstance(c, dict) for c in completion)):
        return completion_text(completion)
    completion_text(completion)  # the same validation of roles
    lines: list[str] = []
    for m in completion:
        if m.get("role", "assistant") == "tool":
            lines.append(f"<tool_response>{message_text(m.get('content'))}</tool_response>")
            continue
        text = message_text(m.get("content"))
        if text:
            lines.append(text)
        for call in m.get("tool_calls") or ():
            fn = call.get("function", call) if isinstance(call, dict) else {}
            args = fn.get("arguments")
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    pass
            lines.append("<tool_call>" + json.dumps({"name": fn.get("name"), "arguments": args}, ensure_ascii=False, sort_keys=True) + "</tool_call>")
    return "\n".join(lines)


#: keywords that TRL's GRPOTrainer passes to every reward function as call context, not data
TRAINER_CONTEXT = ("trainer_state", "log_extra", "log_metric", "environments")


def sample_columns(columns: dict[str, Any], n: int) -> dict[str, list[Any]]:
    """The per-sample data columns among a call's keywords: sequences (lists, tuples, arrays) with one value per sample.
    Everything else a trainer passes (TRL's ``trainer_state``, the ``log_extra`` / ``log_metric``
    callbacks, an ``environments`` list) is call context and left out; a list of the wrong length is an
    error naming the column."""
    out: dict[str, list[Any]] = {}
    for key, values in columns.items():
        if key in TRAINER_CONTEXT or values is None or isinstance(values, (str, bytes, dict)) or callable(values):
            continue
        if not (hasattr(values, "__len__") and hasattr(values, "__getitem__")):  # a TrainerState, a number: not a column
            continue
        if len(values) != n:
            raise ValueError(f"column {key!r} has {len(values)} values for {n} samples")
        out[key] = list(values)
    return out


def group_keys(prompts: Sequence[Prompt], group_ids: Sequence[Any] | None = None) -> list[str]:
    """The group of each sample, for rewards that compare samples with each other: its ``group_id``
    when it has one, else its prompt (as GRPO groups the completions of one prompt). The two kinds of
    key never collide."""
    ids = list(group_ids) if group_ids is not None else [None] * len(prompts)
    if len(ids) != len(prompts):
        raise ValueError(f"column 'group_id' has {len(ids)} values for {len(prompts)} samples")
    return ["id:" + json.dumps(g, sort_keys=True) if g is not None
            else "prompt:" + (p if isinstance(p, str) else json.dumps(p, sort_keys=True)) for g, p in zip(ids, prompts)]


def groups_of(prompts: Sequence[Prompt], group_ids: Sequence[Any] | None = None) -> dict[str, list[int]]:
    """Sample indices per group (:func:`group_keys`), groups in order of their first sample."""
    out: dict[str, list[int]] = {}
    for i, key in enumerate(group_keys(prompts, group_ids)):
        out.setdefault(key, []).append(i)
    return out


GroupBy = Literal["prompt", "record"]


class BaseReward:
    """Small base class: subclasses implement ``score``; ``__call__`` returns ``score(...).scores``.

    Capabilities are declared here, once, so the server and the evaluator never guess from a reward's
    kind or attribute names:

    * ``group_by``: ``None`` when every sample is scored on its own (batch mates never change a score,
      pinned by tests/invariant). Otherwise the reward compares the samples of a group
      (:func:`group_keys`: the ``group_id`` column, else the prompt): ``"prompt"`` as a GRPO group does,
      ``"record"`` when an evaluation should make each record's own completions one group (the runner
      passes the record id as ``group_id``). Such rewards are never merged across server requests.
    * :meth:`children`: the rewards it runs inside (members, inner reward, models); compositions
      inherit their children's capabilities through :func:`walk`.
    * :meth:`eval_summary`: statistics it adds to an evaluation's results (a judge's parse failures and
      position bias, a verifier's false-positive probes).
    * :meth:`step_metrics`: what it adds to a trainer's logs at every call (TRL's ``log_metric``: the
      unscored share, a judge's position consistency, a gate's source shares).
    * ``members_in_vector``: ``True`` when ``vector`` holds independent estimates of the same quantity
      (an ensemble's members), so their spread is an uncertainty estimate (``eval --diagnose``); the
      objectives of a multi-objective head measure different things and are not.
    * ``reads_images``: it scores the images a sample carries (image parts in the prompt or the
      completion, the ``images`` / ``image`` column). A reward that does not (the default) never
      scores such a sample by its text alone: ``score`` gives it ``None`` with the reason "reward does
      not read images" (and its ``image_hint``, when it has one: what would make it read them) and
      ``applicable: False`` (:func:`image_refusals`, applied to every subclass's ``score``). A
      composition passes samples on when a reward inside it reads images.
    * ``reads_prompt``: the score depends on the prompt. A reward that reads only the completion's
      text and gold columns (rules, length) scores an image prompt's text answer: only images in the
      completion are refused.

    ``__name__`` is set because TRL's GRPOTrainer logs reward functions by ``__name__``.
    """

    name: str = "reward"
    group_by: GroupBy | None = None
    members_in_vector: bool = False
    reads_images: bool = False
    reads_prompt: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("score")
        if callable(own) and not getattr(own, "_image_gate", False):
            cls.score = _image_gate(own)  # type: ignore[method-assign]

    def children(self) -> list[Any]:
        return []

    def eval_summary(self, records: Sequence[Any], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Extra entries for an evaluation's ``results.json`` from the scored ``rows`` (``rewardkit score``
        rows: per-sample extras under ``*_details``) and the evaluated ``records``."""
        return {}

    def step_metrics(self, out: RewardOutput) -> dict[str, float]:
        """Scalars for a trainer's logs from one batch's output (named ``<reward>/<key>`` there)."""
        return {"unscored": sum(s is None for s in out.scores) / len(out.scores)} if out.scores else {}

    @property
    def __name__(self) -> str:  # type: ignore[override]
        return self.name

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        raise NotImplementedError

    def __call__(self, prompts: Sequence[Prompt] | None = None, completions: Sequence[Completion] | None = None, **kwargs: Any) -> list[float | None]:
        if prompts is None or completions is None:
            raise TypeError(f"{self.name}: call as reward(prompts=..., completions=..., **columns)")
        out = self.score(prompts, completions, **kwargs)
        log = kwargs.get("log_metric")  # TRL's GRPOTrainer passes this callback: our statistics join its logs
        if callable(log):
            for key, value in self.step_metrics(out).items():
                log(f"{self.__name__}/{key}", float(value))
        return out.scores

    def _check_lengths(self, prompts: Sequence[Any], completions: Sequence[Any]) -> None:
        if len(prompts) != len(completions):
            raise ValueError(f"{self.name}: got {len(prompts)} prompts but {len(completions)} completions")

    def require_column(self, columns: dict[str, Any], column: str, n: int) -> list[Any]:
        """The column ``column`` as a list of ``n`` values, or a clear error naming it."""
        if column not in columns or columns[column] is None:
            raise MissingColumnError(self.name, column, list(columns))
        values = list(columns[column])
        if len(values) != n:
            raise ValueError(f"{self.name}: column {column!r} has {len(values)} values for {n} samples")
        return values

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def walk(reward: Any) -> Iterator[Any]:
    """The reward and every reward (or model wrapper) below it, each once, parents first. A reward that
    does not derive from :class:`BaseReward` may declare the same capabilities (``group_by``,
    ``children()``, ``eval_summary()``); one that declares none (a plain function) is a leaf that scores
    each sample alone."""
    seen: set[int] = set()
    todo = [reward]
    while todo:
        node = todo.pop(0)
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        children = getattr(node, "children", None)
        if callable(children) and not hasattr(node, "named_parameters"):  # a torch module's children are layers
            todo.extend(c for c in children() if c is not None)


def group_by(reward: Any) -> GroupBy | None:
    """How the reward (or a reward inside it) groups samples: ``"record"`` wins over ``"prompt"``;
    ``None`` when every sample is scored alone."""
    found = {getattr(n, "group_by", None) for n in walk(reward)}
    if found - {None, "prompt", "record"}:
        raise ValueError(f"group_by must be None, 'prompt' or 'record', got {sorted(map(str, found - {None}))}")
    return "record" if "record" in found else "prompt" if "prompt" in found else None


def reads_images(reward: Any) -> bool:
    """True when the reward, or a reward inside it, declares ``reads_images``."""
    return any(getattr(n, "reads_images", False) is True for n in walk(reward))


def image_refusals(reward: Any, prompts: Sequence[Any], completions: Sequence[Any], columns: dict[str, Any]) -> list[str | None] | None:
    """Per sample, why ``reward`` will not score it because of its images (``None``: it will); ``None``
    for the whole batch when every sample may go to the reward (the common, text-only case)."""
    if len(prompts) != len(completions) or reads_images(reward):
        return None
    image_cols = [columns.get(c) for c in IMAGE_COLUMNS]
    image_cols = [c for c in image_cols if c is not None and not isinstance(c, (str, bytes)) and hasattr(c, "__len__") and len(c) == len(prompts)]
    if not image_cols and all(isinstance(p, str) for p in prompts) and all(isinstance(c, str) for c in completions):
        return None
    reads_prompt = any(getattr(n, "reads_prompt", True) for n in walk(reward) if hasattr(n, "score"))
    hint = next((h for h in (getattr(n, "image_hint", None) for n in walk(reward)) if h), None)
    tail = f"; {hint}" if hint else ""
    out: list[str | None] = []
    for i, (p, c) in enumerate(zip(prompts, completions)):
        in_prompt, in_completion = image_sides(p, c, next((col[i] for col in image_cols if col[i] is not None), None))
        if in_completion:
            out.append(f"reward does not read images (the completion is or holds {count_images(c)} image(s)){tail}")
        elif in_prompt and reads_prompt:
            out.append(f"reward does not read images (the prompt carries images); it does not score the text alone{tail}")
        else:
            out.append(None)
    return out if any(r is not None for r in out) else None


def _image_gate(score: Callable[..., RewardOutput]) -> Callable[..., RewardOutput]:
    """``score`` that hands a reward only the samples it can read (:func:`image_refusals`); the others
    come back ``None`` with the reason, in place."""

    @functools.wraps(score)
    def gated(self: Any, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        refused = image_refusals(self, prompts, completions, columns)
        if refused is None:
            return score(self, prompts, completions, **columns)
        return score_kept(score, self, prompts, completions, columns, refused)

    gated._image_gate = True  # type: ignore[attr-defined]
    return gated


def score_kept(score: Callable[..., RewardOutput], reward: Any, prompts: Sequence[Prompt], completions: Sequence[Completion],
               columns: dict[str, Any], refused: list[str | None]) -> RewardOutput:
    """``score`` on the samples not refused (their per-sample columns cut to match), the refused ones
    ``None`` with their reason, in input order."""
    keep = [i for i, r in enumerate(refused) if r is None]
    per_sample = sample_columns(columns, len(prompts))
    sub = {**columns, **{k: [v[i] for i in keep] for k, v in per_sample.items()}}
    inner = score(reward, [prompts[i] for i in keep], [completions[i] for i in keep], **sub) if keep else None
    return scatter_output(inner, keep, refused)


def scatter_output(inner: RewardOutput | None, keep: list[int], refused: list[str | None]) -> RewardOutput:
    """The output of the kept samples (indices ``keep``) put back in place among the refused ones
    (``None`` scores, their reason in ``extras["reason"]``, ``applicable: False``)."""
    n = len(refused)
    if inner is None:
        return RewardOutput(scores=[None] * n, extras={"reason": list(refused), "applicable": [False] * n})
    if len(inner.scores) != len(keep):
        raise ValueError(f"the reward returned {len(inner.scores)} scores for {len(keep)} samples")

    def place(values: list[Any], empty: Any) -> list[Any]:
        out = [empty() if callable(empty) else empty for _ in range(n)]
        for j, i in enumerate(keep):
            out[i] = values[j]
        return out

    width = len(inner.dims) or (len(inner.vector[0]) if inner.vector else 0)
    extras = {k: place(list(v), None) for k, v in inner.extras.items()}
    reasons = extras.get("reason") or [None] * n
    extras["reason"] = [r if r is not None else reasons[i] for i, r in enumerate(refused)]
    applicable = extras.get("applicable") or [None] * n
    extras["applicable"] = [False if r is not None else (True if applicable[i] is None else applicable[i]) for i, r in enumerate(refused)]
    return RewardOutput(scores=place(list(inner.scores), None),
                        steps=None if inner.steps is None else place(list(inner.steps), list),
                        vector=None if inner.vector is None else place(list(inner.vector), lambda: [None] * width),
                        dims=inner.dims, extras=extras)


def eval_summary(reward: Any, records: Sequence[Any], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The reward's :meth:`BaseReward.eval_summary` (nothing for a reward that declares none)."""
    summary = getattr(reward, "eval_summary", None)
    return summary(records, rows) if callable(summary) else {}


class FunctionReward(BaseReward):
    """Wraps a plain function ``fn(prompts, completions, **columns) -> list[float | None]`` (or a
    ``RewardOutput``) into a Reward. Keyword-only parameters without defaults are required columns.
    A function that reads images says so (``reads_images=True``, or a ``reads_images = True``
    attribute on the function, which a ``py:`` spec can carry)."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, *, reads_images: bool | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function")
        self.reads_images = bool(getattr(fn, "reads_images", False) if reads_images is None else reads_images)
        sig = inspect.signature(fn)
        self._required = [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
        self._accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        self._named = {p.name for p in sig.parameters.values() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        self.__doc__ = fn.__doc__

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        for col in self._required:
            self.require_column(columns, col, len(prompts))
        kwargs = columns if self._accepts_any else {k: v for k, v in columns.items() if k in self._named}
        result = self.fn(list(prompts), list(completions), **kwargs)
        if isinstance(result, RewardOutput):
            out = result
        else:
            out = RewardOutput(scores=[None if s is None else float(s) for s in result])
        if len(out.scores) != len(prompts):
            raise ValueError(f"{self.name}: returned {len(out.scores)} scores for {len(prompts)} samples")
        return out


def reward(fn: Callable[..., Any] | None = None, *, name: str | None = None, reads_images: bool | None = None) -> Any:
    """Decorator: turn a plain function into a Reward (``@reward``, ``@reward(name=...)``,
    ``@reward(reads_images=True)``)."""
    if fn is None:
        return lambda f: FunctionReward(f, name=name, reads_images=reads_images)
    return FunctionReward(fn, name=name, reads_images=reads_images)

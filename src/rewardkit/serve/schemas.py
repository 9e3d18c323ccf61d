"""Wire format of the reward server, shared by the server (``serve.app``) and the client
(``rewards.remote.RemoteReward``) so the two cannot drift apart.

Request bodies are pydantic models (they also make the OpenAPI spec); responses are plain dicts built
by :func:`output_to_json` and read back by :func:`output_from_json`, so a score that leaves a reward
as a Python float arrives as the same float (JSON floats round-trip exactly).
"""
from __future__ import annotations

import math
import re
import reprlib
from dataclasses import replace
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..types import RewardOutput

API_VERSION = "v1"
#: environment variable holding the bearer token (read by ``rewardkit serve`` and by RemoteReward)
TOKEN_ENV = "REWARDKIT_API_TOKEN"

#: an extra column's name: a Python identifier (it becomes a keyword argument of ``reward.score``)
COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: names that cannot be columns: the request's own fields and ``self`` (would clash with the method)
RESERVED_COLUMNS = frozenset({"prompts", "completions", "self"})
MAX_COLUMNS = 32

NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    """transformers' image part: ``base64`` (or an ``image`` holding base64 or a data: URL), or a
    ``url`` the server fetches only from hosts its operator allows (``--allow-image-urls``); no
    source at all: a placeholder filled from the ``images`` column. A ``path`` is refused: a client
    cannot have the server read its own files."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["image"]
    base64: str | None = None
    url: str | None = None
    image: str | None = None
    path: str | None = None


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI's "detail" and the like are the judge's business

    url: str


class ImageURLPart(BaseModel):
    """OpenAI's image part: ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["image_url"]
    image_url: Union[ImageURL, str]


Part = Annotated[Union[TextPart, ImagePart, ImageURLPart], Field(discriminator="type")]
Parts = Annotated[list[Part], Field(min_length=1)]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: NonEmpty = Field(max_length=64)
    content: Union[str, Parts]


#: a prompt is text or a non-empty list of chat messages
Prompt = Union[str, Annotated[list[Message], Field(min_length=1)]]
#: a completion is text, pre-split reasoning steps, a list of assistant messages (TRL conversational),
#: or a list of content parts (an image the policy generated, with or without text)
Completion = Union[str, Annotated[list[str], Field(min_length=1)], Annotated[list[Message], Field(min_length=1)], Parts]
Steps = Annotated[list[str], Field(min_length=1)]


class ScoreRequest(BaseModel):
    """``prompts[i]`` and ``completions[i]`` form sample i. Any other field is a per-sample column
    (a gold ``answer``, a ``reference``, ``tests``...): a list with one JSON value per sample, passed
    to the reward as a keyword column exactly as ``reward.score(prompts, completions, **columns)``."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"prompts": ["What is 2+2?"], "completions": ["4"], "answer": ["4"]}],
        },
    )
    __pydantic_extra__: dict[str, list[Any]] = Field(init=False)

    prompts: list[Prompt]
    completions: list[Completion]

    def columns(self) -> dict[str, list[Any]]:
        return dict(self.__pydantic_extra__ or {})


class ScoreStepsRequest(ScoreRequest):
    """Like :class:`ScoreRequest`, but every completion is a list of reasoning steps; the answer has
    one score per step in ``steps``."""

    completions: list[Steps]  # type: ignore[assignment]


class ScoreResponse(BaseModel):
    """:class:`rewardkit.RewardOutput` as JSON. ``null`` in ``scores`` = could not score (the reason
    is in ``extras["reason"]``); never a sentinel number."""

    scores: list[float | None]
    steps: list[list[float | None]] | None = None
    vector: list[list[float | None]] | None = None
    dims: list[str] = []
    extras: dict[str, list[Any]] = {}


class GetRewardRequest(BaseModel):
    """OpenRLHF's remote reward request. ``query[i]`` is prompt + response as one string (chat
    template tokens included); the response is what follows ``prompts[i]`` in it. ``labels`` go to
    the reward as the column named by the server's ``--labels-column`` (default ``answer``)."""

    model_config = ConfigDict(extra="allow")

    query: list[str]
    prompts: list[str] | None = None
    labels: list[Any] | None = None


class GetRewardResponse(BaseModel):
    rewards: list[float | None]
    scores: list[float | None]
    extra_logs: dict[str, list[float]] = {}


class ErrorItem(BaseModel):
    field: str | None = None
    message: str
    type: str | None = None


class ErrorResponse(BaseModel):
    """Every error the server returns has this shape; ``field`` names the offending request field
    (``completions[2]``, ``answer``) when there is one."""

    error: str
    message: str
    field: str | None = None
    errors: list[ErrorItem] = []


class Ready(BaseModel):
    ready: bool
    reward: str | None = None
    reason: str | None = None


class Info(BaseModel):
    reward: str | None
    ready: bool
    api_version: str = API_VERSION
    rewardkit_version: str
    max_samples_per_request: int
    max_request_bytes: int
    request_timeout: float
    micro_batching: bool
    labels_column: str
    max_image_bytes: int | None = None
    max_image_pixels: int | None = None


# --------------------------------------------------------------------------- helpers used by both ends


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "completions", 2, "content")`` -> ``completions[2].content``."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith(("function-", "list[", "str", "union[", "tagged-union[")):
            continue  # pydantic's union branch labels are noise for a client
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def column_errors(n: int, columns: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for every extra column that is not a valid per-sample column for ``n`` samples."""
    errors = []
    if len(columns) > MAX_COLUMNS:
        errors.append(("body", f"at most {MAX_COLUMNS} extra columns are allowed, got {len(columns)}"))
    for name, values in columns.items():
        if name in RESERVED_COLUMNS or not COLUMN_NAME.match(name):
            errors.append((name, f"{name!r} cannot be a column name (use a Python identifier of at most 64 characters; not 'self')"))
        elif not isinstance(values, list):
            errors.append((name, f"column {name!r} must be a list with one value per sample"))
        elif len(values) != n:
            errors.append((name, f"column {name!r} has {len(values)} values for {n} samples"))
    return errors


def _finite(value: Any) -> float | None:
    """``value`` as a finite float; ``None`` for NaN, inf, and what is no number (or too large for a float)."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def finite_scores(out: RewardOutput) -> RewardOutput:
    """``out`` with Python float scores, and every score that is not a finite number (NaN, inf from a
    reward) unscored: ``None``, with ``extras["reason"]`` saying so, like any other sample the reward
    could not score. JSON has no NaN, and a trainer must not learn from one."""
    scores = [_finite(s) for s in out.scores]
    bad = [i for i, (s, t) in enumerate(zip(out.scores, scores)) if s is not None and t is None]
    extras = out.extras
    if bad:
        reasons = list(extras.get("reason") or [None] * len(scores))
        for i in bad:
            reasons[i] = f"the reward returned a non-finite score ({reprlib.repr(out.scores[i])})"
        extras = {**extras, "reason": reasons}
    return replace(out, scores=scores, extras=extras)


def _jsonable(value: Any) -> Any:
    """Plain JSON values for extras: tuples become lists, numpy/torch scalars numbers, non-finite
    floats ``None``, anything else its ``str``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "tolist") and callable(value.tolist):
        return _jsonable(value.tolist())
    return str(value)


def output_to_json(out: RewardOutput) -> dict[str, Any]:
    """A RewardOutput as a JSON-ready dict. JSON has no NaN/inf: a non-finite score becomes ``null``
    and the sample's ``extras["reason"]`` says so (:func:`finite_scores`; nothing is dropped silently)."""
    out = finite_scores(out)
    return {
        "scores": out.scores,
        "steps": None if out.steps is None else [[_finite(v) for v in row] for row in out.steps],
        "vector": None if out.vector is None else [[_finite(v) for v in row] for row in out.vector],
        "dims": [str(d) for d in out.dims],
        "extras": {str(k): [_jsonable(v) for v in values] for k, values in out.extras.items()},
    }


def output_from_json(data: dict[str, Any]) -> RewardOutput:
    """The inverse of :func:`output_to_json` (validated: a malformed answer raises ``ValueError``)."""
    parsed = ScoreResponse.model_validate(data)
    return RewardOutput(
        scores=list(parsed.scores),
        steps=parsed.steps,  # type: ignore[arg-type]
        vector=parsed.vector,  # type: ignore[arg-type]
        dims=tuple(parsed.dims),
        extras=dict(parsed.extras),
    )


def slice_output(out: RewardOutput, start: int, stop: int) -> RewardOutput:
    """Samples ``start:stop`` of a batch's output (how a merged batch is handed back to its callers)."""
    return RewardOutput(
        scores=out.scores[start:stop],
        steps=None if out.steps is None else out.steps[start:stop],
        vector=None if out.vector is None else out.vector[start:stop],
        dims=out.dims,
        extras={k: v[start:stop] for k, v in out.extras.items()},
    )


def concat_outputs(parts: list[RewardOutput]) -> RewardOutput:
    """Outputs of consecutive chunks of one batch, joined (the client splits large batches).
    Keys missing in some chunk (an ``extras["reason"]`` only present where something failed) are
    filled with ``None`` for that chunk's samples."""
    if len(parts) == 1:
        return parts[0]
    scores = [s for p in parts for s in p.scores]
    steps = None
    if any(p.steps is not None for p in parts):
        steps = [row for p in parts for row in (p.steps if p.steps is not None else [[] for _ in p.scores])]
    vector = None
    dims = next((p.dims for p in parts if p.dims), ())
    if any(p.vector is not None for p in parts):
        width = len(dims) or max((len(r) for p in parts if p.vector for r in p.vector), default=0)
        vector = [row for p in parts for row in (p.vector if p.vector is not None else [[None] * width for _ in p.scores])]
    keys: list[str] = []
    for p in parts:
        keys.extend(k for k in p.extras if k not in keys)
    extras = {k: [v for p in parts for v in p.extras.get(k, [None] * len(p.scores))] for k in keys}
    return RewardOutput(scores=scores, steps=steps, vector=vector, dims=dims, extras=extras)

"""The reward server: any rewardkit reward over HTTP, micro-batched, authenticated, with OpenRLHF's
``/get_reward``, slime's ``/slime``, NeMo Gym's ``/verify`` and vLLM's ``/classify`` (``serve/adapters.py``)
beside rewardkit's own ``/v1/score``.

``create_app(reward, ServeSettings(...))`` builds the ASGI app; ``make_server`` wraps it in a
uvicorn server (graceful shutdown: on SIGTERM/SIGINT uvicorn stops accepting connections, the requests
in flight are answered, then the queue is drained and the model thread stops).
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, Callable

from fastapi import Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..images import ImageError, batch_has_images, inline_images
from ..protocol import MissingColumnError, completion_text
from ..types import RewardOutput
from .settings import ServeSettings
from .adapters import (
    AdapterError,
    ClassifyRequest,
    NemoVerifyRequest,
    SlimeRequest,
    classify_samples,
    nemo_columns,
    nemo_completion,
    nemo_prompt,
    slime_sample,
    to_classify,
    to_nemo_verify,
)
from .batching import BadRewardOutput, MicroBatcher, NotReady, QueueFull
from .metrics import CONTENT_TYPE_LATEST, ServerMetrics
from .openrlhf import SplitError, end_tokens, openrlhf_answer, reward_inputs, reward_strip_tokens, split_queries
from .schemas import (
    ErrorResponse,
    GetRewardRequest,
    GetRewardResponse,
    Info,
    Ready,
    ScoreRequest,
    ScoreResponse,
    ScoreStepsRequest,
    column_errors,
    field_path,
    finite_scores,
    output_to_json,
)

log = logging.getLogger("rewardkit.serve")

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose an unauthenticated reward server beyond this machine."""
    if token is None and not is_loopback(host):
        raise ValueError(
            f"refusing to serve on {host} without authentication: anyone who can reach this address could use the model. "
            "Set a bearer token (--token-file FILE or the REWARDKIT_API_TOKEN environment variable), "
            "or bind to 127.0.0.1 and put an authenticating proxy in front."
        )


# ------------------------------------------------------------------------------------------ errors
class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, field: str | None = None, headers: dict[str, str] | None = None,
                 errors: list[dict[str, Any]] | None = None):
        self.status, self.error, self.message, self.field = status, error, message, field
        self.headers = headers or {}
        self.errors = errors or []
        super().__init__(message)


def error_response(status: int, error: str, message: str, field: str | None = None, headers: dict[str, str] | None = None,
                   errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    body = {"error": error, "message": message, "field": field, "errors": errors or []}
    return JSONResponse(body, status_code=status, headers=headers)


HTTP_ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                    413: "request_too_large", 415: "unsupported_media_type", 503: "unavailable"}


class RequestTooLarge(StarletteHTTPException):
    def __init__(self, limit: int):  # Connection: close, or uvicorn would go on reading the rest of the body to discard it
        super().__init__(413, f"the request body exceeds {limit} bytes (--max-request-bytes)", headers={"Connection": "close"})


#: paths answered without a token (liveness and readiness probes)
OPEN_PATHS = frozenset({"/health", "/ready"})


def _header_values(scope: dict, name: bytes) -> list[bytes]:
    return [v for k, v in scope.get("headers") or [] if k == name]


class BearerAuthMiddleware:
    """Every path but :data:`OPEN_PATHS` needs ``Authorization: Bearer <token>``, the API docs and
    ``/openapi.json`` too. Checked on the request head, before anything reads the body: FastAPI
    parses and validates a body before it runs a route's dependencies, so a dependency would parse
    an anonymous 8 MiB body first. A refused body is never read (``Connection: close``: uvicorn does
    not drain it either)."""

    def __init__(self, app: Any, token: str):
        self.app, self.expected = app, token.encode()

    def authorized(self, scope: dict) -> bool:
        values = _header_values(scope, b"authorization")
        scheme, _, credentials = values[0].strip().partition(b" ") if values else (b"", b"", b"")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.expected)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS or self.authorized(scope):
            return await self.app(scope, receive, send)
        response = error_response(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer <token>)",
                                  field="Authorization", headers={"WWW-Authenticate": "Bearer", "Connection": "close"})
        return await response(scope, receive, send)


def host_name(host: str) -> str:
    """``[::1]:8000`` -> ``[::1]``, ``localhost:8000`` -> ``localhost`` (lowercased)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() else host


class HostCheckMiddleware:
    """Without a token the server listens on loopback only, but a web page can still reach it by DNS
    rebinding (the page's own name, e.g. evil.example, made to resolve to 127.0.0.1); its requests
    carry that name in ``Host``. So only loopback names and addresses (localhost, 127.0.0.1, [::1],
    any port) and the operator's ``--allowed-hosts`` are answered; any other Host gets 421. A request
    without Host (HTTP/1.0) passes: browsers always send one."""

    def __init__(self, app: Any, allowed: tuple[str, ...] = ()):
        self.app = app
        self.allowed = {h.strip().lower() for h in allowed}

    def allows(self, host: str) -> bool:
        name = host_name(host)
        return "*" in self.allowed or is_loopback(name) or name in self.allowed or host.strip().lower() in self.allowed

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refused = [h for h in (v.decode("latin-1") for v in _header_values(scope, b"host")) if not self.allows(h)]
        if not refused:
            return await self.app(scope, receive, send)
        response = error_response(421, "host_not_allowed", f"Host {refused[0]!r} is not served: a server without a token answers only "
                                  "loopback names (localhost, 127.0.0.1, [::1]); add names with --allowed-hosts, or set a token",
                                  field="Host", headers={"Connection": "close"})
        return await response(scope, receive, send)


class BodyLimitMiddleware:
    """Rejects bodies over ``limit`` bytes: at once from Content-Length, or while reading a chunked body."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return await error_response(400, "bad_request", "invalid Content-Length header", field="Content-Length")(scope, receive, send)
            if size > self.limit:
                response = error_response(413, "request_too_large", f"the request body has {size} bytes; the limit is {self.limit} (--max-request-bytes)",
                                          field="body", headers={"Connection": "close"})
                return await response(scope, receive, send)
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise RequestTooLarge(self.limit)
            return message

        return await self.app(scope, limited_receive, send)


class MetricsMiddleware:
    """Counts requests by endpoint and status and times them (arrival to the last byte sent)."""

    def __init__(self, app: Any, metrics: ServerMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = self.metrics.endpoint(scope.get("path", ""))
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.inflight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.inflight.dec()
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)


# --------------------------------------------------------------------------------------------- app
def _plain(value: Any) -> Any:
    """pydantic messages and content parts -> the plain dicts rewards expect (an image part's unset
    sources left out)."""
    if isinstance(value, list):
        return [m.model_dump(exclude_none=True) if hasattr(m, "model_dump") else m for m in value]
    return value


def _unscored_message(count: int, n: int, first: int, reason: str | None) -> str:
    return (f"{count} of {n} samples could not be scored (query[{first}]: {reason or 'the reward returned no score'}); OpenRLHF needs "
            "a number for every sample: start the server with --unscored-reward X (e.g. your reward's minimum). Those samples are "
            "then flagged in extra_logs.unscored")


def _needs_number(client: str, count: int, n: int, where: str, reason: str | None) -> str:
    return (f"{count} of {n} samples could not be scored ({where}: {reason or 'the reward returned no score'}); {client} needs a "
            "number for every sample: start the server with --unscored-reward X (e.g. your reward's minimum)")


def create_app(reward: Any, settings: ServeSettings | None = None, *, on_load_error: Callable[[BaseException], None] | None = None,
               is_draining: Callable[[], bool] | None = None) -> FastAPI:
    """The ASGI app serving ``reward`` (a Reward, or a zero-argument function that loads one on the
    model thread while the server already answers ``/health``)."""
    from .. import __version__

    settings = settings or ServeSettings()
    settings.check()
    metrics = ServerMetrics()
    batcher = MicroBatcher(
        reward,
        max_batch_tokens=settings.max_batch_tokens,
        max_batch_samples=settings.max_batch_samples,
        max_wait_ms=settings.max_wait_ms,
        max_queue_samples=settings.max_queue_samples,
        merge=settings.micro_batching,
        metrics=metrics,
        on_load_error=on_load_error,
        image_policy=settings.image_policy(),
    )
    draining = is_draining or (lambda: False)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="rewardkit reward server",
        version=__version__,
        summary="Any rewardkit reward over HTTP: rewardkit's /v1/score, OpenRLHF's /get_reward, slime's /slime, NeMo Gym's /verify "
                "and vLLM's /classify, micro-batched.",
        lifespan=lifespan,
        responses={"default": {"model": ErrorResponse, "description": "an error (structured JSON; `field` names the offending field)"}},
    )
    app.state.batcher, app.state.metrics, app.state.settings = batcher, metrics, settings

    # --------------------------------------------------------------------------- auth
    # checked by BearerAuthMiddleware on the request head; the dependency only puts the scheme in the OpenAPI spec
    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <token> (required when the server was started with a token)")
    protected = [Depends(bearer)] if settings.token is not None else []

    # --------------------------------------------------------------------------- errors
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> JSONResponse:
        return error_response(err.status, err.error, err.message, err.field, err.headers, err.errors)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        items, seen = [], set()
        for e in err.errors():
            loc = tuple(e.get("loc", ()))
            message = str(e.get("msg", "invalid value"))
            if e.get("type") == "json_invalid":  # loc is ("body", character position)
                loc = ("body",)
                message = f"invalid JSON at character {e['loc'][-1]}: {e.get('ctx', {}).get('error', message)}"
            field = field_path(loc)
            if (field, message) in seen:
                continue
            seen.add((field, message))
            items.append({"field": field, "message": message, "type": e.get("type")})
        first = items[0] if items else {"field": "body", "message": "invalid request"}
        return error_response(422, "validation_error", f"{first['field']}: {first['message']}", first["field"], errors=items[:50])

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        status = err.status_code
        field = "body" if status == 413 else None
        return error_response(status, HTTP_ERROR_CODES.get(status, "error"), str(err.detail), field, getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, err: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return error_response(500, "internal_error", f"internal server error ({type(err).__name__})")

    # --------------------------------------------------------------------------- scoring
    def check_samples(n: int, completions_n: int) -> None:
        if completions_n != n:
            raise ApiError(422, "validation_error", f"got {n} prompts but {completions_n} completions", field="completions")
        if n > settings.max_samples_per_request:
            raise ApiError(413, "too_many_samples", f"{n} samples in one request; the limit is {settings.max_samples_per_request} "
                           "(--max-samples-per-request): split the batch", field="prompts")

    def check_columns(n: int, columns: dict[str, Any]) -> None:
        errors = column_errors(n, columns)
        if errors:
            items = [{"field": f, "message": m, "type": "column"} for f, m in errors]
            raise ApiError(422, "validation_error", errors[0][1], field=errors[0][0], errors=items)

    async def run(prompts: list[Any], completions: list[Any], columns: dict[str, Any]):
        deadline = asyncio.timeout(settings.request_timeout)
        # The reward stops a little before the request's deadline, so samples it could not finish
        # come back unscored in a 200 (the 504 stays for rewards that cannot stop early: models).
        work_until = time.monotonic() + settings.request_timeout - min(1.0, 0.1 * settings.request_timeout)
        try:
            async with deadline:
                return finite_scores(await batcher.submit(prompts, completions, columns, deadline=work_until))  # NaN / inf: unscored, with the reason
        except TimeoutError as err:
            if not deadline.expired():  # the reward itself raised TimeoutError: not our deadline
                log.exception("reward %s failed", batcher.name)
                raise ApiError(500, "reward_error", f"reward {batcher.name!r} failed: TimeoutError: {err}") from None
            metrics.rejected.labels("timeout").inc()
            raise ApiError(504, "timeout", f"the request was not scored within {settings.request_timeout:g}s (--request-timeout)") from None
        except QueueFull as err:
            raise ApiError(503, "queue_full", f"the server is at capacity ({settings.max_queue_samples} samples queued); retry later",
                           headers={"Retry-After": str(int(err.retry_after))}) from None
        except NotReady as err:
            raise ApiError(503, "not_ready", err.reason, headers={"Retry-After": str(int(err.retry_after))}) from None
        except MissingColumnError as err:
            raise ApiError(422, "missing_column", str(err), field=err.column) from None
        except BadRewardOutput as err:
            raise ApiError(500, "reward_error", str(err)) from None
        except (ValueError, TypeError, LookupError) as err:
            raise ApiError(422, "unprocessable", f"reward {batcher.name!r} could not score this request: {err}") from None
        except Exception as err:
            log.exception("reward %s failed", batcher.name)
            raise ApiError(500, "reward_error", f"reward {batcher.name!r} failed: {type(err).__name__}: {err}") from None

    def plain_inputs(req: ScoreRequest) -> tuple[list[Any], list[Any]]:
        prompts = [_plain(p) for p in req.prompts]
        completions = [_plain(c) for c in req.completions]
        for i, c in enumerate(completions):
            if isinstance(c, list) and c and isinstance(c[0], dict):
                try:
                    completion_text(c)
                except ValueError as err:
                    raise ApiError(422, "validation_error", f"completions[{i}]: {err}", field=f"completions[{i}]") from None
        return prompts, completions

    async def read_images(prompts: list[Any], completions: list[Any], columns: dict[str, Any]) -> tuple[list[Any], list[Any], dict[str, Any]]:
        """The request with every image read under the server's image policy (no local path, URLs of the
        allowed hosts only), checked against its limits and inline as base64, before the reward sees it."""
        if not batch_has_images(prompts, completions, columns):
            return prompts, completions, columns
        try:  # in a worker thread: decoding base64, reading headers and fetching URLs must not hold up the event loop
            return await asyncio.to_thread(inline_images, prompts, completions, columns, settings.image_policy())
        except ImageError as err:
            raise ApiError(422, "bad_image", str(err), field=err.field) from None
        except ImportError as err:
            raise ApiError(501, "images_unsupported", f"this server cannot read images: {err}") from None

    empty = {"scores": [], "steps": None, "vector": None, "dims": [], "extras": {}}

    @app.post("/v1/score", response_model=ScoreResponse, dependencies=protected, tags=["score"],
              summary="Score (prompt, completion) pairs; extra fields are per-sample columns")
    async def score(req: ScoreRequest) -> Any:
        n = len(req.prompts)
        check_samples(n, len(req.completions))
        columns = req.columns()
        check_columns(n, columns)
        if n == 0:
            return JSONResponse(empty)
        prompts, completions = plain_inputs(req)
        prompts, completions, columns = await read_images(prompts, completions, columns)
        return JSONResponse(output_to_json(await run(prompts, completions, columns)))

    @app.post("/v1/score_steps", response_model=ScoreResponse, dependencies=protected, tags=["score"],
              summary="Score reasoning steps with a process reward: `steps[i]` has one score per step of `completions[i]`")
    async def score_steps(req: ScoreStepsRequest) -> Any:
        n = len(req.prompts)
        check_samples(n, len(req.completions))
        columns = req.columns()
        check_columns(n, columns)
        if n == 0:
            return JSONResponse({**empty, "steps": []})
        prompts, completions = plain_inputs(req)
        prompts, completions, columns = await read_images(prompts, completions, columns)
        out = await run(prompts, completions, columns)
        if out.steps is None:
            raise ApiError(400, "no_step_scores", f"reward {batcher.name!r} gives no per-step scores; use /v1/score "
                           "(or serve a process reward)")
        return JSONResponse(output_to_json(out))

    @app.post("/get_reward", response_model=GetRewardResponse, dependencies=protected, tags=["openrlhf"],
              summary="OpenRLHF remote reward: query = prompt + response; labels become the --labels-column column")
    async def get_reward(req: GetRewardRequest) -> Any:
        n = len(req.query)
        if n > settings.max_samples_per_request:
            raise ApiError(413, "too_many_samples", f"{n} queries in one request; the limit is {settings.max_samples_per_request} "
                           "(--max-samples-per-request)", field="query")
        try:  # in a worker thread: long prompts must not hold up the event loop
            split = await asyncio.to_thread(split_queries, req.query, req.prompts, strip_tokens())
        except SplitError as err:
            raise ApiError(422, "validation_error", str(err), field=err.field) from None
        found = [i for i, (response, _, _) in enumerate(split) if response is not None]
        if len(found) < n and settings.unscored_reward is None:  # refuse before spending the reward on a batch it cannot answer
            first = next(i for i in range(n) if split[i][0] is None)
            raise ApiError(422, "unscored_sample", _unscored_message(n - len(found), n, first, split[first][2]), field=f"query[{first}]")
        columns: dict[str, Any] = {}
        if req.labels is not None:
            if len(req.labels) != n:
                raise ApiError(422, "validation_error", f"got {len(req.labels)} labels for {n} queries", field="labels")
            if any(label is not None for label in req.labels):
                columns[settings.labels_column] = list(req.labels)
        if n == 0:
            return JSONResponse({"rewards": [], "scores": [], "extra_logs": {}})
        ends = [] if settings.keep_end_of_turn else end_tokens(batcher.reward)
        found, prompts, responses = reward_inputs(split, list(req.prompts or []), strip_tokens(), ends)
        scored = await run(prompts, responses, {k: [v[i] for i in found] for k, v in columns.items()}) if found else RewardOutput(scores=[])
        out, body = openrlhf_answer(scored, split, found, settings.unscored_reward)
        unscored = [i for i, s in enumerate(out.scores) if s is None]
        if unscored and settings.unscored_reward is None:
            reasons = out.extras.get("reason") or [None] * n
            first = unscored[0]
            raise ApiError(422, "unscored_sample", _unscored_message(len(unscored), n, first, reasons[first]), field=f"query[{first}]")
        return JSONResponse(body)

    # --------------------------------------------------------------------------- other RL stacks (serve/adapters.py)
    def refuse_unscored(out: RewardOutput, client: str, where: Callable[[int], str]) -> None:
        """A client that needs a number for every sample gets a 422 naming the first unscored one,
        unless the server has ``--unscored-reward``."""
        unscored = [i for i, s in enumerate(out.scores) if s is None]
        if unscored and settings.unscored_reward is None:
            first = unscored[0]
            reason = (out.extras.get("reason") or [None] * len(out.scores))[first]
            raise ApiError(422, "unscored_sample", _needs_number(client, len(unscored), len(out.scores), where(first), reason),
                           field=where(first))

    def adapter_error(err: AdapterError) -> ApiError:
        return ApiError(422, "validation_error", str(err), field=err.field)

    @app.post("/slime", dependencies=protected, tags=["slime"], response_model=float,
              summary="slime's remote reward (--rm-type remote_rm --rm-url http://HOST:8000/slime): one sample in, its reward as a bare number")
    async def slime(req: SlimeRequest) -> Any:
        try:
            prompt, response, columns = slime_sample(req, settings.labels_column)
        except AdapterError as err:
            raise adapter_error(err) from None
        out = await run([prompt], [response], columns)
        refuse_unscored(out, "slime", lambda i: "response")
        score = out.scores[0]
        return JSONResponse(score if score is not None else settings.unscored_reward)

    async def nemo_verify(req: NemoVerifyRequest) -> Any:
        try:
            prompt = nemo_prompt(req.responses_create_params)
        except AdapterError as err:
            raise adapter_error(err) from None
        columns = nemo_columns(req, settings.labels_column)
        check_columns(1, columns)
        out = await run([prompt], [nemo_completion(req.response)], columns)
        refuse_unscored(out, "NeMo Gym", lambda i: "response")
        return JSONResponse(to_nemo_verify(req, out, settings.unscored_reward))

    verify_summary = "NeMo Gym resources server /verify: the task row + the policy's response in, the row + reward out"
    app.post("/verify", dependencies=protected, tags=["nemo-gym"], summary=verify_summary)(nemo_verify)

    # with observability on, NeMo Gym's server client puts /ng-rollout/<rollout id> before every resources-server path
    @app.post("/ng-rollout/{rollout_id}/verify", dependencies=protected, tags=["nemo-gym"], include_in_schema=False)
    async def nemo_verify_traced(rollout_id: str, req: NemoVerifyRequest) -> Any:
        return await nemo_verify(req)

    @app.post("/seed_session", dependencies=protected, tags=["nemo-gym"],
              summary="NeMo Gym's /seed_session, which its agents call before each rollout: a reward keeps no session, so {}")
    @app.post("/ng-rollout/{rollout_id}/seed_session", dependencies=protected, tags=["nemo-gym"], include_in_schema=False)
    async def nemo_seed_session(row: dict[str, Any] | None = Body(default=None)) -> dict[str, Any]:  # the task row, unused
        return {}

    @app.post("/classify", dependencies=protected, tags=["vllm"],
              summary="vLLM's /classify (verl's discriminative reward model call): probs[-1] is the reward")
    async def classify(req: ClassifyRequest) -> Any:
        try:
            prompts, completions = classify_samples(req)
        except AdapterError as err:
            raise adapter_error(err) from None
        n = len(completions)
        if n > settings.max_samples_per_request:
            raise ApiError(413, "too_many_samples", f"{n} inputs in one request; the limit is {settings.max_samples_per_request} "
                           "(--max-samples-per-request)", field="input")
        out = await run(prompts, completions, {}) if n else RewardOutput(scores=[])
        refuse_unscored(out, "the /classify client", lambda i: "messages" if req.messages is not None else f"input[{i}]")
        return JSONResponse(to_classify(out, req.model or batcher.name or "rewardkit", settings.unscored_reward))

    strip_cache: list[list[str]] = []

    def strip_tokens() -> list[str]:
        if not strip_cache and batcher.reward is not None:
            strip_cache.append(list(settings.strip) + [t for t in reward_strip_tokens(batcher.reward) if t not in settings.strip])
        return strip_cache[0] if strip_cache else list(settings.strip)

    # --------------------------------------------------------------------------- operations
    @app.get("/health", tags=["operations"], summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"], summary="Readiness: the reward is loaded and the server accepts work (503 otherwise)",
             response_model=Ready, responses={503: {"model": Ready, "description": "loading, shutting down, or the load failed"}})
    async def ready() -> Any:
        if batcher.load_error is not None:
            reason = f"the reward failed to load: {batcher.load_error}"
        elif draining() or batcher.closing or getattr(getattr(app.state, "server", None), "should_exit", False):
            reason = "shutting down"
        elif batcher.reward is None:
            reason = "loading the reward"
        else:
            return {"ready": True, "reward": batcher.name, "reason": None}
        return JSONResponse({"ready": False, "reward": batcher.name, "reason": reason}, status_code=503)

    @app.get("/v1/info", response_model=Info, dependencies=protected, tags=["operations"], summary="The served reward and the server's limits")
    async def info() -> Any:
        return Info(
            reward=batcher.name, ready=batcher.ready, rewardkit_version=__version__,
            max_samples_per_request=settings.max_samples_per_request, max_request_bytes=settings.max_request_bytes,
            request_timeout=settings.request_timeout, micro_batching=batcher.merge, labels_column=settings.labels_column,
            max_image_bytes=settings.max_image_bytes, max_image_pixels=settings.max_image_pixels,
        )

    @app.get("/metrics", dependencies=protected, tags=["operations"], summary="Prometheus metrics",
             response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # the last added runs first: metrics, then Host, then the token, then the body limit; all before the body is read
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_request_bytes)
    if settings.token is not None:
        app.add_middleware(BearerAuthMiddleware, token=settings.token)
    else:
        app.add_middleware(HostCheckMiddleware, allowed=settings.allowed_hosts)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def make_server(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, *, graceful_timeout: float = 30.0,
                log_level: str = "info", access_log: bool = False, **uvicorn_options: Any):
    """A ``uvicorn.Server`` for ``app`` whose ``/ready`` turns 503 as soon as shutdown starts, on
    HTTP/1.1 connections that must deliver each request within the app's ``receive_timeout`` and are
    at most ``max_connections`` (``serve/transport.py``); no WebSocket upgrades (nothing uses them)."""
    import uvicorn

    from .transport import guarded_protocol

    settings = getattr(app.state, "settings", None) or ServeSettings()
    metrics = getattr(app.state, "metrics", None)
    on_refused = (lambda reason: metrics.rejected.labels(reason).inc()) if metrics is not None else None
    uvicorn_options.setdefault("http", guarded_protocol(settings.receive_timeout, settings.max_connections, on_refused))
    uvicorn_options.setdefault("ws", "none")
    config = uvicorn.Config(app, host=host, port=port, timeout_graceful_shutdown=graceful_timeout, log_level=log_level,
                            access_log=access_log, lifespan="on", **uvicorn_options)
    server = uvicorn.Server(config)
    app.state.server = server
    return server

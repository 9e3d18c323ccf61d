"""rewardkit serve: any reward over HTTP for RL trainers (rewardkit /v1/score, OpenRLHF /get_reward, slime /slime,
NeMo Gym /verify, vLLM /classify)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from ..serve.settings import ServeSettings
from .common import add_reward_options, quiet_libraries, reward_options
from .flags import Flag, add_flags, non_negative_float, port, positive_float, positive_int, values

HELP = "serve a reward over HTTP (micro-batched; rewardkit /v1/score, OpenRLHF /get_reward, slime, NeMo Gym, vLLM /classify)"
EPILOG = """endpoints:
  POST /v1/score        {"prompts": [...], "completions": [...], <column>: [...]} -> RewardOutput JSON
  POST /v1/score_steps  same, completions are lists of steps -> one score per step (process rewards)
  POST /get_reward      OpenRLHF: {"query": [...], "prompts": [...], "labels": [...]} -> {"rewards", "scores", "extra_logs"}
  POST /slime           slime (--rm-type remote_rm --rm-url http://HOST:PORT/slime): {"prompt", "response", "label"} -> a number
  POST /verify          NeMo Gym resources server (with /seed_session): the task row + "response" -> the row + "reward"
  POST /classify        vLLM's classify API, as verl's reward loop calls it: {"model", "input"} -> data[i].probs[-1] = the reward
  GET  /health /ready /metrics /v1/info /openapi.json /docs

examples:
  rewardkit serve --reward loglik:default
  REWARDKIT_API_TOKEN=$(cat token) rewardkit serve --reward classifier:./rm --host 0.0.0.0 --port 8000
  rewardkit score --reward remote:http://127.0.0.1:8000 --data pairs.jsonl --out scores.jsonl
  rewardkit serve --reward py:my_rewards:vision --allow-image-urls images.example.org --max-request-bytes 33554432

Binding to a non-loopback address requires a bearer token (REWARDKIT_API_TOKEN or --token-file); it then guards every
endpoint but /health and /ready, the docs too. Without one, only loopback Host names are answered (see --allowed-hosts).
OpenRLHF: --reward.remote_url (before 0.10.2: --remote_rm_url) http://HOST:PORT/get_reward; labels reach the reward as the column
--labels-column (default `answer`, what rule:math reads); slime's `label` and NeMo Gym's `expected_answer` go there too.
slime, NeMo Gym and verl send no token: serve them on loopback, or behind a proxy that adds it."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reward", required=True, metavar="SPEC", help="reward spec (any spec, including compositions); see `rewardkit ls`")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; anything else needs a token)")
    p.add_argument("--port", type=port, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--token-file", metavar="FILE",
                   help="file holding the bearer token clients must send (default: the REWARDKIT_API_TOKEN environment variable)")
    g = p.add_argument_group("micro-batching")
    add_flags(g, ServeSettings, [
        Flag("max_batch_tokens", type=positive_int, help="merge concurrent requests up to about N tokens per model call (estimated as characters/4)"),
        Flag("max_batch_samples", type=positive_int, help="and at most N samples per model call"),
        Flag("max_wait_ms", metavar="MS", type=non_negative_float,
             help="hold a batch until its oldest request has waited MS for batch mates (default 0: never wait; requests "
                  "that arrive while the model is busy form the next batch). A few ms can help bursty traffic on a GPU"),
        Flag("micro_batching", flag="--no-batching", help="one model call per request (no merging)"),
    ])
    g = p.add_argument_group("limits")
    add_flags(g, ServeSettings, [
        Flag("max_request_bytes", type=positive_int, help="largest request body (default 8 MiB)"),
        Flag("max_samples_per_request", type=positive_int, help="most samples in one request"),
        Flag("max_queue_samples", flag="--max-queue", metavar="SAMPLES", type=positive_int,
             help="samples allowed to wait for the model; beyond this requests get 503 + Retry-After"),
        Flag("request_timeout", metavar="S", type=positive_float, help="a request not scored within S seconds gets 504"),
        Flag("graceful_timeout", metavar="S", type=non_negative_float, help="on SIGTERM, wait up to S seconds for requests in flight"),
    ])
    g = p.add_argument_group("images (sent inline as base64; a local path in a request is always refused)")
    add_flags(g, ServeSettings, [
        Flag("allow_image_urls", type=host_list, metavar="HOSTS",
             help="comma-separated hosts whose image URLs the server fetches (redirects are not followed); * for any "
                  "(an internal IP literal is still refused unless named). Default: no URL is fetched"),
        Flag("max_image_bytes", type=positive_int, help="largest image file (bytes, after base64 decoding; also mind --max-request-bytes)"),
        Flag("max_image_pixels", type=positive_int, help="most pixels (width x height, read from the header before decoding: "
                                                         "a decompression bomb is refused)"),
    ])
    g = p.add_argument_group("connections")
    add_flags(g, ServeSettings, [
        Flag("receive_timeout", metavar="S", help="a connection that has not delivered a whole request (head and body) within S seconds "
                                                  "of being ready for one gets 408 and is closed (slow or half-open clients)"),
        Flag("max_connections", help="most open connections; a connection beyond them gets 503 and is closed"),
        Flag("allowed_hosts", type=host_list, metavar="NAMES",
             help="without a token only Host headers naming loopback (localhost, 127.0.0.1, [::1]) are answered (DNS rebinding): "
                  "comma-separated further names to answer, e.g. the name a local proxy forwards; * for any"),
    ])
    g = p.add_argument_group("OpenRLHF /get_reward (labels and unscored samples: also /slime, /verify, /classify)")
    add_flags(g, ServeSettings, [
        Flag("labels_column", metavar="NAME", help="column that receives `labels`"),
        Flag("unscored_reward", metavar="X", help="value sent for samples the reward cannot score, e.g. your reward's minimum; they are flagged "
                                                  "in extra_logs.unscored. Default: none, and then a batch with an unscored sample is refused "
                                                  "(HTTP 422 naming it and the reason), since OpenRLHF (and slime, NeMo Gym, verl) cannot train on "
                                                  "a missing reward"),
    ])
    add_flags(g, ServeSettings, [
        Flag("keep_end_of_turn", help="keep the end-of-turn text (EOS, <|im_end|> ...) that ends a decoded response; by default it "
                                      "is removed, and a model reward with a chat template adds its own end of turn, so "
                                      "/get_reward scores the text /v1/score scores for the same conversation"),
    ])
    g.add_argument("--strip", action="append", default=[], metavar="TEXT",
                   help="remove TEXT (e.g. the policy's pad token) from the end of each response; repeatable "
                        "(the reward tokenizer's pad token is always removed)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--access-log", action="store_true", help="log every request")
    add_reward_options(p)
    p.set_defaults(func=run)


def host_list(text: str) -> tuple[str, ...]:
    return tuple(h.strip() for h in text.split(",") if h.strip())


def read_token(args: argparse.Namespace) -> str | None:
    from ..serve.schemas import TOKEN_ENV

    if args.token_file:
        path = Path(args.token_file)
        if not path.is_file():
            raise FileNotFoundError(f"--token-file {path} does not exist")
        token = path.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"--token-file {path} is empty")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def run(args: argparse.Namespace) -> int:
    from ..serve.app import check_bind, create_app, make_server
    from ..specs import load_reward, parse_spec

    quiet_libraries()
    token = read_token(args)
    check_bind(args.host, token)
    if "(" in args.reward:
        parse_spec(args.reward)  # a syntax error stops us before anything loads
    settings = ServeSettings(**{**values(ServeSettings, args), "token": token, "strip": tuple(args.strip)})
    options = reward_options(args)
    failure: list[BaseException] = []
    server = None

    def load():
        return load_reward(args.reward, **options)

    def on_load_error(err: BaseException) -> None:
        failure.append(err)
        if server is not None:
            server.should_exit = True

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(load, settings, on_load_error=on_load_error)
    server = make_server(app, args.host, args.port, graceful_timeout=settings.graceful_timeout, log_level=args.log_level,
                         access_log=args.access_log)
    auth = "bearer token required" if token else "no auth (loopback only)"
    print(f"rewardkit serve: {args.reward} on http://{args.host}:{args.port} ({auth}; "
          f"micro-batching {'on' if settings.micro_batching else 'off'}); loading the reward ...", file=sys.stderr, flush=True)
    # uvicorn drains on SIGTERM, then re-raises the signal; a drained server has stopped cleanly (exit 0)
    previous = signal.signal(signal.SIGTERM, lambda *_: None) if threading.current_thread() is threading.main_thread() else None
    try:
        server.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if failure:
        print(f"error: the reward failed to load: {failure[0]}", file=sys.stderr)
        return 2
    return 0

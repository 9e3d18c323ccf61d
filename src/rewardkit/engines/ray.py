"""``--engine ray``: a verb's per-row work on a Ray cluster, through Ray Data's actor pool.

:func:`run_sharded` is the whole seam: rows in (any picklable input rows, already parsed by the verb
with rewardkit's own readers, so formats, ids and errors are those of a local run), a picklable
``make_worker`` (called once in each actor: a reward is loaded once per actor, not per batch), and
output rows back, one per input row, in input order.

* The rows are cut into shards of ``ray_batch_size`` consecutive rows. A shard's file is named by its
  index and a digest of its rows and of the job (``key``: the reward and its options), so it is
  deterministic: a rerun after the driver was killed finds the shards already finished and skips them,
  and a shard of other rows or of another reward never passes for one of this run.
* Ray Data runs the shards through ``map_batches`` on a fixed actor pool (``ActorPoolStrategy``), one
  shard per call, ``ray_cpus_per_actor`` / ``ray_gpus_per_actor`` each. Within a call the worker
  batches as it does locally (a model reward by its token budget). Ray restarts an actor whose process
  dies and resubmits the shard it held; a shard that has killed its worker more than ``ray_retries``
  times fails the run, naming the shard (a row that crashes the process every time would otherwise be
  retried for ever).
* The driver writes each shard as its result arrives (a temporary file renamed into place: a shard
  file is complete or absent) and reads them back in shard order: every input row exactly once, in
  input order, whatever order the actors finished in and however often they died.

Ray is imported only inside these functions: rewardkit without Ray works, and ``--engine ray``
without it says how to install it (:func:`require_ray`).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

INSTALL = "pip install 'rewardkit[ray]'   (or: pip install 'ray[data]>=2.40')"


@dataclass
class RayConfig:
    """The Ray engine's options (the CLI's ``--ray-*`` flags)."""

    ray_address: str | None = None  # an existing cluster (else RAY_ADDRESS, else a local one started here)
    ray_actors: int = 2  # workers in the pool, each loads the reward once
    ray_cpus_per_actor: float = 1.0
    ray_gpus_per_actor: float = 0.0  # 1 for a model reward on a GPU cluster; 0 keeps rules and HTTP rewards on CPUs
    ray_batch_size: int = 512  # input rows per Ray call (= per output shard)
    ray_retries: int = 3  # times a shard may kill its worker before the run fails
    ray_num_cpus: int | None = None  # CPUs of a local cluster started here (default: the machine's)


def require_ray() -> Any:
    """The ``ray`` module (with Ray Data), or an ImportError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ImportError(f"--engine ray needs Ray Data, which is not installed ({err}): {INSTALL}") from err
    return ray


@contextmanager
def connected(cfg: RayConfig) -> Iterator[Any]:
    """Connect to ``cfg.ray_address`` (or ``RAY_ADDRESS``), or start a local cluster, for the duration
    of the block; a Ray already initialised in this process (a test, a notebook) is used as it is."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    address = cfg.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=cfg.ray_num_cpus, include_dashboard=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_resources(ray: Any, cfg: RayConfig, actors: int) -> None:
    """Refuse a pool a local cluster can never hold (Ray would wait for ever); on a remote cluster only
    warn, as an autoscaler may add the nodes."""
    have = ray.cluster_resources()
    need = {"CPU": actors * cfg.ray_cpus_per_actor, "GPU": actors * cfg.ray_gpus_per_actor}
    short = {k: v for k, v in need.items() if v > have.get(k, 0.0) + 1e-9}
    if not short:
        return
    text = (f"the Ray cluster has {have.get('CPU', 0):g} CPUs and {have.get('GPU', 0):g} GPUs; {actors} actors x "
            f"{cfg.ray_cpus_per_actor:g} CPUs and {cfg.ray_gpus_per_actor:g} GPUs need {need['CPU']:g} CPUs and {need['GPU']:g} GPUs")
    if not (cfg.ray_address or os.environ.get("RAY_ADDRESS")):
        raise ValueError(text + " (use fewer --ray-actors or fewer --ray-cpus-per-actor / --ray-gpus-per-actor)")
    print(f"warning: {text}; the pool starts when the cluster has them", file=sys.stderr)


class _Attempts:
    """Counts the calls started per shard, across actor restarts (one small actor per run)."""

    def __init__(self) -> None:
        self.calls: dict[int, int] = {}

    def start(self, shard: int) -> int:
        self.calls[shard] = self.calls.get(shard, 0) + 1
        return self.calls[shard]


class ShardCrashError(RuntimeError):
    """A shard killed its worker process more often than ``ray_retries`` allows."""


class _ShardActor:
    """One actor of the pool: builds the worker once, then turns one shard per call into its rows. An
    exception of the worker (a bad spec, a missing column) comes back as data, so the driver raises the
    worker's own error rather than Ray's wrapping of it."""

    def __init__(self, make_worker: Callable[[], Callable[[list], list]], attempts: Any, retries: int):
        self.attempts, self.retries = attempts, retries
        try:
            self.work, self.failed = make_worker(), None
        except Exception as err:  # reported with the first shard, like the local engine's load error
            self.work, self.failed = None, _pickled_error(err)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa
        import ray

        shard = int(batch["shard"][0].as_py())
        calls = ray.get(self.attempts.start.remote(shard))
        text, error = "", self.failed
        if calls > self.retries + 1:
            error = _pickled_error(ShardCrashError(
                f"shard {shard} killed its worker {calls - 1} times (more than --ray-retries {self.retries}); one of its rows "
                "probably crashes the process (out of memory, a native crash); the shards finished so far are kept for a rerun"))
        if error is None:
            try:
                items = pickle.loads(batch["payload"][0].as_py())
                rows = self.work(items)
                if len(rows) != len(items):
                    raise RuntimeError(f"internal error: the worker returned {len(rows)} rows for the {len(items)} rows of shard {shard}")
                text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            except Exception as err:
                error = _pickled_error(err)
        return pa.table({"shard": [shard], "rows": [text], "error": pa.array([error], type=pa.binary())})


def _pickled_error(err: Exception) -> bytes:
    import traceback

    where = "".join(traceback.format_exception(err))
    try:
        pickle.loads(pickle.dumps(err))  # exceptions whose __init__ takes other arguments than .args do not round-trip
        return pickle.dumps((err, where))
    except Exception:
        return pickle.dumps((RuntimeError(f"{type(err).__name__}: {err}"), where))


def _raise_worker_error(data: bytes) -> None:
    err, where = pickle.loads(data)
    err.add_note("raised in a Ray actor:\n" + where)
    raise err


def _call(make_worker: Callable[[], Any], method: str, args: tuple) -> Any:
    return getattr(make_worker(), method)(*args)


def call_once(make_worker: Callable[[], Any], method: str, *args: Any, cfg: RayConfig) -> Any:
    """``make_worker().method(*args)`` in one Ray task with an actor's resources (inside :func:`connected`):
    for what needs the loaded worker once more after the shards, e.g. an evaluation's statistics that
    the reward computes itself."""
    ray = require_ray()
    task = ray.remote(_call).options(num_cpus=cfg.ray_cpus_per_actor, num_gpus=cfg.ray_gpus_per_actor, max_retries=cfg.ray_retries)
    return ray.get(task.remote(make_worker, method, args))


def shard_names(items: Sequence[Any], cfg: RayConfig, *, key: str, digest: Callable[[Any], str]) -> list[tuple[str, int, int]]:
    """(file name, first row, end row) of each shard: ``{index:06d}-{digest}.jsonl``, the digest over the
    job ``key`` and each row's ``digest``."""
    out = []
    for k, lo in enumerate(range(0, len(items), cfg.ray_batch_size)):
        hi = min(lo + cfg.ray_batch_size, len(items))
        h = hashlib.sha256(key.encode())
        for item in items[lo:hi]:
            h.update(b"\n" + digest(item).encode())
        out.append((f"{k:06d}-{h.hexdigest()[:16]}.jsonl", lo, hi))
    return out


def run_sharded(
    make_worker: Callable[[], Callable[[list], list[dict[str, Any]]]],
    items: Sequence[Any],
    folder: Path,
    cfg: RayConfig,
    *,
    key: str,
    digest: Callable[[Any], str],
    desc: str = "ray",
    unit: str = "row",
    progress: bool = True,
) -> Iterator[dict[str, Any]]:
    """Process ``items`` on the cluster (skipping the shards already in ``folder``) and return an
    iterator over the output rows in input order, read from the shard files. The work is done when
    this returns; remove ``folder`` once the rows are safely elsewhere (:func:`discard`)."""
    from tqdm.auto import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob(".*.tmp-*"):  # a driver killed mid-write
        leftover.unlink()
    shards = shard_names(items, cfg, key=key, digest=digest)
    todo = [k for k, (name, _, _) in enumerate(shards) if not (folder / name).is_file()]
    done = len(items) - sum(shards[k][2] - shards[k][1] for k in todo)
    if todo and done:
        print(f"resuming: {len(shards) - len(todo)} of {len(shards)} shards ({done} rows) already in {folder}", file=sys.stderr)
    if todo:
        with connected(cfg) as ray:
            actors = min(cfg.ray_actors, len(todo))
            _check_resources(ray, cfg, actors)
            ray.data.DataContext.get_current().enable_progress_bars = False  # the bar below counts rows
            attempts = ray.remote(num_cpus=0)(_Attempts).remote()
            inputs = ray.data.from_items([{"shard": k, "payload": pickle.dumps(list(items[shards[k][1]:shards[k][2]]))} for k in todo],
                                         override_num_blocks=len(todo))
            outputs = inputs.map_batches(
                _ShardActor, fn_constructor_kwargs={"make_worker": make_worker, "attempts": attempts, "retries": cfg.ray_retries},
                batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=cfg.ray_cpus_per_actor, num_gpus=cfg.ray_gpus_per_actor or None)
            try:
                with tqdm(total=len(items), initial=done, unit=unit, desc=desc, disable=not progress) as bar:
                    for out in outputs.iter_rows():
                        if out["error"] is not None:
                            _raise_worker_error(out["error"])
                        name, lo, hi = shards[int(out["shard"])]
                        _write_atomic(folder / name, out["rows"])
                        bar.update(hi - lo)
            finally:
                ray.kill(attempts)
    return _read(folder, shards)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read(folder: Path, shards: list[tuple[str, int, int]]) -> Iterator[dict[str, Any]]:
    for name, lo, hi in shards:
        with (folder / name).open(encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
        if len(rows) != hi - lo:  # only complete files are renamed into place: another program wrote this one
            raise ValueError(f"{folder / name} holds {len(rows)} rows, not the {hi - lo} of its shard; delete it and rerun")
        yield from rows


def discard(folder: Path) -> None:
    """Remove a finished run's shard folder."""
    shutil.rmtree(folder, ignore_errors=True)

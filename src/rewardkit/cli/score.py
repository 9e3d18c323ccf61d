"""rewardkit score: score every row of a file and write one JSONL line per input row, in order."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .common import (JsonlWriter, add_engine_options, add_image_options, add_reward_options, engine_config, image_policy_of, quiet_libraries,
                     reward_options)
from .flags import positive_int

HELP = "score a data file with a reward (one JSONL line per input row, in input order)"
EPILOG = """examples:
  rewardkit score --reward loglik:default --data pairs.jsonl --out pairs.scores.jsonl
  rewardkit score --reward length --data completions.jsonl --out scored.jsonl
  rewardkit score --reward remote:http://127.0.0.1:8000 --data vl_rewardbench.parquet --out vl.scores.jsonl
  rewardkit score --engine ray --ray-actors 4 --ray-gpus-per-actor 1 --reward classifier:./my-rm \\
      --data prefs.parquet --out prefs.scores.jsonl        # on a Ray cluster ($RAY_ADDRESS)

Pairwise rows give {"id","subset","chosen_score","rejected_score", ...}; best-of-N rows give
{"id","subset","scores","num_correct"}; {"prompt","completion"} rows give {"id","score"}. Per-sample
details (truncation, token counts, reasons for a null score) are kept. Pairwise and best-of-N output
can be evaluated later with `rewardkit eval --scores FILE`. Rows are written as they are scored; a rerun
into the same --out resumes: rows already there (ids of the input) are kept and only the other
samples are scored and appended (--overwrite starts afresh). With --engine ray the finished shards
are kept in OUT.shards until the end, and a rerun skips them."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reward", required=True, metavar="SPEC", help="reward spec; see `rewardkit ls`")
    p.add_argument("--data", required=True, metavar="DATA", help="data file or built-in benchmark (suite, suite:train)")
    p.add_argument("--format", default="auto", help="auto, pairwise, hh-rlhf, best-of-n, samples, vl-rewardbench, image-text (default auto)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="score only the first N rows")
    p.add_argument("--out", required=True, metavar="FILE", help="output JSONL file (an existing one is resumed: its rows are kept)")
    p.add_argument("--overwrite", action="store_true", help="start --out afresh instead of resuming it")
    add_image_options(p)
    add_reward_options(p)
    add_engine_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with image_policy_of(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..data.benchmarks import resolve_data
    from ..data.resume import check_settings, fingerprint, write_settings
    from ..evals.runner import score_dataset
    from ..specs import load_reward

    quiet_libraries()
    ray = engine_config(args)
    out = Path(args.out)
    check_out(out, args.data)
    shards = out.with_name(out.name + ".shards")  # the Ray engine's finished shards (a rerun skips them)
    data = resolve_data(args.data, format=args.format, limit=args.limit, seed=args.seed)
    if data.kind == "scores":
        print(f"error: {args.data} already holds scores", file=sys.stderr)
        return 2
    meta = {"reward": args.reward, "options": {k: v for k, v in reward_options(args).items() if isinstance(v, (str, int, float, bool, type(None)))},
            "format": args.format}
    check_settings(out, meta, overwrite=args.overwrite, also=shards)
    if args.overwrite:
        from ..engines.ray import discard

        discard(shards)
    kept, todo = (0, list(data.records)) if args.overwrite or not out.exists() else resume(out, data.records)
    if kept:
        print(f"resuming: {kept} rows already in {out}; scoring the other {len(todo)} of {len(data.records)} (--overwrite starts afresh)", file=sys.stderr)
    if not todo:
        print(f"nothing left to score: {out} holds a row for each of the {len(data.records)} input rows", file=sys.stderr)
        return 0
    if ray is not None:
        write_settings(out, meta)
        return _run_on_ray(args, ray, out, shards, meta, kept, todo)
    reward = load_reward(args.reward, **reward_options(args))
    write_settings(out, meta)
    writer = JsonlWriter(out, append=bool(kept))
    pending = iter(todo)

    def write(rows: list[dict]) -> None:  # each row carries its input's fingerprint, so a resume never pairs it with other text
        for row in rows:
            record = next(pending)
            if str(row.get("id")) != str(record.id):
                raise RuntimeError(f"internal error: row {row.get('id')!r} for record {record.id!r}")
            row["input_sha"] = fingerprint(record)
        writer(rows)

    try:
        run_ = score_dataset(reward, todo, on_rows=write)
    finally:
        writer.close()
    _report(run_, out, kept)
    return 0


def _run_on_ray(args: argparse.Namespace, ray: Any, out: Path, shards: Path, meta: dict, kept: int, todo: list) -> int:
    """Score ``todo`` on Ray (shards in ``OUT.shards``, resumed by a rerun), then append the rows to
    ``out`` in input order and drop the shards."""
    from ..data.resume import fingerprint
    from ..engines.ray import discard
    from ..evals.runner import score_on_ray

    run_, _ = score_on_ray(args.reward, reward_options(args), todo, shards, ray, key=json.dumps(meta, sort_keys=True))
    writer = JsonlWriter(out, append=bool(kept))
    try:
        for lo in range(0, len(todo), 1000):
            writer([{**row, "input_sha": fingerprint(record)} for record, row in zip(todo[lo : lo + 1000], run_.rows[lo : lo + 1000])])
    finally:
        writer.close()
    discard(shards)
    _report(run_, out, kept)
    return 0


def _report(run_: Any, out: Path, kept: int) -> None:
    none = sum(1 for r in run_.rows for s in (r.get("scores") or [r.get("score", 0), r.get("chosen_score", 0), r.get("rejected_score", 0)]) if s is None)
    print(f"wrote {len(run_.rows)} rows to {out}{f' ({kept + len(run_.rows)} in all)' if kept else ''} ({run_.samples} samples in {run_.seconds:.1f}s; "
          f"{run_.truncated} truncated; {none} unscored)", file=sys.stderr)


def check_out(out: Path, data: str) -> None:
    """Refuse an ``--out`` that is a directory or the ``--data`` file itself (also through a link)."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; name a file, e.g. {out / 'scores.jsonl'}")
    candidates = [Path(data)] + ([Path(data.split(":", 1)[1])] if ":" in data else [])
    for source in candidates:
        if out.exists() and source.is_file() and os.path.samefile(out, source):
            raise ValueError(f"--out {out} is the --data file {source}; scores would overwrite the input: write them to another file")


#: the score field each kind of record's output row carries
_SCORE_KEY = {"PairRecord": "chosen_score", "SampleRecord": "score", "BestOfNRecord": "scores"}


def resume(out: Path, records: Sequence[Any]) -> tuple[int, list[Any]]:
    """:func:`rewardkit.data.resume.resume` with the score fields of these records' rows."""
    from ..data.resume import resume as resume_rows

    return resume_rows(out, records, {_SCORE_KEY.get(type(r).__name__, "scores") for r in records}, what="score row")

"""Process reward models (PRMs): a score for every reasoning step, all steps in one forward pass.

* :class:`ProcessReward` (``value.py``): a value head on the LM read at each step's last token;
* :class:`LikelihoodPRM` (``likelihood.py``): a logistic head over the frozen LM's per-step surprise
  (the packaged ``prm:default``);
* :class:`ImplicitPRM` (``implicit.py``): step rewards from a policy/reference log-likelihood ratio,
  no step labels;
* ``steps.py``: the aggregates (min, last, product, mean, sum, clip, delta) and the one step output.

``prm:SPEC`` is :func:`load_prm`: one spec kind for both trained heads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .implicit import ImplicitPRM
from ...assets import packaged
from .likelihood import HEAD_FILE, LikelihoodPRM
from .steps import AGGREGATES, aggregate, step_output
from .value import ProcessReward

__all__ = ["AGGREGATES", "ImplicitPRM", "LikelihoodPRM", "ProcessReward", "aggregate", "load_prm", "step_output"]


def load_prm(model: Any = "default", *, tokenizer: Any = None, aggregate: str | None = None, clip_threshold: float | None = None,
             step_separator: str | None = None, step_end: str | None = None, num_labels: int | None = None,
             max_length: int | None = None, max_tokens_per_batch: int | None = None, batch_size: int | None = None,
             max_padding: float | None = None, packing: str | None = None, truncation_side: str | None = None, padding_side: str | None = None,
             chat_template: str | None = None, system_prompt: str | None = None, device: str | None = None, dtype: str | None = None, seed: int | None = None, progress: bool | None = None,
             name: str | None = None, **kwargs: Any) -> Any:
    """The PRM a ``prm:`` spec names: ``default`` = the packaged likelihood-head PRM (the value-head one
    when this install has no head), ``default-value`` = the packaged value-head PRM, a directory holding
    ``prm_head.json`` (or the ``.json`` file itself) = a :class:`LikelihoodPRM`, any other model
    directory, adapter or hub id = a value-head :class:`ProcessReward`. Options left ``None`` keep the
    class's default."""
    local = dict(locals())
    options = {k: local[k] for k in ("tokenizer", "aggregate", "clip_threshold", "step_separator", "step_end", "num_labels", "max_length",
                                     "max_tokens_per_batch", "batch_size", "max_padding", "packing", "truncation_side", "padding_side",
                                     "chat_template", "system_prompt", "device", "dtype", "seed", "progress", "name") if local[k] is not None}
    options.update(kwargs)
    if isinstance(model, (str, Path)):
        if model == "default" and packaged("default_prm_head") is not None:
            return LikelihoodPRM("default", **options)
        p = Path(model)
        if model not in ("default", "default-value") and ((p / HEAD_FILE).is_file() or (p.name.endswith(".json") and p.is_file())):
            return LikelihoodPRM(str(p), **options)
    return ProcessReward(model, **options)

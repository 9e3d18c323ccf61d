"""Reward specs: short strings such as ``length``, ``loglik:default`` or ``classifier:PATH`` that
the CLI turns into reward objects. One lazy alias map, nothing else (no registry)."""
from __future__ import annotations

import importlib
import inspect
from typing import Any

from .protocol import FunctionReward, Reward

#: kind -> "module:Class". The argument after ``kind:`` is the class's first parameter (``model`` for
#: model-backed rewards).
ALIASES: dict[str, str] = {
    "length": "rewardkit.rewards.baselines:LengthReward",
    "loglik": "rewardkit.rewards.likelihood:LogLikelihoodReward",
    "classifier": "rewardkit.rewards.classifier:ClassifierReward",
    "rule": "rewardkit.rewards.rules:load_rule",
}

DESCRIPTIONS: dict[str, str] = {
    "length": "baseline: longer completion = higher score (length:chars for characters)",
    "loglik": "zero-shot: mean log-probability of the completion under a causal LM (loglik:default = embedded model)",
    "classifier": "sequence-classification reward model (classifier:PATH_OR_HUB_ID; several objectives if num_labels > 1)",
    "rule": "verifiable rule: rule:math, rule:code, rule:constraints, ... (see the rules list below)",
    "py": "your own function or Reward class: py:package.module:name",
}


class RewardSpecError(ValueError):
    pass


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise RewardSpecError(f"expected 'package.module:name', got {target!r}")
    try:
        obj = importlib.import_module(module)
    except ImportError as err:
        raise RewardSpecError(f"cannot import {module!r}: {err}") from err
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as err:
            raise RewardSpecError(f"{module!r} has no attribute {attr!r}") from err
    return obj


def reward_class(kind: str) -> type:
    if kind not in ALIASES:
        raise RewardSpecError(unknown_kind_message(kind))
    return _import(ALIASES[kind])


def unknown_kind_message(kind: str) -> str:
    known = ", ".join(sorted(ALIASES) + ["py"])
    hint = ""
    if kind == "default":
        hint = " (the bare spec 'default' will name the trained default reward model once training lands; use loglik:default for the embedded model)"
    return f"unknown reward kind {kind!r}{hint}; known kinds: {known} (see `rewardkit ls`)"


def load_reward(spec: str | Reward, **options: Any) -> Reward:
    """Build a reward from a spec. ``options`` (e.g. ``max_length``, ``seed``) are passed to the
    class when its ``__init__`` accepts them; ``None`` values are ignored."""
    if not isinstance(spec, str):
        return spec
    kind, sep, arg = spec.strip().partition(":")
    if kind == "py":
        obj = _import(arg)
        if inspect.isclass(obj):
            return obj(**_accepted(obj, options))
        return obj if hasattr(obj, "score") else FunctionReward(obj)
    cls = reward_class(kind)
    kwargs = _accepted(cls, options)
    init = cls.__init__ if inspect.isclass(cls) else cls
    params = [p for p in inspect.signature(init).parameters.values() if p.name != "self"]
    if sep:
        if not arg:
            raise RewardSpecError(f"reward spec {spec!r} has an empty argument after ':'")
        kwargs[params[0].name] = arg
    return cls(**kwargs)


def _accepted(cls: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The options a class (its ``__init__`` chain) or a factory function names explicitly."""
    params = {}
    if not inspect.isclass(cls):
        sig = inspect.signature(cls)
        names = {n for n, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        return {k: v for k, v in options.items() if v is not None and k in names}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        sig = inspect.signature(init)
        params.update({n: p for n, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)})
        if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            break
    return {k: v for k, v in options.items() if v is not None and k in params}

"""Reward specs: short strings such as ``length``, ``loglik:default`` or ``classifier:PATH`` that
the CLI turns into reward objects. One lazy alias map, nothing else (no registry).

Compositions use a call syntax whose arguments are specs again::

    ensemble:mean(loglik:default, length)          ensemble:lcb(a, b, k=0.5)
    ensemble:weighted(a, b, weights=[0.7, 0.3])    ensemble:and(a, b)
    transform:clip(loglik:default, min=-5, max=0)  transform:group(a)   transform:par(a, center=1)
    gate(rule:math, loglik:default)                rule:regex(pattern=^Answer:, workers=2)

and a reward with options of its own is ``kind:ARG(option=value, ...)``, e.g.
``clip:openai/clip-vit-base-patch32(metric=goal, baseline='a humanoid robot', alpha=0.5)``

or a YAML file (``--reward my_reward.yaml``) that names a kind (or ``class: module:Class``) and its
keyword arguments; ``members`` / ``inner`` / ``verifier`` / ``fallback`` hold nested specs.
"""
from __future__ import annotations

import contextvars
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

from .assets import packaged
from .protocol import FunctionReward, Reward

#: kind -> ("module:Class" or "module:factory", description for `rewardkit ls`). The argument after
#: ``kind:`` is the target's first parameter (``model`` for model-backed rewards). ``py`` (your own
#: function or class, ``py:package.module:name``) needs no entry.
ALIASES: dict[str, tuple[str, str]] = {
    "length": ("rewardkit.rewards.baselines:LengthReward",
               "baseline: longer completion = higher score (length:chars for characters)"),
    "loglik": ("rewardkit.rewards.likelihood:LogLikelihoodReward",
               "zero-shot: mean log-probability of the completion under a causal LM (loglik:default = embedded model)"),
    "classifier": ("rewardkit.rewards.classifier:ClassifierReward",
                   "sequence-classification reward model (classifier:PATH_OR_HUB_ID; several objectives if num_labels > 1)"),
    "vlm-classifier": ("rewardkit.rewards.vlm_classifier:VLMClassifierReward",
                       "vision-language reward model: a scalar head on an image-text-to-text model (vlm-classifier:DIR from "
                       "`rewardkit train --objective vlm-bt`, or a VLM checkpoint with a random head)"),
    "rule": ("rewardkit.rewards.rules:load_rule",
             "verifiable rule: rule:math, rule:code, rule:constraints, ... (see the rules list below)"),
    "ensemble": ("rewardkit.rewards.ensemble:EnsembleReward",
                 "ensemble:mean|min|max|lcb|weighted|and(spec, spec, ...; k=, weights=[..], centers=[..]); member scores in `vector`"),
    "transform": ("rewardkit.rewards.ensemble:TransformReward",
                  "transform:zscore|group|clip|logsigmoid|par|turn(spec, mean=, std=, min=, max=, center=)"),
    "gate": ("rewardkit.rewards.ensemble:GateReward",
             "gate(verifier, fallback): the verifier decides when it can, the fallback fills in (source in extras)"),
    "remote": ("rewardkit.rewards.remote:RemoteReward",
               "a reward served by `rewardkit serve` elsewhere: remote:http://HOST:PORT (token from REWARDKIT_API_TOKEN)"),
    "prm": ("rewardkit.rewards.process:load_prm",
            "process reward model: a score per step in one forward pass (prm:default = the packaged likelihood-head PRM, prm:default-value = the packaged value-head PRM, prm:PATH; aggregate=min|last|product|mean|clip|delta)"),
    "implicit-prm": ("rewardkit.rewards.process:ImplicitPRM",
                     "implicit PRM: step rewards beta*log(pi/pi_ref) summed over each step's tokens (implicit-prm:POLICY, reference=REF)"),
    "judge": ("rewardkit.rewards.judge:JudgeReward",
              "LLM-as-a-judge, pointwise score (judge:default = embedded model; judge:openai:MODEL@URL = any OpenAI-compatible server, (images=true) for a vision-language one; judge:VLM_DIR reads images locally)"),
    "pairwise": ("rewardkit.rewards.judge:PairwiseJudge",
                 "LLM-as-a-judge comparing responses to the same prompt in both orders; score = win probability (pairwise:default)"),
    "verify": ("rewardkit.rewards.judge:VerifierJudge",
               "reference-guided judge: correct/incorrect against the `answer` or `reference` column, hardened against empty answers (verify:default)"),
    "listwise": ("rewardkit.rewards.judge:ListwiseJudge",
                 "LLM-as-a-judge ranking all responses to a prompt in one call, in several seeded orders, Borda-aggregated (listwise:default)"),
    "dpo": ("rewardkit.rewards.implicit:DPOReward",
            "DPO implicit reward beta*(log pi - log pi_ref): dpo:POLICY,REF"),
    "ratio": ("rewardkit.rewards.implicit:DensityRatioReward",
              "strong-over-weak density ratio log p_strong - log p_weak: ratio:STRONG,WEAK"),
    "flr": ("rewardkit.rewards.implicit:FollowUpReward",
            "follow-up likelihood: log-probability of a positive user follow-up after the response (flr:default)"),
    "clip": ("rewardkit.rewards.clip:ClipReward",
             "image-text similarity on a CLIP/SigLIP dual encoder: clip:DIR_OR_HUB_ID(metric=clipscore|cosine|logit|probability|goal; "
             "w=2.5, baseline='TEXT', alpha=0.5, prefix='A photo depicts ', processor=DIR)"),
    "clip-head": ("rewardkit.rewards.clip:load_clip_head",
                  "a learned head over a dual encoder's embeddings (aesthetic predictor, preference head): clip-head:DIR (head.json names the backbone)"),
}
PY_DESCRIPTION = "your own function or Reward class: py:package.module:name"

#: keyword arguments of compositions that hold nested rewards
NESTED = ("members", "inner", "verifier", "fallback")

#: how deep compositions may nest (a spec's parentheses, a YAML file's nested rewards); far beyond any
#: real reward, and well inside Python's recursion limit
MAX_DEPTH = 64


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
    return _import(ALIASES[kind][0])


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
    text = spec.strip()
    if text.endswith((".yaml", ".yml")):
        return load_reward_yaml(text, **options)
    if "(" in text:
        return _build(parse_spec(text), options)
    if text == "default":
        path = packaged("default_rm")
        if path is None:
            raise RewardSpecError(unknown_kind_message("default"))
        cls = reward_class("classifier")
        return cls(str(path), **{**_accepted(cls, options), "name": "default"})
    kind, sep, arg = text.partition(":")
    if kind == "py":
        obj = _import(arg)
        if inspect.isclass(obj):
            check_reward_class(obj, arg)
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


def _with_options(text: str, options: dict[str, Any], fixed: dict[str, Any]) -> Reward:
    """``kind:ARG(option=value, ...)``: the reward ``kind:ARG`` with the spec's own options on top of
    the shared ones (an option the class does not take is an error naming it)."""
    kind, _, arg = text.partition(":")
    cls = reward_class(kind)
    init = cls.__init__ if inspect.isclass(cls) else cls
    first = next(p.name for p in inspect.signature(init).parameters.values() if p.name != "self")
    try:
        return cls(**{**_accepted(cls, options), **fixed, first: arg})
    except TypeError as err:
        raise RewardSpecError(f"{text}(...): {err}") from err


def check_reward_class(cls: type, target: str) -> None:
    """Before a class is instantiated as a reward: it must be one (derive from BaseReward, or have a
    callable ``score``), so a config naming any other class never runs that class's ``__init__``."""
    from .protocol import BaseReward

    if not (issubclass(cls, BaseReward) or callable(getattr(cls, "score", None))):
        raise RewardSpecError(f"class {target!r} is not a reward: it neither derives from rewardkit.protocol.BaseReward "
                              "nor has a score(prompts, completions, **columns) method")


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


# ------------------------------------------------------------------ composition specs

class Call:
    def __init__(self, func: str, args: list[Any], kwargs: dict[str, Any]):
        self.func, self.args, self.kwargs = func, args, kwargs

    def __repr__(self) -> str:
        return f"Call({self.func!r}, {self.args!r}, {self.kwargs!r})"


def parse_spec(text: str) -> Any:
    """Parse a spec into a string (a plain spec) or a :class:`Call` tree."""
    node, i = _parse_node(text, 0)
    if text[i:].strip():
        raise RewardSpecError(f"reward spec {text!r}: unexpected {text[i:].strip()!r} at position {i}")
    return node


_KEY = re.compile(r"\s*([A-Za-z_]\w*)\s*=(?!=)")


def _parse_node(text: str, i: int, depth: int = 1) -> tuple[Any, int]:
    start = i
    while i < len(text) and text[i] not in "(),":
        i += 1
    token = text[start:i].strip()
    if not token:
        raise RewardSpecError(f"reward spec {text!r}: expected a reward at position {start}")
    if i < len(text) and text[i] == "(":
        if depth > MAX_DEPTH:
            raise RewardSpecError(f"reward spec {_short(text)}: compositions nested more than {MAX_DEPTH} deep (at position {i})")
        i += 1
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        while True:
            while i < len(text) and text[i].isspace():
                i += 1
            if i >= len(text):
                raise RewardSpecError(f"reward spec {text!r}: missing ')' for {token}(")
            if text[i] == ")":
                return Call(token, args, kwargs), i + 1
            key = _KEY.match(text, i)
            if key:
                value, i = _parse_value(text, key.end())
                kwargs[key.group(1)] = value
            else:
                if kwargs:
                    raise RewardSpecError(f"reward spec {text!r}: a positional argument follows a keyword at position {i}")
                node, i = _parse_node(text, i, depth + 1)
                args.append(node)
            while i < len(text) and text[i].isspace():
                i += 1
            if i < len(text) and text[i] == ",":
                i += 1
            elif i < len(text) and text[i] != ")":
                raise RewardSpecError(f"reward spec {text!r}: expected ',' or ')' at position {i}")
    return token, i


def _short(text: str, n: int = 80) -> str:
    """A spec for an error message: the whole of a short one, the start and length of a long one."""
    return repr(text) if len(text) <= n else f"{text[:n]!r}... ({len(text)} characters)"


def _parse_value(text: str, i: int) -> tuple[Any, int]:
    while i < len(text) and text[i].isspace():
        i += 1
    if i < len(text) and text[i] == "[":
        end = text.find("]", i)
        if end < 0:
            raise RewardSpecError(f"reward spec {text!r}: missing ']' after position {i}")
        items = [x.strip() for x in text[i + 1 : end].split(",") if x.strip()]
        return [_scalar(x) for x in items], end + 1
    if i < len(text) and text[i] in "'\"":  # a quoted string stays a string (may hold , and ))
        end = text.find(text[i], i + 1)
        if end < 0:
            raise RewardSpecError(f"reward spec {text!r}: unterminated quote at position {i}")
        return text[i + 1 : end], end + 1
    start = i
    while i < len(text) and text[i] not in ",)":
        i += 1
    return _scalar(text[start:i].strip()), i


def _scalar(token: str) -> Any:
    low = token.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        return token


def _build(node: Any, options: dict[str, Any]) -> Reward:
    if isinstance(node, str):
        return load_reward(node, **options)
    kind, _, variant = node.func.partition(":")
    if kind == "rule" and not node.args:  # rule:NAME(option=value, ...): fixed options of the check
        from .rewards.rules import load_rule

        return load_rule(variant, **node.kwargs)
    if kind not in ("ensemble", "transform", "gate"):
        if variant and not node.args and kind in ALIASES:  # kind:ARG(option=value, ...): a reward with fixed options
            return _with_options(node.func, options, node.kwargs)
        raise RewardSpecError(f"{node.func}(...) is not a composition; use ensemble:HOW(...), transform:HOW(...) or gate(...)")
    cls = reward_class(kind)
    children = [_build(a, options) for a in node.args]
    try:
        if kind == "ensemble":
            return cls(children, variant or "mean", **node.kwargs)
        if kind == "transform":
            if len(children) != 1:
                raise RewardSpecError(f"{node.func}(...) takes exactly one reward, got {len(children)}")
            return cls(children[0], variant, **node.kwargs)
        if len(children) != 2:
            raise RewardSpecError(f"gate(...) takes a verifier and a fallback, got {len(children)} rewards")
        return cls(children[0], children[1], **node.kwargs)
    except TypeError as err:
        raise RewardSpecError(f"{node.func}(...): {err}") from err


#: the reward files being read, outermost first (a file that names itself is an error, not a RecursionError)
_YAML_FILES: contextvars.ContextVar[tuple[Path, ...]] = contextvars.ContextVar("rewardkit_yaml_files", default=())


def load_reward_yaml(path: str | Path, **options: Any) -> Reward:
    """A reward declared in YAML: ``kind`` (or ``class: module:Class``) plus its keyword arguments."""
    from .data.io import DataFormatError, read_yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reward file not found: {path}")
    outer = _YAML_FILES.get()
    if path.resolve() in outer:  # raised inside the file that names it, which prefixes its own path
        raise RewardSpecError(f"names {path}, which is already being read (a reward file cannot contain itself: "
                              f"{' -> '.join(str(p) for p in outer + (path.resolve(),))})")
    if len(outer) >= MAX_DEPTH:
        raise RewardSpecError(f"reward files name each other more than {MAX_DEPTH} deep (at {path})")
    try:
        spec = read_yaml(path)
    except DataFormatError as err:
        raise RewardSpecError(str(err)) from None
    token = _YAML_FILES.set(outer + (path.resolve(),))
    try:
        return _build_mapping(spec, options)
    except (RewardSpecError, TypeError, ValueError) as err:
        raise RewardSpecError(f"{path}: {err}") from err
    finally:
        _YAML_FILES.reset(token)


def _build_mapping(spec: Any, options: dict[str, Any], depth: int = 1) -> Reward:
    if depth > MAX_DEPTH:
        raise RewardSpecError(f"rewards nested more than {MAX_DEPTH} deep (members/inner/verifier/fallback inside each other)")
    if isinstance(spec, str):
        return load_reward(spec, **options)
    if not isinstance(spec, dict):
        raise RewardSpecError(f"a reward must be a spec string or a mapping, got {type(spec).__name__}")
    spec = dict(spec)
    if "class" in spec:
        name = spec.pop("class")
        if not isinstance(name, str):
            raise RewardSpecError(f"'class' must be 'package.module:Class', got {name!r}")
        target = _import(name)
        if inspect.isclass(target):
            check_reward_class(target, name)
    elif "kind" in spec:
        target = reward_class(spec.pop("kind"))
    else:
        raise RewardSpecError("a reward mapping needs 'kind' (see `rewardkit ls`) or 'class: module:Class'")
    for key in NESTED:
        if key in spec:
            value = spec[key]
            spec[key] = ([_build_mapping(v, options, depth + 1) for v in value] if isinstance(value, list)
                         else _build_mapping(value, options, depth + 1))
    merged = {**_accepted(target, options), **spec}
    built = target(**merged)
    if not callable(getattr(built, "score", None)):  # a factory function: its result is checked instead
        raise RewardSpecError(f"{getattr(target, '__qualname__', target)!r} did not return a reward (got {type(built).__name__}, which has no score method)")
    return built

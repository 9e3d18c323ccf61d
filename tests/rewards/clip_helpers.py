"""Tiny random dual encoders built from the real architecture configs (CLIP, SigLIP) and saved the way
a user's checkpoint is: ``save_pretrained`` weights, a character-level tokenizer that puts BOS/EOS
around a text, and a saved image processor; plus real photographs from scikit-image."""
from __future__ import annotations

import string
from pathlib import Path

import numpy as np

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
TEXT_POSITIONS = 24  # small, so that truncation is cheap to reach


def tiny_tokenizer(eos: bool = True):
    """Character-level fast tokenizer: ``<s> text </s>`` (CLIP reads a text at its end token)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + sorted(set(string.printable)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    single = "<s> $A </s>" if eos else "<s> $A"
    tok.post_processor = processors.TemplateProcessing(single=single, special_tokens=[("<s>", 2), ("</s>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


def save_tiny_clip(path: Path, *, seed: int = 0, eos: bool = True) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    tokenizer = tiny_tokenizer(eos)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=TEXT_POSITIONS, bos_token_id=2, eos_token_id=3, pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    # the preprocessing of OpenAI's checkpoints, at 32 px: shortest side to 32, center crop 32x32, CLIP mean/std
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def save_tiny_siglip(path: Path, *, seed: int = 0) -> Path:
    import torch
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel

    tokenizer = tiny_tokenizer(True)
    config = SiglipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16, pad_token_id=0, bos_token_id=2, eos_token_id=3),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
    )
    torch.manual_seed(seed)
    SiglipModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def photos(root: Path) -> dict[str, Path]:
    """A few of scikit-image's public-domain photographs as PNG files (different sizes and modes)."""
    from PIL import Image
    from skimage import data

    out = {}
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera"):
        array = getattr(data, name)()
        out[name] = root / f"{name}.png"
        Image.fromarray(array).save(out[name])
    return out


def tinted(array: np.ndarray, colour: str) -> np.ndarray:
    """A photograph pushed towards red or blue (the synthetic preference task)."""
    rgb = np.repeat(array[..., None], 3, axis=-1) if array.ndim == 2 else array[..., :3]
    out = rgb.astype(np.float32) * 0.4
    out[..., 0 if colour == "red" else 2] += 150
    return np.clip(out, 0, 255).astype(np.uint8)

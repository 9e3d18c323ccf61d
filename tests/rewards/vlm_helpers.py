"""For the vision-language judge tests: a tiny random Idefics3 (SmolVLM's architecture) saved the way a
user's checkpoint is (weights, a character-level tokenizer with Idefics3's image tokens, its Pillow
image processor and a chat template in the processor), and a real OpenAI-compatible "VLM" server on
loopback whose verdicts are computed from the pixels of the images it receives."""
from __future__ import annotations

import base64
import io
import re
import string
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients"))
from client_helpers import AppServerThread  # noqa: E402

# the processor's image tokens, then row/column tags of split images (Idefics3 tags up to 6 x 6 crops)
SPECIALS = ["<pad>", "<unk>", "<s>", "<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"] + [
    f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
# renders every content as parts: {"type": "image"} -> <image>, which the processor expands into the image's tokens
CHAT_TEMPLATE = (
    "<s>{% for m in messages %}{{ m['role'] | capitalize }}:"
    "{% for p in m['content'] %}{% if p['type'] == 'image' %}<image>{% else %}{{ p['text'] }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}")


def save_tiny_idefics3(path: Path, *, seed: int = 0) -> Path:
    """A 2-layer random Idefics3 (SigLIP-style vision tower on 32 px crops of 8 px patches, pixel
    shuffle by 2: 4 image tokens per crop; images up to 64 px are split into 2 x 2 crops plus a
    global view), loadable by ``AutoModelForImageTextToText`` / ``AutoProcessor``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil, Idefics3Processor, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + sorted(set(string.printable)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="<end_of_utterance>", pad_token="<pad>",
                                        unk_token="<unk>", additional_special_tokens=SPECIALS[3:])
    processor = Idefics3Processor(
        Idefics3ImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True),
        tokenizer, image_seq_len=4, chat_template=CHAT_TEMPLATE)
    config = Idefics3Config(
        text_config=dict(model_type="llama", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024, pad_token_id=0,
                         bos_token_id=vocab["<s>"], eos_token_id=vocab["<end_of_utterance>"]),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8),
        scale_factor=2, image_token_id=vocab["<image>"], pad_token_id=0)
    torch.manual_seed(seed)
    Idefics3ForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path


def png_part(array: np.ndarray) -> dict[str, str]:
    """An image as the canonical inline part."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return {"type": "image", "base64": base64.b64encode(buf.getvalue()).decode("ascii")}


# ---------------------------------------------------------------------- the fake VLM server

def redness(url: str) -> float:
    """Mean red minus mean blue of a ``data:image/...;base64`` image (decoded with Pillow)."""
    from PIL import Image

    head, _, payload = url.partition(",")
    if not re.fullmatch(r"data:image/(png|jpeg);base64", head):
        raise ValueError(f"not a base64 data URL: {head[:40]!r}")
    rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB"), dtype=np.float64)
    return float(rgb[..., 0].mean() - rgb[..., 2].mean())


def colour(url: str) -> str:
    return "red" if redness(url) > 0 else "blue"


def sections(parts: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The user turn cut at the template's ``[Label]`` headings: label -> its texts and image URLs, in order."""
    out: dict[str, list[Any]] = {"": []}
    label = ""
    for p in parts:
        if p["type"] == "text":
            for piece in re.split(r"(\[[A-Za-z ]+\])", p["text"]):
                if re.fullmatch(r"\[[A-Za-z ]+\]", piece):
                    label = piece[1:-1]
                    out.setdefault(label, [])
                elif piece.strip():
                    out[label].append(piece.strip())
        elif p["type"] == "image_url":
            out[label].append({"image": p["image_url"]["url"]})
        else:
            raise ValueError(f"unexpected content part {p['type']!r}")
    return out


def verdict(parts: list[dict[str, Any]]) -> str:
    """What a colour-minded VLM judge answers, from the pixels: pairwise, the redder response's image
    wins (a tie goes to A: a position bias to measure), or of text answers the one naming the colour
    of the request's image (A when neither or both do); pointwise, 5 when the response image is red
    or the text answer names the colour of the request's image, else 1; verify, correct when the
    answer names the colour of the question's image."""
    s = sections(parts)
    images = lambda label: [x["image"] for x in s.get(label, []) if isinstance(x, dict)]  # noqa: E731
    texts = lambda label: " ".join(x for x in s.get(label, []) if isinstance(x, str)).lower()  # noqa: E731
    if "Response A" in s:
        if images("Response A"):
            a, b = redness(images("Response A")[0]), redness(images("Response B")[0])
            return " B" if b > a + 1e-6 else " A"
        asked = colour(images("Request")[0])  # text answers to a question about the request's image
        return " B" if asked in texts("Response B").split("which")[0] and asked not in texts("Response A") else " A"
    if "Reference answer" in s:
        asked = colour(images("Question")[0])
        return " correct" if asked in texts("Response").split("rate")[0] else " incorrect"
    shown = images("Response")
    if shown:
        return " 5" if colour(shown[0]) == "red" else " 1"
    return " 5" if colour(images("Request")[0]) in texts("Response").split("rate")[0] else " 1"


def create_vlm_app(*, reads_images: bool = True):
    """An OpenAI-compatible chat endpoint. ``reads_images``: a VLM that answers from the pixels (and
    refuses a request without images: the judge must have sent them); else a text-only model that
    refuses image parts with a 400, as vLLM does for a model without a vision tower."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()
    app.state.requests = []

    @app.get("/ready")
    def ready() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> Any:
        app.state.requests.append(body)
        user = [m for m in body["messages"] if m["role"] == "user"]
        parts = user[-1]["content"] if user and isinstance(user[-1]["content"], list) else []
        has_images = any(p.get("type") == "image_url" for p in parts)
        if not reads_images and has_images:
            return JSONResponse({"error": {"message": "this model does not support image inputs", "type": "BadRequestError"}}, 400)
        if reads_images and not has_images:
            return JSONResponse({"error": {"message": "expected image_url parts in the user message"}}, 400)
        try:
            text = verdict(parts) if has_images else " 3"
        except (ValueError, IndexError, KeyError) as err:
            return JSONResponse({"error": {"message": f"cannot judge this request: {err}"}}, 400)
        continued = body.get("continue_final_message") and body["messages"][-1]["role"] == "assistant"
        if not continued:  # a plain chat request: the whole answer line
            text = ("Verdict:" if text.strip() in ("A", "B", "correct", "incorrect") else "Score:") + text
        choices = [{"index": k, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"} for k in range(body.get("n", 1))]
        return {"id": "x", "object": "chat.completion", "model": body["model"], "choices": choices,
                "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}

    return app


class VLMServer(AppServerThread):
    """``with VLMServer() as srv:`` -> the fake VLM on a free loopback port (base URL ``srv.base``)."""

    what = "fake VLM server"

    def __init__(self, **kwargs: Any):
        super().__init__(create_vlm_app(**kwargs))
        self.base = self.url + "/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.app.state.requests

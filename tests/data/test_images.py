"""Images through the data layer and the protocol, on real photographs (scikit-image's public-domain
samples saved as PNG and JPEG): every accepted shape loads the same pixels, limits and decompression
bombs are clear errors naming the file and row, the readers map VL-RewardBench and image-text rows,
and a reward that does not read images leaves image samples unscored with the reason."""
from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import zlib
from pathlib import Path

import pytest

Image = pytest.importorskip("PIL.Image", reason="images need Pillow: pip install 'rewardkit[images]'")
skdata = pytest.importorskip("skimage.data", reason="the test photographs come from scikit-image")

from rewardkit import reward  # noqa: E402
from rewardkit.data.formats import load_dataset  # noqa: E402
from rewardkit.data.io import DataFormatError  # noqa: E402
from rewardkit.evals.runner import evaluate, score_dataset  # noqa: E402
from rewardkit.images import (  # noqa: E402
    ImageError,
    ImageLimits,
    ImagePolicy,
    ImageRef,
    completion_images,
    image_policy,
    prompt_images,
)
from rewardkit.rewards.baselines import LengthReward  # noqa: E402
from rewardkit.rewards.ensemble import EnsembleReward  # noqa: E402
from rewardkit.specs import load_reward  # noqa: E402


def pixel_id(mode: str, width: int, height: int, raw: bytes) -> str:
    return f"{mode} {width}x{height} {hashlib.sha256(raw).hexdigest()}"


def loaded_id(im) -> str:
    return pixel_id(im.mode, im.width, im.height, im.tobytes())


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """astronaut.png (lossless: its pixels are skimage's array) and coffee.jpg, with their pixel ids."""
    root = tmp_path_factory.mktemp("photos")
    astronaut, coffee = skdata.astronaut(), skdata.coffee()
    Image.fromarray(astronaut).save(root / "astronaut.png")
    Image.fromarray(coffee).save(root / "coffee.jpg", quality=90)
    with Image.open(root / "coffee.jpg") as im:
        coffee_id = loaded_id(im.convert("RGB"))
    return {"root": root, "astronaut": root / "astronaut.png", "coffee": root / "coffee.jpg",
            "astronaut_id": pixel_id("RGB", astronaut.shape[1], astronaut.shape[0], astronaut.tobytes()), "coffee_id": coffee_id}


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG of a few dozen bytes whose header declares ``width`` x ``height`` (a decompression bomb)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------ ImageRef

def test_every_shape_loads_the_same_pixels(photos):
    png = photos["astronaut"]
    data = b64(png)
    shapes = [
        {"type": "image", "path": str(png)},
        {"type": "image", "path": "astronaut.png"},  # relative to the data file's folder
        {"type": "image", "base64": data},
        {"type": "image", "image": data},
        {"type": "image", "image": "data:image/png;base64," + data},
        {"type": "image", "image": Image.open(png)},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + data}},
        {"type": "input_image", "image_url": "data:image/png;base64," + data},
        {"bytes": png.read_bytes(), "path": "ignored.png"},  # a Hugging Face Image feature as Parquet stores it
        png.read_bytes(),
        data,
        "file://" + str(png),
    ]
    for shape in shapes:
        ref = ImageRef.parse(shape, base_dir=photos["root"])
        assert loaded_id(ref.load()) == photos["astronaut_id"], shape if not isinstance(shape, (bytes, str)) else type(shape)
        info = ref.check()
        assert (info.width, info.height) == (512, 512)
    # a JPEG decodes to what Pillow itself decodes from the file, at skimage's size
    jpeg = ImageRef.parse(str(photos["coffee"])).load()
    assert jpeg.size == (600, 400) and loaded_id(jpeg) == photos["coffee_id"]
    # the canonical part is JSON, and inline parts carry the file's bytes unchanged
    part = ImageRef.parse(str(png)).to_part(inline=True)
    assert json.loads(json.dumps(part)) == {"type": "image", "base64": data}


def test_shapes_that_are_not_images_say_why(photos):
    with pytest.raises(ImageError, match="placeholder"):
        ImageRef.parse({"type": "image"})
    with pytest.raises(ImageError, match="more than one source"):
        ImageRef.parse({"type": "image", "path": "a.png", "url": "http://x/a.png"})
    with pytest.raises(ImageError, match="data: URL must be base64"):
        ImageRef.parse("data:image/png,rawtext")
    with pytest.raises(ImageError, match="must be http"):
        ImageRef.parse({"type": "image_url", "image_url": {"url": "ftp://host/a.png"}})
    with pytest.raises(ImageError, match="no such file"):
        ImageRef.parse("missing.png", base_dir=photos["root"]).check()
    with pytest.raises(ImageError, match="not an image Pillow can read"):
        ImageRef.parse(b"GIF89a but not really").load()


def test_a_decompression_bomb_is_an_error_before_any_decoding(photos, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(50000, 50000))
    assert bomb.stat().st_size < 200
    start = time.perf_counter()
    with pytest.raises(ImageError, match="decompression bomb") as err:
        ImageRef.parse(str(bomb)).load()
    assert str(bomb) in str(err.value) and time.perf_counter() - start < 2
    # within Pillow's own limit it is rewardkit's pixel limit that refuses, naming the declared size
    small_bomb = png_declaring(9000, 6000)  # 54 M pixels > 50 M
    with pytest.raises(ImageError, match=r"declares 9000x6000 = 54000000 pixels, over the limit of 50000000"):
        ImageRef.parse(small_bomb).check()
    # and the limit is ours to set: the astronaut (262144 pixels) is refused under a smaller one
    with pytest.raises(ImageError, match="over the limit of 1000"):
        ImageRef.parse(str(photos["astronaut"])).load(ImagePolicy(limits=ImageLimits(max_pixels=1000)))
    # in a data file the error names the file, the line and the field
    rows = write_jsonl(tmp_path / "bombs.jsonl", [
        {"prompt": "fine", "image": str(photos["astronaut"]), "chosen": "a", "rejected": "b"},
        {"prompt": "bad", "image": "bomb.png", "chosen": "a", "rejected": "b"},
    ])
    with pytest.raises(DataFormatError, match=r"bombs\.jsonl:line 2: field 'image': .*bomb\.png.*decompression bomb"):
        load_dataset(rows)


def test_oversized_images_are_refused_by_bytes(photos):
    small = ImagePolicy(limits=ImageLimits(max_bytes=10_000))
    size = photos["astronaut"].stat().st_size
    with pytest.raises(ImageError, match=f"{size} bytes is over the limit of 10000 bytes"):
        ImageRef.parse(str(photos["astronaut"])).check(small)
    with pytest.raises(ImageError, match="over the limit of 10000 bytes"):  # base64 is measured before it is decoded
        ImageRef.parse({"type": "image", "base64": b64(photos["astronaut"])}).load(small)
    with image_policy(small), pytest.raises(ImageError, match="over the limit"):  # the policy in force applies
        ImageRef.parse(photos["coffee"].read_bytes()).load()


def test_paths_and_urls_follow_the_policy(photos):
    ref = ImageRef.parse(str(photos["astronaut"]))
    with pytest.raises(ImageError, match="local image paths are not read here"):
        ref.load(ImagePolicy(allow_paths=False))
    url = ImageRef.parse("https://images.example.org/a.png")
    with pytest.raises(ImageError, match="image URLs are off unless allowed"):
        url.data()
    named = ImagePolicy(allow_urls=("images.example.org",))
    assert named.url_refusal(url.value) is None
    assert "not among the allowed hosts" in named.url_refusal("https://evil.example.com/a.png")
    assert ImagePolicy(allow_urls=(".example.org",)).url_refusal("http://cdn.example.org/x.jpg") is None
    anyhost = ImagePolicy(allow_urls=("*",))
    assert anyhost.url_refusal("https://example.com/a.png") is None
    assert "internal address" in anyhost.url_refusal("http://169.254.169.254/latest/meta-data")
    assert "internal address" in anyhost.url_refusal("http://127.0.0.1:8000/a.png")
    assert "only http(s)" in anyhost.url_refusal("gopher://example.com/a.png")


def test_prompt_images_fill_placeholders_from_the_images_column(photos):
    astronaut, coffee = str(photos["astronaut"]), str(photos["coffee"])
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "and"}, {"type": "image"}]}]
    refs = prompt_images(prompt, [coffee, astronaut])
    assert [loaded_id(r.load()) for r in refs] == [photos["coffee_id"], photos["astronaut_id"]]
    assert [loaded_id(r.load()) for r in prompt_images("a text prompt", astronaut)] == [photos["astronaut_id"]]
    with pytest.raises(ImageError, match="2 image placeholders but the sample has 1"):
        prompt_images(prompt, [coffee])
    assert [loaded_id(r.load()) for r in completion_images([{"type": "text", "text": "x"}, {"type": "image", "path": coffee}])] == [photos["coffee_id"]]


# ------------------------------------------------------------------ readers

def test_vl_rewardbench_rows_become_pairs(photos, tmp_path):
    rows = [
        {"id": "w1", "query": "Who is this?", "image": "astronaut.png", "response": ["An astronaut.", "A chef."],
         "human_ranking": [0, 1], "query_source": "wildvision", "ground_truth": "astronaut", "models": ["m1", "m2"]},
        {"id": "p1", "query": "What drink?", "image": "data:image/jpeg;base64," + b64(photos["coffee"]),
         "response": ["Tea.", "Coffee."], "human_ranking": [1, 0], "query_source": "povid"},
    ]
    data = load_dataset(write_jsonl(photos["root"] / "vlrb.jsonl", rows))
    assert (data.format, data.kind) == ("vl-rewardbench", "pairs")
    first, second = data.records
    assert (first.chosen, first.rejected, first.subset) == ("An astronaut.", "A chef.", "wildvision")
    assert (second.chosen, second.rejected, second.subset) == ("Coffee.", "Tea.", "povid")  # [1, 0]: the second is preferred
    assert first.prompt == [{"role": "user", "content": [{"type": "image", "path": str(photos["astronaut"])},
                                                         {"type": "text", "text": "Who is this?"}]}]
    assert first.columns == {"ground_truth": "astronaut", "models": ["m1", "m2"], "query_source": "wildvision"}
    assert loaded_id(prompt_images(second.prompt)[0].load()) == photos["coffee_id"]
    bad = write_jsonl(tmp_path / "tie.jsonl", [{**rows[0], "image": str(photos["astronaut"]), "human_ranking": [0, 0]}])
    with pytest.raises(DataFormatError, match=r"tie\.jsonl:line 1: field 'human_ranking': a tie"):
        load_dataset(bad)
    three = write_jsonl(tmp_path / "three.jsonl", [{**rows[0], "image": str(photos["astronaut"]), "response": ["a", "b", "c"]}])
    with pytest.raises(DataFormatError, match=r"line 1: field 'response': expected a list of two"):
        load_dataset(three)


def test_parquet_image_structs_and_binary_columns(photos, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    png = photos["astronaut"].read_bytes()
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({
        "id": ["r1"], "query": ["Who?"], "response": [["An astronaut.", "A cat."]], "human_ranking": [[0, 1]],
        "image": pa.array([{"bytes": png, "path": "astronaut.png"}], type=image_type),
    })
    pq.write_table(table, tmp_path / "vlrb.parquet")
    record = load_dataset(tmp_path / "vlrb.parquet").records[0]
    assert loaded_id(prompt_images(record.prompt)[0].load()) == photos["astronaut_id"]
    # a plain binary column holding the image
    pq.write_table(pa.table({"caption": ["a cup of coffee"], "image": pa.array([photos["coffee"].read_bytes()], type=pa.binary())}),
                   tmp_path / "captions.parquet")
    sample = load_dataset(tmp_path / "captions.parquet").records[0]
    assert sample.prompt == "a cup of coffee" and loaded_id(completion_images(sample.completion)[0].load()) == photos["coffee_id"]


def test_image_text_rows_and_image_content_parts(photos, tmp_path):
    rows = [{"caption": "an astronaut", "image": "astronaut.png", "source": "skimage"}]
    data = load_dataset(write_jsonl(photos["root"] / "captions.jsonl", rows))
    assert (data.format, data.kind) == ("image-text", "samples")
    record = data.records[0]
    assert record.prompt == "an astronaut" and record.subset == "skimage"
    assert record.completion == [{"type": "image", "path": str(photos["astronaut"])}]
    # TRL's layout: placeholders in the prompt, the images in their own column; a generated image as completion
    pairs = [{"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}],
              "images": ["coffee.jpg"], "chosen": "Coffee.", "rejected": "Tea.", "answer": "coffee"},
             {"prompt": "Draw an astronaut.", "chosen": [{"type": "image", "path": "astronaut.png"}],
              "rejected": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + b64(photos["coffee"])}}]},
             {"prompt": [{"role": "user", "content": [{"type": "text", "text": "only "}, {"type": "text", "text": "text"}]}],
              "chosen": "a", "rejected": "b"}]
    a, b, c = load_dataset(write_jsonl(photos["root"] / "mixed.jsonl", pairs)).records
    assert a.prompt[0]["content"][0] == {"type": "image", "path": str(photos["coffee"])} and a.columns == {"answer": "coffee"}
    assert loaded_id(completion_images(b.rejected)[0].load()) == photos["coffee_id"]
    assert c.prompt == [{"role": "user", "content": "only text"}]  # text-only parts read as before
    missing = write_jsonl(tmp_path / "holes.jsonl", [{**pairs[0], "images": []}])
    with pytest.raises(DataFormatError, match=r"holes\.jsonl:line 1: field 'images': the prompt has 1 image placeholder"):
        load_dataset(missing)
    odd = write_jsonl(tmp_path / "odd.jsonl", [{"prompt": [{"role": "user", "content": [{"type": "audio", "data": "x"}]}], "chosen": "a", "rejected": "b"}])
    with pytest.raises(DataFormatError, match=r"line 1: field 'prompt\[0\]\.content\[0\]': a content part must be"):
        load_dataset(odd)


def test_image_urls_in_data_files_are_refused_unless_allowed(photos, tmp_path):
    rows = write_jsonl(tmp_path / "urls.jsonl", [{"caption": "x", "image": "https://images.example.org/a.png"}])
    with pytest.raises(DataFormatError, match=r"urls\.jsonl:line 1: field 'image': .*--allow-image-urls"):
        load_dataset(rows)
    with image_policy(ImagePolicy(allow_urls=("images.example.org",))):
        record = load_dataset(rows).records[0]  # kept as a URL: fetched only when a reward reads it
    assert record.completion == [{"type": "image", "url": "https://images.example.org/a.png"}]


# ------------------------------------------------------------------ the protocol: who reads images

def _pixels(prompts, completions, images=None):
    out = []
    for i, (p, c) in enumerate(zip(prompts, completions)):
        refs = prompt_images(p, images[i] if images is not None else None) + completion_images(c)
        out.append(float(sum(r.load().width * r.load().height for r in refs)))
    return out


def test_a_reward_that_does_not_read_images_leaves_image_samples_unscored(photos):
    image_prompt = [{"role": "user", "content": [{"type": "image", "path": str(photos["astronaut"])}, {"type": "text", "text": "What is 2+2?"}]}]
    prompts = ["What is 2+2?", image_prompt, "Draw.", "What is 2+2?"]
    completions = ["4", "4", [{"type": "image", "path": str(photos["coffee"])}], "five"]

    @reward
    def words(prompts, completions):  # reads the prompt and the completion's text: not images
        return [float(len(str(p)) + len(c)) if isinstance(c, str) else 0.0 for p, c in zip(prompts, completions)]

    out = words.score(prompts, completions)
    alone = words.score([prompts[0], prompts[3]], [completions[0], completions[3]]).scores
    assert out.scores == [alone[0], None, None, alone[1]]  # text samples scored as if alone
    assert out.extras["reason"][1].startswith("reward does not read images") and "prompt" in out.extras["reason"][1]
    assert out.extras["reason"][2].startswith("reward does not read images") and "completion" in out.extras["reason"][2]
    assert out.extras["applicable"] == [True, False, False, True]
    assert words(prompts=prompts, completions=completions) == out.scores  # TRL's call too
    # the images column counts as the prompt's images (TRL passes a VLM dataset's images so)
    assert words.score(["What is 2+2?"], ["4"], images=[[str(photos["coffee"])]]).scores == [None]
    # a reward of the completion's text alone (a rule, length) scores an image prompt's answer, not an image completion
    math = load_reward("rule:math")
    assert math.score(prompts[:2], ["4", "4"], answer=["4", "4"]).scores == [1.0, 1.0]
    assert LengthReward().score(prompts[1:3], completions[1:3]).scores == [1.0, None]
    # a reward that reads images gets every sample
    vision = reward(_pixels, reads_images=True)
    assert vision.score(prompts, completions).scores == [0.0, 512.0 * 512, 600.0 * 400, 0.0]
    # a composition passes image samples on when a reward inside it reads them; the text member still refuses
    both = EnsembleReward([vision, words], how="mean")
    mixed = both.score(prompts[:2], completions[:2])
    assert mixed.scores[0] is not None and mixed.scores[1] is None
    assert EnsembleReward([words, LengthReward()], how="mean").score(prompts[1:2], ["4"]).scores == [None]


def test_images_travel_through_score_and_eval(photos, tmp_path):
    rows = [{"id": str(i), "query": q, "image": img, "response": [good, bad], "human_ranking": [0, 1]}
            for i, (q, img, good, bad) in enumerate([("Who?", "astronaut.png", "An astronaut.", "A cat."),
                                                     ("Drink?", "coffee.jpg", "Coffee.", "Tea.")])]
    data = load_dataset(write_jsonl(photos["root"] / "eval.jsonl", rows))
    seen = []

    @reward(reads_images=True)
    def checks(prompts, completions):
        for p in prompts:
            seen.append(loaded_id(prompt_images(p)[0].load()))
        return [float(len(c)) for c in completions]  # the longer answer wins: both pairs right

    run = score_dataset(checks, data.records, progress=False)
    assert [r["chosen_score"] for r in run.rows] == [13.0, 7.0]
    assert seen == [photos["astronaut_id"]] * 2 + [photos["coffee_id"]] * 2  # every completion saw its record's image, unchanged
    result, _ = evaluate(checks, data, n_boot=10, progress=False)
    assert (result["overall"], result["n"], result["not_applicable"]) == (1.0, 2, 0)
    text_only = score_dataset(load_reward("length"), data.records, progress=False)
    assert [r["chosen_score"] for r in text_only.rows] == [2.0, 1.0]  # length reads the completion only
    # a reward that reads the prompt's text cannot judge a question about an image: not applicable, with the reason
    words = reward(lambda prompts, completions: [float(len(c)) for c in completions], name="words")
    result, run = evaluate(words, data, n_boot=10, progress=False)
    assert result["not_applicable"] == 2 and all(r["chosen_score"] is None for r in run.rows)
    assert run.rows[0]["chosen_details"]["reason"].startswith("reward does not read images")


def test_without_pillow_text_works_and_images_name_the_install_command(photos, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    text = load_dataset(write_jsonl(tmp_path / "text.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}]))
    assert LengthReward().score([text.records[0].prompt], ["a b"]).scores == [2.0]
    rows = write_jsonl(photos["root"] / "needs_pillow.jsonl", [{"caption": "x", "image": "astronaut.png"}])
    with pytest.raises(ImportError, match=r"reading images needs Pillow: pip install 'rewardkit\[images\]'"):
        load_dataset(rows)


def test_cli_score_reads_image_data_and_refuses_urls_unless_allowed(photos, tmp_path, capsys):
    from rewardkit.cli.main import main

    rows = [{"id": "a", "query": "Who?", "image": "astronaut.png", "response": ["An astronaut.", "A cat."], "human_ranking": [0, 1]},
            {"id": "b", "query": "Drink?", "image": "https://images.example.org/coffee.jpg", "response": ["Coffee.", "Tea."], "human_ranking": [0, 1]}]
    data = write_jsonl(photos["root"] / "cli_vlrb.jsonl", rows)
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--reward", "length", "--data", str(data), "--out", str(out)]) == 2
    assert "line 2: field 'image'" in capsys.readouterr().err and not out.exists()
    assert main(["score", "--reward", "length", "--data", str(data), "--out", str(out), "--allow-image-urls", "images.example.org"]) == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["chosen_score"], r["rejected_score"]) for r in scored] == [("a", 2.0, 2.0), ("b", 1.0, 1.0)]

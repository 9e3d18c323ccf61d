"""Images over HTTP against a real local server: base64 and data: URL parts arrive pixel for pixel,
``remote:`` sends local files and in-memory images inline and gets the local scores back, a request
cannot make the server read its own files, URLs are fetched only from the hosts the operator allows
(from a real loopback file server, no redirects), and limits and bombs are 422s naming the field."""
from __future__ import annotations

import base64
import hashlib
import http.server
import struct
import threading
import zlib
from functools import partial

import pytest

Image = pytest.importorskip("PIL.Image", reason="images need Pillow: pip install 'rewardkit[images]'")
skdata = pytest.importorskip("skimage.data", reason="the test photographs come from scikit-image")

from serve_helpers import RecordingReward, ServerThread, image_pixels  # noqa: E402

from rewardkit import load_reward  # noqa: E402
from rewardkit.protocol import FunctionReward  # noqa: E402
from rewardkit.rewards.remote import RemoteReward  # noqa: E402
from rewardkit.serve.app import ServeSettings  # noqa: E402


def pixel_id(im) -> str:
    return f"{im.mode} {im.width}x{im.height} {hashlib.sha256(im.tobytes()).hexdigest()}"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("served_photos")
    Image.fromarray(skdata.astronaut()).save(root / "astronaut.png")
    Image.fromarray(skdata.coffee()).save(root / "coffee.jpg", quality=90)
    Image.fromarray(skdata.camera()).save(root / "camera.png")  # greyscale: the mode must arrive unchanged too
    ids = {}
    for name in ("astronaut.png", "coffee.jpg", "camera.png"):
        with Image.open(root / name) as im:
            im.load()
            ids[name] = pixel_id(im)
    return root, ids


def b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def png_declaring(width: int, height: int) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_base64_images_arrive_unchanged(photos):
    root, ids = photos
    body = {
        "prompts": [[{"role": "user", "content": [{"type": "image", "base64": b64(root / "astronaut.png")}, {"type": "text", "text": "Who?"}]}],
                    "Draw a cup."],
        "completions": ["An astronaut.", [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + b64(root / "coffee.jpg")}}]],
    }
    with ServerThread(load_reward("py:serve_helpers:image_pixels")) as srv, srv.client() as client:
        r = client.post("/v1/score", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["scores"] == [512.0 * 512, 600.0 * 400]
        assert out["extras"]["pixels"] == [[ids["astronaut.png"]], [ids["coffee.jpg"]]]
        info = client.get("/v1/info").json()
        assert (info["max_image_bytes"], info["max_image_pixels"]) == (ServeSettings.max_image_bytes, ServeSettings.max_image_pixels)


def test_remote_sends_local_images_inline_and_scores_as_local(photos):
    root, ids = photos
    prompts = [[{"role": "user", "content": [{"type": "image", "path": str(root / "astronaut.png")}, {"type": "text", "text": "Who?"}]}],
               [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}],
               "Draw a cup.", "Plain text."]
    completions = ["An astronaut.", "A camera man.", [{"type": "image", "image": Image.open(root / "coffee.jpg")}], "Text."]
    images = [None, [str(root / "camera.png")], None, None]
    local = FunctionReward(image_pixels).score(prompts, completions, images=images)
    assert local.extras["pixels"][:3] == [[ids["astronaut.png"]], [ids["camera.png"]], [ids["coffee.jpg"]]]
    with ServerThread(lambda: load_reward("py:serve_helpers:image_pixels")) as srv, RemoteReward(srv.url) as remote:
        got = remote.score(prompts, completions, images=images)
    assert got.scores == local.scores == [512.0 * 512, 512.0 * 512, 600.0 * 400, None]
    # the in-memory JPEG was sent as PNG (lossless): the pixels Pillow decoded locally arrive, hash for hash
    assert got.extras["pixels"] == local.extras["pixels"]


def test_a_request_cannot_make_the_server_read_its_files(photos):
    root, _ = photos
    secret = root / "astronaut.png"  # a file the server can read: it must not
    reward = RecordingReward()
    attempts = [
        ({"type": "image", "path": str(secret)}, "prompts[0][0].content[0]"),
        ({"type": "image", "image": str(secret)}, "prompts[0][0].content[0]"),
        ({"type": "image", "image": "../" * 8 + "etc/hostname"}, "prompts[0][0].content[0]"),
        ({"type": "image_url", "image_url": {"url": "file://" + str(secret)}}, "prompts[0][0].content[0]"),
    ]
    with ServerThread(reward) as srv, srv.client() as client:
        for part, field in attempts:
            body = {"prompts": [[{"role": "user", "content": [part, {"type": "text", "text": "hi"}]}]], "completions": ["x"]}
            r = client.post("/v1/score", json=body)
            assert r.status_code == 422 and r.json()["error"] == "bad_image", (part, r.text)
            assert r.json()["field"] == field and "local image paths are not read here" in r.json()["message"]
        # an images column naming a path is refused the same way
        r = client.post("/v1/score", json={"prompts": ["hi"], "completions": ["x"], "images": [[str(secret)]]})
        assert r.status_code == 422 and r.json()["field"] == "images[0][0]"
    assert reward.calls == []  # the reward never saw any of them


class _Files(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path.startswith("/moved"):
            self.send_response(302)
            self.send_header("Location", "/astronaut.png")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture()
def file_server(photos):
    root, _ = photos
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Files, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_urls_are_fetched_only_from_allowed_hosts(photos, file_server):
    _, ids = photos

    def body(url):
        return {"prompts": [[{"role": "user", "content": [{"type": "image", "url": url}, {"type": "text", "text": "Who?"}]}]], "completions": ["x"]}

    with ServerThread(load_reward("py:serve_helpers:image_pixels")) as srv, srv.client() as client:
        r = client.post("/v1/score", json=body(f"{file_server}/astronaut.png"))
        assert r.status_code == 422 and "image URLs are off unless allowed" in r.json()["message"]
    with ServerThread(load_reward("py:serve_helpers:image_pixels"), ServeSettings(allow_image_urls=("*",))) as srv, srv.client() as client:
        r = client.post("/v1/score", json=body(f"{file_server}/astronaut.png"))  # "*" still refuses a loopback address
        assert r.status_code == 422 and "internal address" in r.json()["message"]
    with ServerThread(load_reward("py:serve_helpers:image_pixels"), ServeSettings(allow_image_urls=("127.0.0.1",))) as srv, \
            srv.client() as client:
        r = client.post("/v1/score", json=body(f"{file_server}/astronaut.png"))
        assert r.status_code == 200, r.text
        assert r.json()["extras"]["pixels"] == [[ids["astronaut.png"]]]
        r = client.post("/v1/score", json=body(f"{file_server}/moved"))
        assert r.status_code == 422 and "redirects are not followed" in r.json()["message"]
        r = client.post("/v1/score", json=body("http://localhost:1/astronaut.png"))  # another name for the same machine: not named
        assert r.status_code == 422 and "not among the allowed hosts" in r.json()["message"]


def test_limits_bombs_and_text_rewards(photos):
    root, _ = photos
    bomb = base64.b64encode(png_declaring(50000, 50000)).decode()
    settings = ServeSettings(max_image_bytes=100_000)
    with ServerThread(load_reward("py:serve_helpers:image_pixels"), settings) as srv, srv.client() as client:
        r = client.post("/v1/score", json={"prompts": ["Draw."], "completions": [[{"type": "image", "base64": bomb}]]})
        assert r.status_code == 422 and r.json()["field"] == "completions[0][0]" and "decompression bomb" in r.json()["message"]
        r = client.post("/v1/score", json={"prompts": ["Draw."], "completions": [[{"type": "image", "base64": b64(root / "astronaut.png")}]]})
        assert r.status_code == 422 and "over the limit of 100000 bytes" in r.json()["message"]
        r = client.post("/v1/score", json={"prompts": ["Draw."], "completions": [[{"type": "image", "base64": "not base64 at all!"}]]})
        assert r.status_code == 422 and r.json()["error"] == "bad_image"
    # a text reward served: the image sample comes back unscored with the reason, the text one scored
    with ServerThread(RecordingReward()) as srv, srv.client() as client:
        image = {"type": "image", "base64": b64(root / "coffee.jpg")}
        r = client.post("/v1/score", json={"prompts": [[{"role": "user", "content": [image, {"type": "text", "text": "What?"}]}], "What?"],
                                           "completions": ["Coffee here.", "Coffee here."]})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["scores"] == [None, 2.0] and out["extras"]["reason"][0].startswith("reward does not read images")

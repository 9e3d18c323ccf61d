"""Images in prompts, completions and data columns: one value type, :class:`ImageRef`, read from every
shape rewardkit accepts, loaded lazily with Pillow and checked against limits before a pixel is decoded.

Shapes (a message's ``content`` may be a list of such parts; a completion may be one such list, e.g.
an image generated for a text prompt):

* transformers' chat shape ``{"type": "image", "path" | "url" | "base64" | "image": ...}``; a part with
  none of them is a placeholder filled, in order, from the sample's ``images`` (or ``image``) column,
  as TRL passes a VLM dataset's images;
* OpenAI's ``{"type": "image_url", "image_url": {"url": ...}}`` (``data:image/...;base64,...`` URLs too)
  and the Responses API's ``{"type": "input_image", "image_url": ...}``;
* a bare value: a path, an ``http(s)://`` URL, a ``data:`` URL, base64 text, bytes, a Hugging Face
  ``Image`` feature as stored in Parquet (``{"bytes": ..., "path": ...}``) or a ``PIL.Image``.

Records and requests hold canonical parts: plain JSON dicts ``{"type": "image", "path" | "url" |
"base64": str}``, so prompts stay JSON (group keys, resume fingerprints, the wire) and a text reward
reads them as no text at all. What may be read is an :class:`ImagePolicy`, set for a block of work
with :func:`image_policy` (the CLI from ``--allow-image-urls``, the server from its settings): local
paths yes by default (your own data files) and never on the server (a remote client must not read
the server's files); URLs only from hosts an operator names, without redirects.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import io
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal
from urllib.parse import urlsplit

#: data columns that hold a sample's prompt images (TRL's VLM datasets: ``images``, or one ``image``)
IMAGE_COLUMNS = ("images", "image")
#: content part types that carry an image
IMAGE_PART_TYPES = ("image", "image_url", "input_image")
#: keys of a transformers-style image part that say where the image is
SOURCE_KEYS = ("path", "url", "base64", "image")
INSTALL = "pip install 'rewardkit[images]'"

# the first bytes of the formats people send (a bare string is base64 only when it decodes to one)
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


class ImageError(ValueError):
    """An image that cannot be used: refused by the policy, over a limit, unreadable. The message
    names the image (its path, its URL, or its size when it came inline); ``field`` the request field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ImageLimits:
    """Largest image accepted. ``max_bytes``: the encoded file (a path's size, the decoded base64, a
    download, stopped there); ``max_pixels``: width x height as the header declares it, checked
    before anything is decoded, so a decompression bomb (a small PNG declaring 50000x50000) is an
    error, not an allocation. Pillow's own guard (``PIL.Image.MAX_IMAGE_PIXELS``: a warning past
    it, an error past twice it) is left as it is; this check is the one that refuses below that,
    and Pillow's error, if reached first, is reported the same way."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000  # e.g. 8660 x 5773: a 48-megapixel photo fits

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_pixels <= 0:
            raise ValueError(f"image limits must be positive, got max_bytes={self.max_bytes}, max_pixels={self.max_pixels}")


@dataclass(frozen=True)
class ImagePolicy:
    """Which image sources may be read, and the limits.

    allow_paths: read local files (False on the server: a request must not name the server's files).
    allow_urls: host names whose ``http(s)`` URLs may be fetched; ``"*"`` any host (then an IP
        literal in a private, loopback or link-local range is still refused unless named), ``".x.org"``
        x.org and its subdomains. Empty (the default): no URL is fetched. Redirects are never followed
        (they could lead anywhere).
    """

    allow_paths: bool = True
    allow_urls: tuple[str, ...] = ()
    limits: ImageLimits = field(default_factory=ImageLimits)
    timeout: float = 20.0

    def url_refusal(self, url: str) -> str | None:
        """Why ``url`` may not be fetched under this policy (``None``: it may)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"only http(s) image URLs are fetched, got {_short(url)!r}"
        host = parts.hostname.lower()
        named = {h.strip().lower() for h in self.allow_urls}
        if host in named or any(n.startswith(".") and (host == n[1:] or host.endswith(n)) for n in named):
            return None
        if "*" in named:
            try:
                ip = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                return None
            if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_unspecified:
                return f"image URL {_short(url)!r} points at an internal address; name the host in the allowed hosts to fetch it"
            return None
        if not named:
            return (f"image URL {_short(url)!r} is not fetched: image URLs are off unless allowed (--allow-image-urls HOSTS, "
                    "or rewardkit.images.image_policy(ImagePolicy(allow_urls=(...))))")
        return f"image URL {_short(url)!r} is not fetched: host {host!r} is not among the allowed hosts ({', '.join(sorted(named))})"


_POLICY: contextvars.ContextVar[ImagePolicy] = contextvars.ContextVar("rewardkit_image_policy", default=ImagePolicy())


@contextlib.contextmanager
def image_policy(policy: ImagePolicy) -> Iterator[ImagePolicy]:
    """Within this block images are read under ``policy`` (readers, rewards, the remote client)."""
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


def current_policy() -> ImagePolicy:
    return _POLICY.get()


def pillow() -> Any:
    """``PIL.Image``, or an error naming the install command (images are an optional extra)."""
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError(f"reading images needs Pillow: {INSTALL}") from err
    return Image


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str | None
    bytes: int


@dataclass(frozen=True, eq=False)
class ImageRef:
    """Where one image is; nothing is read until :meth:`data`, :meth:`check` or :meth:`load`.

    kind: ``path`` (an absolute file path), ``url``, ``base64`` (text), ``bytes`` or ``pil`` (an
    in-memory ``PIL.Image``). ``where`` names its origin for errors (file, line and field)."""

    kind: Literal["path", "url", "base64", "bytes", "pil"]
    value: Any
    where: str = ""

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, value: Any, *, base_dir: str | Path | None = None, where: str = "") -> "ImageRef":
        """An image from any accepted shape (module docstring); a relative path is taken relative to
        ``base_dir`` (the data file's folder). A placeholder part (no source) or anything else is an
        :class:`ImageError`."""
        if isinstance(value, ImageRef):
            return value
        if _is_pil(value):
            return cls("pil", value, where)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cls("bytes", bytes(value), where)
        if isinstance(value, dict):
            kind = value.get("type")
            if kind == "image":
                found = [k for k in SOURCE_KEYS if value.get(k) is not None]
                if len(found) > 1:
                    raise ImageError(f"an image part has more than one source ({', '.join(found)}); give one")
                if not found:
                    raise ImageError("an image part without a source (path, url, base64 or image) is a placeholder: "
                                     "its image comes from the sample's 'images' column")
                key = found[0]
                if key == "base64":
                    return cls._base64(value[key], where)
                if key == "path":
                    return cls._path(value[key], base_dir, where)
                if key == "url":
                    return cls._string(_text(value[key], "url"), base_dir, where, url_only=True)
                return cls.parse(value[key], base_dir=base_dir, where=where)
            if kind in ("image_url", "input_image"):
                target = value.get("image_url")
                url = target.get("url") if isinstance(target, dict) else target
                return cls._string(_text(url, "image_url.url"), base_dir, where, url_only=True)
            if kind is None and ("bytes" in value or "path" in value):  # a Hugging Face Image feature (Parquet)
                if value.get("bytes") is not None:
                    return cls.parse(value["bytes"], where=where)
                if value.get("path"):
                    return cls._path(value["path"], base_dir, where)
            raise ImageError(f"not an image: a dict with keys {sorted(map(str, value))}")
        if isinstance(value, str):
            return cls._string(value, base_dir, where)
        raise ImageError(f"not an image: {type(value).__name__} (expected a path, URL, base64 text, bytes or an image part)")

    @classmethod
    def _string(cls, text: str, base_dir: Any, where: str, url_only: bool = False) -> "ImageRef":
        text = text.strip()
        low = text[:16].lower()
        if low.startswith("data:"):
            head, comma, payload = text.partition(",")
            if not comma or not head.lower().endswith(";base64"):
                raise ImageError(f"a data: URL must be base64 (data:image/png;base64,...), got {_short(text)!r}")
            return cls._base64(payload, where)
        if low.startswith(("http://", "https://")):
            return cls("url", text, where)
        if low.startswith("file://"):
            return cls._path(urlsplit(text).path, base_dir, where)
        if url_only:
            raise ImageError(f"an image URL must be http(s):// or data:, got {_short(text)!r}")
        if len(text) >= 16 and _looks_base64(text):
            return cls._base64(text, where)
        return cls._path(text, base_dir, where)

    @classmethod
    def _base64(cls, text: Any, where: str) -> "ImageRef":
        return cls("base64", "".join(_text(text, "base64").split()), where)

    @classmethod
    def _path(cls, text: Any, base_dir: Any, where: str) -> "ImageRef":
        path = Path(os.path.expanduser(_text(text, "path")))
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        return cls("path", str(path.absolute()), where)

    # ------------------------------------------------------------------ reading
    def describe(self) -> str:
        if self.kind in ("path", "url"):
            what = f"image {_short(self.value)!r}"
        elif self.kind == "pil":
            what = "in-memory image"
        else:
            size = len(self.value) * 3 // 4 if self.kind == "base64" else len(self.value)
            what = f"inline image ({size} bytes)"
        return f"{self.where}: {what}" if self.where else what

    def error(self, message: str) -> ImageError:
        return ImageError(f"{self.describe()}: {message}")

    def data(self, policy: ImagePolicy | None = None) -> bytes:
        """The encoded image (PNG, JPEG ...), read under ``policy`` (default: the one in force) and
        no larger than its ``max_bytes``. An in-memory image is encoded as PNG."""
        policy = policy or current_policy()
        limit = policy.limits.max_bytes
        if self.kind == "path":
            self._readable_path(policy)
            return Path(self.value).read_bytes()
        if self.kind == "url":
            refusal = policy.url_refusal(self.value)
            if refusal:
                raise self.error(refusal) if self.where else ImageError(refusal)
            return self._fetch(policy)
        if self.kind == "base64":
            if len(self.value) * 3 // 4 > limit + 2:
                raise self.error(f"about {len(self.value) * 3 // 4} bytes is over the limit of {limit} bytes")
            try:
                raw = base64.b64decode(self.value, validate=True)
            except (binascii.Error, ValueError) as err:
                raise self.error(f"invalid base64 ({err})") from None
        elif self.kind == "bytes":
            raw = self.value
        else:
            buf = io.BytesIO()
            self.value.save(buf, format="PNG")
            raw = buf.getvalue()
        if len(raw) > limit:
            raise self.error(f"{len(raw)} bytes is over the limit of {limit} bytes")
        return raw

    def _readable_path(self, policy: ImagePolicy) -> None:
        if not policy.allow_paths:
            raise self.error("local image paths are not read here (a remote client cannot name the server's files): "
                             "send the image inline as base64")
        path = Path(self.value)
        if not path.is_file():
            raise self.error("no such file")
        size = path.stat().st_size
        if size > policy.limits.max_bytes:
            raise self.error(f"{size} bytes is over the limit of {policy.limits.max_bytes} bytes")

    def _fetch(self, policy: ImagePolicy) -> bytes:
        import httpx

        limit = policy.limits.max_bytes
        try:
            with httpx.stream("GET", self.value, timeout=policy.timeout, follow_redirects=False) as response:
                if response.status_code != 200:
                    hint = " (redirects are not followed)" if response.is_redirect else ""
                    raise self.error(f"HTTP {response.status_code} from the server{hint}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise self.error(f"{declared} bytes is over the limit of {limit} bytes")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise self.error(f"more than the limit of {limit} bytes")
                    chunks.append(chunk)
        except httpx.HTTPError as err:
            raise self.error(f"could not be fetched: {type(err).__name__}: {err}") from None
        return b"".join(chunks)

    def check(self, policy: ImagePolicy | None = None) -> ImageInfo:
        """Read the image's header and check it against the limits (no pixel is decoded)."""
        policy = policy or current_policy()
        if self.kind == "pil":
            self._check_pixels(*self.value.size, policy)
            return ImageInfo(*self.value.size, getattr(self.value, "format", None), 0)
        if self.kind == "path":  # the header only: a data file's images are not read whole to check them
            self._readable_path(policy)
            with open(self.value, "rb") as fh:
                im = self._open(fh, policy)
                return ImageInfo(im.width, im.height, im.format, os.fstat(fh.fileno()).st_size)
        raw = self.data(policy)
        im = self._open(raw, policy)
        return ImageInfo(im.width, im.height, im.format, len(raw))

    def load(self, policy: ImagePolicy | None = None) -> Any:
        """The decoded ``PIL.Image`` (as stored: mode, size and pixels unchanged), after the checks."""
        policy = policy or current_policy()
        if self.kind == "pil":
            self._check_pixels(*self.value.size, policy)
            return self.value
        im = self._open(self.data(policy), policy)
        try:
            im.load()
        except Exception as err:  # Pillow raises OSError, ValueError, SyntaxError ... for damaged data
            raise self.error(f"could not be decoded: {type(err).__name__}: {err}") from None
        return im

    def _open(self, raw: Any, policy: ImagePolicy) -> Any:
        Image = pillow()
        try:
            im = Image.open(io.BytesIO(raw) if isinstance(raw, bytes) else raw)
        except Image.DecompressionBombError as err:
            raise self.error(f"refused as a decompression bomb: {err}") from None
        except Exception as err:
            raise self.error(f"not an image Pillow can read ({type(err).__name__}: {err})") from None
        self._check_pixels(im.width, im.height, policy)
        return im

    def _check_pixels(self, width: int, height: int, policy: ImagePolicy) -> None:
        limit = policy.limits.max_pixels
        if width * height > limit:
            raise self.error(f"declares {width}x{height} = {width * height} pixels, over the limit of {limit} "
                             "(a decompression bomb, or an image too large to score)")

    def data_url(self, policy: ImagePolicy | None = None) -> str:
        """The image as a ``data:image/...;base64,...`` URL (read under ``policy``, checked against its
        limits): how OpenAI-compatible servers (vLLM, SGLang, llama.cpp) take an image in a chat message."""
        policy = policy or current_policy()
        raw = self.data(policy)
        self._open(raw, policy)  # header and pixel limits, before a server decodes it
        return f"data:{mime_type(raw)};base64,{base64.b64encode(raw).decode('ascii')}"

    def to_part(self, *, inline: bool = False, policy: ImagePolicy | None = None) -> dict[str, str]:
        """The canonical JSON part. ``inline``: always ``{"type": "image", "base64": ...}`` (read under
        ``policy``), as the remote client sends images and the server hands them to its reward."""
        if self.kind == "base64":
            return {"type": "image", "base64": self.value}
        if not inline and self.kind in ("path", "url"):
            return {"type": "image", self.kind: self.value}
        return {"type": "image", "base64": base64.b64encode(self.data(policy)).decode("ascii")}


# ---------------------------------------------------------------------- where images are in a sample

def is_image_part(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in IMAGE_PART_TYPES


def is_placeholder(value: Any) -> bool:
    """A transformers image part without a source: its image is the next one of the ``images`` column."""
    return isinstance(value, dict) and value.get("type") == "image" and all(value.get(k) is None for k in SOURCE_KEYS)


def is_parts(value: Any) -> bool:
    """A list of content parts (``{"type": ...}`` dicts, no ``role``): a completion such as a generated image."""
    return (isinstance(value, (list, tuple)) and bool(value)
            and all(isinstance(p, dict) and "type" in p and "role" not in p for p in value))


def _content_parts(value: Any) -> Iterator[Any]:
    """The content parts of a prompt or completion (messages' list contents, or a list of parts)."""
    if isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, dict) and "role" in item:
                content = item.get("content")
                if isinstance(content, (list, tuple)):
                    yield from content
            elif isinstance(item, dict):
                yield item


def batch_has_images(prompts: Any, completions: Any, columns: dict[str, Any]) -> bool:
    """Whether any sample of a batch carries an image (a cheap look at the structure only)."""
    return (any(columns.get(c) is not None for c in IMAGE_COLUMNS)
            or any(not isinstance(p, str) and count_images(p) for p in prompts)
            or any(not isinstance(c, str) and count_images(c) for c in completions))


def count_images(value: Any) -> int:
    """How many image parts (placeholders included) a prompt or completion holds."""
    return sum(1 for p in _content_parts(value) if is_image_part(p))


def column_images(value: Any) -> list[Any]:
    """One sample's ``images`` / ``image`` column value as a list of image values (``None``: none)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if v is not None]
    return [value]


def prompt_images(prompt: Any, images: Any = None) -> list[ImageRef]:
    """The images a vision reward reads in a prompt, in order: its image parts, placeholders filled
    in order from the sample's ``images`` column value. A prompt without placeholders takes the
    column's images before its own (as a VLM chat template puts a dataset's image before the question)."""
    extra = column_images(images)
    parts = list(_content_parts(prompt)) if not isinstance(prompt, str) else []
    holes = sum(1 for p in parts if is_placeholder(p))
    if holes and holes != len(extra):
        raise ImageError(f"the prompt has {holes} image placeholders but the sample has {len(extra)} images in its 'images' column")
    fill = iter(extra)
    refs = [] if holes else [ImageRef.parse(v) for v in extra]
    for p in parts:
        if is_image_part(p):
            refs.append(ImageRef.parse(next(fill)) if is_placeholder(p) else ImageRef.parse(p))
    return refs


def completion_images(completion: Any) -> list[ImageRef]:
    """The images of a completion (a list of parts, or assistant messages with image parts)."""
    return [ImageRef.parse(p) for p in _content_parts(completion) if is_image_part(p)]


def image_sides(prompt: Any, completion: Any, images: Any = None) -> tuple[bool, bool]:
    """(the prompt has images, the completion has images), without reading any image."""
    return (count_images(prompt) > 0 or bool(column_images(images)), count_images(completion) > 0)


# ---------------------------------------------------------------------- whole batches (server, remote client)

def inline_images(prompts: list[Any], completions: list[Any], columns: dict[str, list[Any]],
                  policy: ImagePolicy | None = None) -> tuple[list[Any], list[Any], dict[str, list[Any]]]:
    """The batch with every image read under ``policy``, checked (limits, header) and inline as a
    base64 part: the remote client sends this, and the server turns a request into it before its
    reward sees it (so the reward reads no path and fetches no URL). Placeholders stay placeholders.
    An :class:`ImageError` names the field (``prompts[0][1].content[0]``, ``images[2][0]``)."""
    policy = policy or current_policy()

    def one(value: Any, where: str) -> dict[str, str]:
        try:
            ref = ImageRef.parse(value, where=where)
            ref.check(policy)
            return ref.to_part(inline=True, policy=policy)
        except ImageError as err:
            message = str(err)
            raise ImageError(message if message.startswith(where) else f"{where}: {message}", field=where) from None

    def side(values: list[Any], name: str) -> list[Any]:
        out = []
        for i, value in enumerate(values):
            if isinstance(value, (list, tuple)) and count_images(value):
                new = []
                for j, item in enumerate(value):
                    if isinstance(item, dict) and "role" in item and isinstance(item.get("content"), (list, tuple)):
                        content = [one(p, f"{name}[{i}][{j}].content[{k}]") if is_image_part(p) and not is_placeholder(p) else p
                                   for k, p in enumerate(item["content"])]
                        new.append({**item, "content": content})
                    elif is_image_part(item) and not is_placeholder(item):
                        new.append(one(item, f"{name}[{i}][{j}]"))
                    else:
                        new.append(item)
                value = new
            out.append(value)
        return out

    cols = dict(columns)
    for name in IMAGE_COLUMNS:
        if cols.get(name) is not None:
            cols[name] = [None if v is None else
                          [one(x, f"{name}[{i}][{j}]") for j, x in enumerate(v)] if isinstance(v, (list, tuple)) else one(v, f"{name}[{i}]")
                          for i, v in enumerate(cols[name])]
    return side(list(prompts), "prompts"), side(list(completions), "completions"), cols


# ---------------------------------------------------------------------- small helpers

_MIME = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"), (b"BM", "image/bmp"),
         (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"))


def mime_type(raw: bytes) -> str:
    """The MIME type of encoded image bytes, from their first bytes (``image/png`` when unknown:
    servers decode by content, the type is a label)."""
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MIME if raw.startswith(magic)), "image/png")


def _is_pil(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "size") and hasattr(value, "save")


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ImageError(f"an image's {name} must be a non-empty string, got {type(value).__name__}")
    return value


def _looks_base64(text: str) -> bool:
    """True when ``text`` decodes as base64 to a known image format (so a file name never passes)."""
    try:
        head = base64.b64decode("".join(text[:64].split())[:48], validate=True)
    except (binascii.Error, ValueError):
        return False
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."

"""The settings of one reward server: the ``rewardkit serve`` flags are made from this dataclass
(``cli/flags.py``), so each default lives here once. Kept apart from the app so the CLI can read the
defaults without importing the web stack."""
from __future__ import annotations

from dataclasses import dataclass

from ..images import ImageLimits, ImagePolicy


@dataclass
class ServeSettings:
    """Limits and behaviour of one server (the ``rewardkit serve`` options)."""

    token: str | None = None
    max_request_bytes: int = 8 * 1024 * 1024
    max_samples_per_request: int = 512
    request_timeout: float = 60.0
    micro_batching: bool = True
    max_batch_tokens: int = 8192
    max_batch_samples: int = 128
    max_wait_ms: float = 0.0
    max_queue_samples: int = 4096
    labels_column: str = "answer"
    unscored_reward: float | None = None
    strip: tuple[str, ...] = ()
    keep_end_of_turn: bool = False  # /get_reward: keep the EOS / end-of-turn text that ends OpenRLHF's responses
    graceful_timeout: float = 30.0  # on SIGTERM, seconds to wait for requests in flight (the server, not the app)
    receive_timeout: float = 30.0  # seconds to receive a whole request, head and body (the server: serve/transport.py)
    max_connections: int = 1024  # open connections; beyond it a new one gets 503 (the server)
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides loopback ones when there is no token
    allow_image_urls: tuple[str, ...] = ()  # hosts whose image URLs the server fetches ("*": any); none by default
    max_image_bytes: int = ImageLimits.max_bytes
    max_image_pixels: int = ImageLimits.max_pixels

    def image_policy(self) -> ImagePolicy:
        """How the server reads a request's images: never a local path, URLs of the allowed hosts only."""
        return ImagePolicy(allow_paths=False, allow_urls=self.allow_image_urls, limits=ImageLimits(self.max_image_bytes, self.max_image_pixels))

    def check(self) -> None:
        for name in ("max_request_bytes", "max_samples_per_request", "max_batch_tokens", "max_batch_samples", "max_queue_samples",
                     "max_connections", "request_timeout", "receive_timeout", "max_image_bytes", "max_image_pixels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_queue_samples < self.max_samples_per_request:
            raise ValueError(f"max_queue_samples ({self.max_queue_samples}) must be at least max_samples_per_request ({self.max_samples_per_request})")
        if self.token is not None and not self.token.strip():
            raise ValueError("the API token is empty")
        if any(not host.strip() for host in self.allowed_hosts):
            raise ValueError(f"allowed_hosts holds an empty name: {self.allowed_hosts}")
        if any(not host.strip() for host in self.allow_image_urls):
            raise ValueError(f"allow_image_urls holds an empty name: {self.allow_image_urls}")

"""Prometheus metrics of one server (own registry, so several apps in one process do not clash)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the app)

#: paths that get their own label; anything else is "other" (fuzzers and scanners must not blow up
#: the label cardinality)
ENDPOINTS = ("/v1/score", "/v1/score_steps", "/get_reward", "/slime", "/seed_session", "/verify", "/classify",
             "/health", "/ready", "/metrics", "/v1/info", "/openapi.json", "/docs")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("rewardkit_requests", "HTTP requests by endpoint and status code", ["endpoint", "status"], registry=r)
        self.latency = Histogram("rewardkit_request_latency_seconds", "HTTP request latency (arrival to last byte)", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.samples = Counter("rewardkit_samples", "samples scored", registry=r)
        self.batch_samples = Histogram("rewardkit_batch_size_samples", "samples per model call", buckets=SIZE_BUCKETS, registry=r)
        self.batch_requests = Histogram("rewardkit_batch_size_requests", "requests merged into one model call", buckets=SIZE_BUCKETS, registry=r)
        self.batch_seconds = Histogram("rewardkit_batch_latency_seconds", "time of one model call", buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("rewardkit_queue_wait_seconds", "time a request waited before its model call started",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.queue_samples = Gauge("rewardkit_queue_depth_samples", "samples waiting for the model", registry=r)
        self.queue_requests = Gauge("rewardkit_queue_depth_requests", "requests waiting for the model", registry=r)
        self.inflight = Gauge("rewardkit_inflight_requests", "HTTP requests being handled", registry=r)
        self.rejected = Counter("rewardkit_rejected", "requests refused before scoring", ["reason"], registry=r)
        self.isolations = Counter("rewardkit_batch_isolations", "merged batches that failed and were retried request by request", registry=r)
        self.ready = Gauge("rewardkit_ready", "1 when the reward is loaded and the server accepts work", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    @staticmethod
    def endpoint(path: str) -> str:
        if path.startswith("/ng-rollout/"):  # NeMo Gym's per-rollout prefix
            path = "/" + path.rpartition("/")[2]
        return path if path in ENDPOINTS else "other"

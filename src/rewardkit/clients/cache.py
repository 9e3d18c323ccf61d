"""A memoizing wrapper: each judge prompt is generated once for the largest ``n`` asked, and smaller
``n`` are served from the first samples. That makes "accuracy vs k" cost one k_max run.

Serving a prefix is exact for clients whose sample ``j`` does not depend on ``n`` (``LocalClient``
seeds each sample from (seed, prompt, j)); an HTTP server may not promise that, so for remote judges
record with the ``n`` you will ask for.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from .base import Generation


class PrefixCache:
    """``PrefixCache(client)`` answers ``generate`` like ``client`` and remembers every answer.

    A later call with the same prompt and settings and ``n`` no larger than recorded returns the
    first ``n`` recorded samples without calling the model; a larger ``n`` regenerates and replaces
    the record. ``hits`` / ``misses`` count prompts served from memory / from the model.
    """

    def __init__(self, client: Any):
        self.client = client
        self.name = getattr(client, "name", "client")
        self._memory: dict[str, list[Generation]] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _key(prompt: Any, prefix: Any, settings: dict[str, Any]) -> str:
        return json.dumps([prompt, prefix, settings], sort_keys=True, default=str)

    def generate(self, prompts: Sequence[Any], *, n: int = 1, assistant_prefix: Any = None, **settings: Any) -> list[list[Generation]]:
        prefixes = list(assistant_prefix) if isinstance(assistant_prefix, (list, tuple)) else [assistant_prefix] * len(prompts)
        keys = [self._key(p, pre, settings) for p, pre in zip(prompts, prefixes)]
        todo = [i for i, k in enumerate(keys) if len(self._memory.get(k, ())) < n]
        if todo:
            if isinstance(assistant_prefix, (list, tuple)):
                extra = {"assistant_prefix": [prefixes[i] for i in todo]}
            else:
                extra = {"assistant_prefix": assistant_prefix} if assistant_prefix is not None else {}
            outs = self.client.generate([prompts[i] for i in todo], n=n, **settings, **extra)
            for i, gens in zip(todo, outs):
                self._memory[keys[i]] = list(gens)
        self.misses += len(todo)
        self.hits += len(prompts) - len(todo)
        return [list(self._memory[k][:n]) for k in keys]

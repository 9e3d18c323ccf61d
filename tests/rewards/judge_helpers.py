"""A scripted generation client for judge tests: answers are a function of the judge prompt, with
optional log-probabilities, so judge logic is tested without a model."""
from __future__ import annotations

import math
import re
from typing import Any, Callable

from rewardkit.clients import Generation


def section(prompt: str, name: str) -> str:
    """The text under ``[name]`` in a filled judge template."""
    m = re.search(rf"\[{re.escape(name)}\]\n(.*?)(?:\n\n\[|\n\n[A-Z][a-z]+ |\Z)", prompt, re.S)
    return m.group(1).strip() if m else ""


class ScriptedClient:
    """``answer(prompt, sample_index, seed, prefix) -> text`` or ``(text, {piece: prob})`` for the verdict token."""

    name = "scripted"

    def __init__(self, answer: Callable[..., Any]):
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def generate(self, prompts, *, max_new_tokens=256, temperature=0.0, top_p=1.0, n=1, seed=0, stop=None,
                 logprobs=False, top_logprobs=0, assistant_prefix=None):
        self.calls.append({"prompts": list(prompts), "n": n, "temperature": temperature, "seed": seed,
                           "prefix": assistant_prefix, "logprobs": logprobs})
        out = []
        for p in prompts:
            gens = []
            for j in range(n):
                result = self.answer(p, j, seed, assistant_prefix or "")
                text, dist = result if isinstance(result, tuple) else (result, None)
                gen = Generation(text=text, num_tokens=max(1, len(text.split())), seed=seed)
                if dist and logprobs:
                    # the verdict token is the first token; the rest of the text is one more token
                    head = text[: len(text) - len(text.lstrip())] + text.strip().split()[0]
                    gen.tokens = [head, text[len(head):]] if text[len(head):] else [head]
                    gen.logprobs = [math.log(max(dist.get(head.strip(), 1e-9), 1e-9))] + [0.0] * (len(gen.tokens) - 1)
                    gen.top_logprobs = [{" " + k: math.log(v) for k, v in dist.items()}] + [{}] * (len(gen.tokens) - 1)
                gens.append(gen)
            out.append(gens)
        return out

"""Text-generation clients: the judges' engines, and rollouts for anyone who needs text from a model.

Two clients, one call::

    from rewardkit.clients import LocalClient, OpenAIClient, Generation

    client = LocalClient("default")                 # embedded SmolLM2-135M-Instruct (or a dir/.gguf/hub id)
    client = OpenAIClient("my-model", "http://127.0.0.1:8000/v1")   # vLLM / SGLang / llama.cpp / hosted
    client = LocalVLMClient("path/to/smolvlm")      # a local vision-language model (prompts may carry images)
    client = OpenAIClient("smolvlm", URL, images=True)              # a served one (images go as data: URLs)

    outs = client.generate(
        prompts,                  # list of str (one user message) or list of chat messages
        max_new_tokens=256,
        temperature=0.0,          # 0 = greedy; > 0 samples (top_p nucleus) with a seed
        top_p=1.0,
        n=1,                      # continuations per prompt (local: the prompt is encoded once for all n)
        seed=0,                   # same prompt + same seed = same text, at any batch size
        stop=None,                # stop strings (text is cut before them)
        logprobs=False, top_logprobs=0,   # per-token log-probs and the top alternatives
    )
    outs[i][j]                    # Generation j of prompt i: .text .token_ids .num_tokens .finish_reason
                                  #   .logprobs .tokens .top_logprobs .seed

Both also take ``assistant_prefix=`` (per prompt or one for all): text the assistant turn already starts
with, so a partial solution can be rolled out (Monte-Carlo step labels) or a judge made to answer in
format (``Verdict:``). Over HTTP it is sent as vLLM's ``continue_final_message``.
A ``RawText("...")`` prompt is continued verbatim (no chat template).
``PrefixCache(client)`` remembers generations and serves a smaller ``n`` from the first samples
(accuracy vs k from one k_max run). ``client_from_spec`` turns ``default``, a model path, or ``openai:MODEL@URL`` into a client.
"""
from __future__ import annotations

from typing import Any

from .base import Generation, GenerationClient, RawText, sample_seed
from .cache import PrefixCache

__all__ = ["Generation", "GenerationClient", "LocalClient", "LocalVLMClient", "OpenAIClient", "PrefixCache", "RawText", "client_from_spec",
           "sample_seed"]


def __getattr__(name: str) -> Any:  # torch / httpx stay unimported until a client is used
    if name == "LocalClient":
        from .local import LocalClient

        return LocalClient
    if name == "OpenAIClient":
        from .openai import OpenAIClient

        return OpenAIClient
    if name == "LocalVLMClient":
        from .vlm import LocalVLMClient

        return LocalVLMClient
    raise AttributeError(name)


def client_from_spec(spec: Any = "default", *, images: bool | None = None, **kwargs: Any) -> Any:
    """A client from a short spec: an existing client is returned as is; ``openai:MODEL@URL`` is an
    OpenAI-compatible server (URL like ``http://host:8000/v1``); anything else is a local model
    (``default``, a directory, a .gguf file or a hub id): a vision-language model (one transformers
    loads with ``AutoModelForImageTextToText``, told by its config) becomes a :class:`LocalVLMClient`,
    any other a :class:`LocalClient`. ``images``: the engine must read images (``True``: an error when
    it cannot; an ``openai:`` server is taken at its word), must not (``False``), or as it can
    (``None``; a server: no). ``kwargs`` go to the client's constructor."""
    if not isinstance(spec, str):
        if images and not getattr(spec, "reads_images", False):
            raise ValueError(f"images=True, but the client {getattr(spec, 'name', spec)!r} does not read images")
        return spec
    if spec.startswith("openai:"):
        body = spec[len("openai:"):]
        model, sep, url = body.rpartition("@")
        if not sep or not model or not url:
            raise ValueError(f"expected openai:MODEL@URL (e.g. openai:qwen@http://127.0.0.1:8000/v1), got {spec!r}")
        from .openai import OpenAIClient

        return OpenAIClient(model, url, images=bool(images), **kwargs)
    from ..models.loading import is_vision_language, resolve_source

    if is_vision_language(resolve_source(spec)):
        from .vlm import LocalVLMClient

        return LocalVLMClient(spec, images=images is not False, **kwargs)
    if images:
        raise ValueError(f"images=True, but {spec!r} is a text-only model; a local judge that reads images needs a vision-language "
                         "model (one AutoModelForImageTextToText loads, e.g. SmolVLM), or serve one and use openai:MODEL@URL")
    from .local import LocalClient

    return LocalClient(spec, **kwargs)

"""Local text generation with a transformers causal LM: batched, KV-cached, greedy or seeded sampling.

Why not ``model.generate``: its sampling draws from the global torch RNG, so a sample depends on
which other prompts share its batch. Here every sample has its own ``torch.Generator`` seeded from
(run seed, prompt text, sample index), so the same prompt and seed give the same text at any batch
size or order. The loop is small: one prefill per batch of distinct prompts, the cache copied to the
``n`` samples (the prompt is encoded once however many continuations are drawn), then one token per
step for the rows still running (finished rows leave the cache).
"""
from __future__ import annotations

import threading
from typing import Any, Literal, Sequence

from ..images import count_images
from ..models import load_model, load_tokenizer, make_batches, resolve_source
from ..models.encoding import special_prefix, to_messages, with_prefix
from ..models.loading import resolve_device
from ..types import Prompt
from .base import Generation, RawText, Sampling, cut_at_stop, per_prompt, sample_seed


class LocalClient:
    """Generate with a local causal LM.

    model: ``default`` (embedded SmolLM2-135M-Instruct), a directory, a .gguf file, a hub id, or a loaded
        ``PreTrainedModel`` (then pass ``tokenizer``).
    chat_template: "auto" renders prompts with the tokenizer's chat template (text prompts become one user
        message) and adds the assistant generation prompt; "off" feeds text prompts verbatim (a base LM,
        or text you rendered yourself).
    max_tokens_per_batch: budget of ``rows * (prompt + max_new_tokens)`` tokens per batch of prompts.
    max_batch_size: cap on prompts per batch (each brings ``n`` rows while decoding).
    A text-only model reads no images: a prompt with image parts is an error (a judge on this client
    refuses image samples before asking; :class:`~rewardkit.clients.vlm.LocalVLMClient` reads them).
    """

    reads_images = False

    def __init__(
        self,
        model: Any = "default",
        *,
        tokenizer: Any = None,
        chat_template: Literal["auto", "off"] = "auto",
        system_prompt: str | None = None,
        max_tokens_per_batch: int = 16384,
        max_batch_size: int = 16,
        device: str | None = None,
        dtype: str = "float32",
        name: str | None = None,
    ):
        if isinstance(model, str):
            source = resolve_source(model)
            self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(source)
            self.model = load_model(source, "causal-lm", dtype=dtype, device=device)
            label = source.display
        else:
            if tokenizer is None:
                raise ValueError("pass tokenizer=... together with an already loaded model")
            self.model, self.tokenizer = model, tokenizer
            self.model.eval()
            label = getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.name = name or f"local:{label}"
        self.device = str(next(self.model.parameters()).device) if device is None else resolve_device(device)
        if chat_template not in ("auto", "off"):
            raise ValueError(f"chat_template must be 'auto' or 'off', got {chat_template!r}")
        self.use_chat = chat_template == "auto" and bool(getattr(self.tokenizer, "chat_template", None))
        self.system_prompt = system_prompt
        self.max_tokens_per_batch = int(max_tokens_per_batch)
        self.max_batch_size = int(max_batch_size)
        self.stop_ids = self._stop_ids()
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.tokenizer.eos_token_id or 0))
        self._lock = threading.Lock()  # one generation at a time per model (a server calls from threads)
        self.image_hint = (f"{self.name} is a text-only model: a vision-language model (one AutoModelForImageTextToText loads) "
                           "or a served one (openai:MODEL@URL(images=true)) reads images")

    def _stop_ids(self) -> set[int]:
        """EOS ids of the tokenizer and of the model's generation config (chat models end a turn with
        their own token, e.g. ``<|im_end|>``)."""
        ids: set[int] = set()
        for value in (self.tokenizer.eos_token_id, getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return ids

    # ----------------------------------------------------------------- prompts
    def render(self, prompt: Prompt, assistant_prefix: str = "") -> str:
        """The exact text the model continues: chat-rendered prompt + generation prompt + prefix."""
        if isinstance(prompt, RawText):
            return str(prompt) + assistant_prefix
        if not isinstance(prompt, str) and count_images(prompt):
            raise ValueError(f"{self.name} is a text-only model and the prompt carries {count_images(prompt)} image(s); "
                             "its text alone is not the question (use a vision-language model: LocalVLMClient)")
        if not self.use_chat:
            if not isinstance(prompt, str):
                prompt = "".join(f"{m['role']}: {m['content']}\n" for m in to_messages(prompt))
            return prompt + assistant_prefix
        messages = to_messages(prompt)
        if self.system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": self.system_prompt}] + messages
        head = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return head + assistant_prefix

    def encode(self, text: str) -> list[int]:
        """Token ids of a rendered prompt; BOS is added only when the rendered text lacks it."""
        if getattr(self, "_special_prefix", None) is None:
            self._special_prefix = special_prefix(self.tokenizer)
        return with_prefix(self.tokenizer(text, add_special_tokens=False)["input_ids"], self._special_prefix)

    # ----------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[Prompt], *, assistant_prefix: Sequence[str] | str | None = None,
                 **options: Any) -> list[list[Generation]]:
        """``n`` continuations per prompt (one list per prompt, in input order); ``options`` are the fields
        of :class:`~rewardkit.clients.base.Sampling`.

        assistant_prefix: text the assistant turn already starts with (one per prompt, or one for all),
            e.g. the first steps of a solution to roll out from.
        """
        o = Sampling.of(self.name, options)
        if o.seed is None and o.temperature > 0:
            raise ValueError("sampling needs a seed (results must be reproducible); pass seed=<int>")
        prefixes = per_prompt(assistant_prefix, len(prompts))
        texts = [self.render(p, pre) for p, pre in zip(prompts, prefixes)]
        ids = [self.encode(t) for t in texts]
        if any(len(x) == 0 for x in ids):
            raise ValueError("a prompt rendered to zero tokens; there is nothing to continue")
        results: list[list[Generation]] = [[] for _ in prompts]
        lengths = [(len(x) + o.max_new_tokens) * o.n for x in ids]
        batches = make_batches(lengths, self.max_tokens_per_batch, self.max_batch_size, max_padding=0.5)
        with self._lock:
            for batch in batches:
                outs = self._generate_batch(
                    [ids[i] for i in batch], [texts[i] for i in batch], o.max_new_tokens, o.temperature, o.top_p, o.n,
                    o.seed, o.stop, o.wants_logprobs, o.top_logprobs,
                )
                for i, gens in zip(batch, outs):
                    results[i] = gens
        return results

    def _generate_batch(self, ids, keys, max_new, temperature, top_p, n, seed, stop, want_lp, top_k_lp, inputs=None):
        """Generate for one batch of encoded prompts. ``keys``: each prompt's identity for its samples'
        seeds (its rendered text; a VLM adds its images); ``inputs``: extra tensors for the prefill
        only (a VLM's pixel values), batch-major in the order of ``ids``."""
        import torch

        B, width = len(ids), max(len(x) for x in ids)
        input_ids = torch.full((B, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((B, width), dtype=torch.long)
        for r, seq in enumerate(ids):  # left padding: every row's last prompt token is the last column
            input_ids[r, width - len(seq):] = torch.tensor(seq)
            mask[r, width - len(seq):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        dev = self.device
        with torch.inference_mode():
            from transformers import DynamicCache

            cache = DynamicCache()
            # logits_to_keep=1: only the last position goes through the vocabulary-sized head (the
            # prompt's other logits would cost ~20% of the prefill and B*T*V floats of memory)
            extra = {k: v.to(dev) for k, v in (inputs or {}).items()}
            out = self.model(input_ids=input_ids.to(dev), attention_mask=mask.to(dev), position_ids=positions.to(dev),
                             past_key_values=cache, use_cache=True, logits_to_keep=1, **extra)
            logits = out.logits[:, -1].float()
            cache = out.past_key_values
            if n > 1:  # the prompt was encoded once; its cache serves all n samples
                cache.batch_repeat_interleave(n)
                logits = logits.repeat_interleave(n, dim=0)
                mask = mask.repeat_interleave(n, dim=0)
            mask = mask.to(dev)
            rows = B * n
            seeds = [None if temperature == 0 else sample_seed(int(seed), keys[r // n], r % n) for r in range(rows)]
            gens = [torch.Generator().manual_seed(s) if s is not None else None for s in seeds]
            next_pos = torch.tensor([len(ids[r // n]) for r in range(rows)], dtype=torch.long)
            tokens: list[list[int]] = [[] for _ in range(rows)]
            lps: list[list[float]] = [[] for _ in range(rows)]
            tops: list[list[dict[int, float]]] = [[] for _ in range(rows)]
            finish = ["length"] * rows
            active = list(range(rows))  # row ids still generating, in cache order
            for step in range(max_new):
                logp = torch.log_softmax(logits, dim=-1)
                chosen = self._pick(logits, temperature, top_p, [gens[r] for r in active])
                still = []
                for j, r in enumerate(active):
                    tok = int(chosen[j])
                    tokens[r].append(tok)
                    if want_lp:
                        lps[r].append(float(logp[j, tok]))
                        if top_k_lp:
                            v, i = logp[j].topk(top_k_lp)
                            tops[r].append(dict(zip(i.tolist(), v.tolist())))
                    if tok in self.stop_ids or (stop and cut_at_stop(self.tokenizer.decode(tokens[r]), stop)[1]):
                        finish[r] = "stop"
                    else:
                        still.append(j)
                if not still or step == max_new - 1:
                    break
                keep = torch.tensor(still, dtype=torch.long)
                if len(still) < len(active):
                    cache.batch_select_indices(keep.to(dev))
                    mask = mask[keep.to(dev)]
                    chosen = chosen[keep]
                active = [active[j] for j in still]
                mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=dev)], dim=1)
                pos = next_pos[active][:, None]
                out = self.model(input_ids=chosen[:, None].to(dev), attention_mask=mask, position_ids=pos.to(dev),
                                 past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                logits = out.logits[:, -1].float()
                next_pos[active] += 1
        return [[self._finish(tokens[r], finish[r], len(ids[r // n]), seeds[r], lps[r] if want_lp else None,
                              tops[r] if top_k_lp else None, stop) for r in range(b * n, (b + 1) * n)] for b in range(B)]

    @staticmethod
    def _pick(logits, temperature, top_p, gens):
        """Greedy argmax, or a draw per row from its own generator (top-p nucleus when top_p < 1)."""
        import torch

        if temperature == 0:
            return logits.argmax(-1).cpu()
        probs = torch.softmax(logits / temperature, dim=-1).cpu()
        if top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            drop = sorted_p.cumsum(-1) - sorted_p > top_p  # keep the smallest prefix reaching top_p
            sorted_p[drop] = 0.0
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        return torch.stack([torch.multinomial(probs[j], 1, generator=g)[0] for j, g in enumerate(gens)])

    def _finish(self, toks, finish, prompt_len, seed, lps, tops, stop) -> Generation:
        text = self.tokenizer.decode([t for t in toks if t not in self.stop_ids], skip_special_tokens=False)
        text, _ = cut_at_stop(text, stop)
        gen = Generation(text=text, token_ids=list(toks), finish_reason=finish, num_tokens=len(toks),
                         prompt_tokens=prompt_len, seed=seed)
        if lps is not None:
            gen.logprobs = lps
            gen.tokens = [self.tokenizer.decode([t]) for t in toks]
        if tops is not None:
            gen.top_logprobs = [{self.tokenizer.decode([i]): v for i, v in d.items()} for d in tops]
        return gen

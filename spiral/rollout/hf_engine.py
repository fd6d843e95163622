"""Inference engine on a plain transformers causal LM: batched sampling with a KV cache, exact log-probs.

Runs anywhere torch runs (CPU tests, single GPU). Sampling distribution, stated once for both engines:
temperature T > 0 samples from softmax(top_p_filter(logits / T)), where the nucleus filter is transformers'
`TopPLogitsWarper` (sort ascending, drop tokens whose cumulative probability is <= 1 - top_p, always keep the
top token) -- the same rule vLLM applies. The returned log-prob of a sampled token is its log-prob under that
distribution, i.e. `sampling_logprobs(logits, T, top_p)`; for top_p = 1 it is log_softmax(logits / T), which is
what the learner recomputes. T = 0 is greedy decoding and reports log_softmax(logits) (the T = 1 distribution),
matching vLLM's "processed_logprobs" mode.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from spiral.models.cascade import SharedKV, shared_prefix_kv, use_cascade_attention
from spiral.models.dtypes import resolve_dtype
from spiral.models.prefix import shared_prefix_length
from spiral.rollout.engine import Engine, check_score_inputs, token_budgets
from spiral.rollout.hf_cache import preallocated_cache
from spiral.types import EngineOutput, SamplingSettings

if TYPE_CHECKING:
    from transformers import DynamicCache


def sampling_scores(logits: torch.Tensor, temperature: float, top_p: float = 1.0) -> torch.Tensor:
    """fp32 logits of the distribution the engines sample from at these settings (softmax gives it):
    divided by the temperature and, for top_p < 1, -inf outside the nucleus; plain logits for greedy."""
    from transformers.generation.logits_process import TopPLogitsWarper

    scores = logits.float()
    if temperature > 0:
        if temperature != 1.0:
            scores = scores / temperature
        if top_p < 1.0:
            scores = TopPLogitsWarper(top_p)(None, scores.reshape(-1, scores.shape[-1])).reshape(scores.shape)
    return scores


def sampling_logprobs(logits: torch.Tensor, temperature: float, top_p: float = 1.0) -> torch.Tensor:
    """Log-probs (fp32, over the last dim) of the distribution the engines sample from at these settings."""
    return torch.log_softmax(sampling_scores(logits, temperature, top_p), dim=-1)


def _inverse_cdf_sample(scores: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw per row from softmax(`scores` [rows, vocab]) by inverting its CDF with a single uniform number;
    returns the tokens [rows] and their log-probs [rows].

    It needs one random number per row instead of one per vocabulary entry (torch.multinomial), and no
    normalised copy of the distribution: the CDF of the unnormalised weights is searched at u times their sum,
    and the log-prob is score - max - log(sum), the log_softmax formula. The CDF is fp32; on CPU each entry is
    accumulated in double and rounded once, so it is exact to 2^-24 of the mass (a double CDF cost 10x more).
    """
    top = scores.amax(-1, keepdim=True)
    weights = (scores - top).exp_()
    cdf = weights.cumsum(-1)
    total = cdf[:, -1:]
    u = torch.rand((scores.shape[0], 1), generator=generator, device=scores.device, dtype=cdf.dtype) * total
    # right=True skips zero-weight entries (their CDF equals the previous entry's).
    drawn = torch.searchsorted(cdf, u, right=True).clamp(max=scores.shape[1] - 1)
    # Rounding can put u at the very top of the CDF, past the last entry with mass; take the mode then
    # (rare, so the argmax over the vocabulary is only paid when it happens).
    has_mass = weights.gather(1, drawn) > 0
    if not bool(has_mass.all()):
        drawn = torch.where(has_mass, drawn, weights.argmax(-1, keepdim=True))
    return drawn.squeeze(1), (scores.gather(1, drawn) - top - total.log()).squeeze(1)


def _greedy(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The most likely token of each row and its log-prob under softmax(`scores`)."""
    best = scores.argmax(-1, keepdim=True)
    return best.squeeze(1), (scores.gather(1, best) - torch.logsumexp(scores, -1, keepdim=True)).squeeze(1)


@dataclass
class _Context:
    """What decode steps after a prefill continue from."""

    mask: torch.Tensor
    """[rows, tokens] attention mask over the tokens after the shared prefix."""
    last_position: torch.Tensor
    """[rows, 1] position id of each row's last token."""
    shared_kv: SharedKV | None
    cache: DynamicCache | None


class HFEngine(Engine):
    """transformers model + tokenizer; prompts are left-padded into micro-batches of `max_batch_size`."""

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "auto",
        max_model_len: int = 4096,
        seed: int = 0,
        device: str | torch.device | None = None,
        max_batch_size: int = 64,
        trust_remote_code: bool = False,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=resolve_dtype(dtype, self.device), trust_remote_code=trust_remote_code
        ).to(self.device)
        self.model.eval().requires_grad_(False)
        # Without cascade attention a shared prefix would need its KV cache copied into every row: simpler
        # to run whole rows then.
        self._share_prefix = use_cascade_attention(self.model)
        self.max_model_len = max_model_len
        self.max_batch_size = max_batch_size
        # Calls without an explicit seed draw one from here, so a run is reproducible from `seed`
        # without touching torch's global RNG (the learner shares the process).
        self._seeds = random.Random(seed)
        self._eos_ids = self._stop_token_ids()
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self._eos_ids)
        # remove_duplicate=False lists tied parameters under every name (e.g. lm_head.weight and embed_tokens).
        self._params = dict(self.model.named_parameters(remove_duplicate=False))

    def _stop_token_ids(self) -> set[int]:
        """The tokenizer's eos plus any the model's generation config adds (as vLLM does)."""
        ids = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        extra = self.model.generation_config.eos_token_id
        ids.update([extra] if isinstance(extra, int) else (extra or []))
        if not ids:
            raise ValueError("the model's tokenizer defines no eos token, so completions could never stop")
        return ids

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _prefill(self, seqs: list[list[int]], logits_to_keep: int, prompt_lens: list[int],
                 decode_room: int | None = None) -> tuple[torch.Tensor, _Context]:
        """Forward a batch of sequences; returns the logits of their last `logits_to_keep` positions and the
        context later decode steps continue from, with a KV cache that has room for `decode_room` more tokens
        per row (no cache when None).

        Sequences are left-padded. Identical sequences are run once and their rows (logits, mask, positions,
        cache) copied: in self-play many games are at the same spot, e.g. every Kuhn hand's first turn with
        the same card. When the distinct sequences share a long common prefix, it is run once at batch size 1
        and read by every row through cascade attention; the cache, the mask and the left padding then cover
        only the tokens after it, while positions count from the prefix's start. The shared part ends before
        each row's last prompt token (`prompt_lens`), so every logit a caller asks for comes from this call.
        """
        first_row: dict[tuple[int, ...], int] = {}
        rows = [first_row.setdefault(tuple(seq), len(first_row)) for seq in seqs]
        distinct = [list(seq) for seq in first_row]
        shared = shared_prefix_length(distinct, min(prompt_lens) - 1) if self._share_prefix else 0
        shared_kv = None
        if shared:
            prefix = torch.tensor(distinct[0][:shared], device=self.device)
            shared_kv = shared_prefix_kv(self.model.get_decoder(), prefix)
        ids, mask = self._left_pad([s[shared:] for s in distinct])
        # Sized to what this batch can reach: a larger buffer costs page faults on every fresh allocation.
        cache = None if decode_room is None else preallocated_cache(self.model.config, ids.shape[1] + decode_room)
        # Leading padding would get position -1; it is masked out anyway.
        positions = (mask.cumsum(-1) - 1).clamp(min=0) + shared
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                            use_cache=cache is not None, logits_to_keep=logits_to_keep, shared_kv=shared_kv).logits
        if len(distinct) < len(seqs):
            select = torch.tensor(rows, device=self.device)
            logits, mask, positions = logits[select], mask[select], positions[select]
            if cache is not None:
                cache.batch_select_indices(select)
        return logits, _Context(mask, positions[:, -1:], shared_kv, cache)

    def _batches(self, n: int) -> list[range]:
        return [range(start, min(start + self.max_batch_size, n)) for start in range(0, n, self.max_batch_size)]

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], sampling: SamplingSettings) -> list[EngineOutput]:
        budgets = token_budgets(prompts, sampling, self.max_model_len)
        seed = sampling.seed if sampling.seed is not None else self._seeds.getrandbits(63)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        outputs: list[EngineOutput] = []
        for rows in self._batches(len(prompts)):
            outputs += self._generate_batch([prompts[i] for i in rows], [budgets[i] for i in rows], sampling, generator)
        return outputs

    def _generate_batch(self, prompts: list[list[int]], budgets: list[int], sampling: SamplingSettings,
                        generator: torch.Generator) -> list[EngineOutput]:
        """Decode one left-padded batch step by step with the model's KV cache."""
        logits, context = self._prefill(prompts, 1, [len(p) for p in prompts], decode_room=max(budgets))
        logits = logits[:, -1]
        mask, positions, cache = context.mask, context.last_position, context.cache
        assert cache is not None  # prefilled with decode room, so it holds a preallocated cache
        n = len(prompts)
        tokens: list[list[int]] = [[] for _ in range(n)]
        logprobs: list[list[float]] = [[] for _ in range(n)]
        reasons: list[str | None] = [None] * n
        live = list(range(n))  # the prompt each row of the running batch belongs to
        budget = torch.tensor(budgets, device=self.device)
        eos = torch.tensor(sorted(self._eos_ids), device=self.device)
        for step in range(max(budgets)):
            scores = sampling_scores(logits, sampling.temperature, sampling.top_p)
            nxt, chosen = _inverse_cdf_sample(scores, generator) if sampling.temperature > 0 else _greedy(scores)
            stop = torch.isin(nxt, eos)
            full = budget <= step + 1
            for prompt, tok, lp, is_stop, is_full in zip(live, nxt.tolist(), chosen.tolist(), stop.tolist(),
                                                         full.tolist()):
                if reasons[prompt] is not None:
                    continue
                tokens[prompt].append(tok)
                logprobs[prompt].append(lp)
                if is_stop:
                    reasons[prompt] = "stop"
                elif is_full:
                    reasons[prompt] = "length"
            running = [row for row, prompt in enumerate(live) if reasons[prompt] is None]
            if not running:
                break
            # Finished rows keep decoding (their tokens are ignored) until at most half the batch is still
            # running; then the batch shrinks to those rows. Halving bounds the cache copies to about one
            # copy of the whole cache, while a batch whose lengths vary widely stops paying for its
            # finished rows.
            if len(running) <= len(live) // 2:
                keep = torch.tensor(running, device=self.device)
                nxt, mask, positions, budget = nxt[keep], mask[keep], positions[keep], budget[keep]
                cache.batch_select_indices(keep)
                live = [live[row] for row in running]
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
            positions = positions[:, -1:] + 1
            logits = self.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=positions,
                                past_key_values=cache, use_cache=True, shared_kv=context.shared_kv).logits[:, -1]
        return [
            EngineOutput(token_ids=t, text=self.tokenizer.decode(t, skip_special_tokens=True), logprobs=lp,
                         finish_reason=r or "length")
            for t, lp, r in zip(tokens, logprobs, reasons)
        ]

    @torch.no_grad()
    def score(self, prompts: list[list[int]], completions: list[list[int]], temperature: float = 1.0) -> list[list[float]]:
        check_score_inputs(prompts, completions, temperature, self.max_model_len)
        result: list[list[float]] = []
        for rows in self._batches(len(prompts)):
            seqs = [prompts[i] + completions[i] for i in rows]
            longest = max(len(completions[i]) for i in rows)
            if longest == 0:
                result += [[] for _ in rows]
                continue
            # Left padding puts every completion at the end, so only the last longest+1 positions need logits.
            logits = self._prefill(seqs, longest + 1, [len(prompts[i]) for i in rows])[0][:, :-1]
            dist = sampling_logprobs(logits, temperature)
            for row, i in enumerate(rows):
                c = len(completions[i])
                if c == 0:
                    result.append([])
                    continue
                target = torch.tensor(completions[i], device=self.device)
                result.append(dist[row, longest - c:].gather(1, target[:, None]).squeeze(1).tolist())
        return result

    @torch.no_grad()
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy each named tensor into the parameter of that HF name (a tied lm_head is shared, so optional)."""
        for name, tensor in weights:
            param = self._params.get(name)
            if param is None:
                raise KeyError(f"load_weights: the model has no parameter named {name!r}")
            if param.shape != tensor.shape:
                raise ValueError(f"load_weights: {name} has shape {tuple(tensor.shape)}, expected {tuple(param.shape)}")
            param.copy_(tensor)

    def close(self) -> None:
        self.model = None
        self._params = {}
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

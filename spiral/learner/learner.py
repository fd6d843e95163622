"""The DeepSpeed learner: scores log-probs through spiral.kernels, runs PPO updates, streams weights.

Holds the only training state (model, optimizer, scheduler). Runs as one process without torchrun
(it creates a single-rank group) or as one rank of a torchrun job; CPU uses DeepSpeed's CPU
accelerator, CUDA uses bf16.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

if "DS_ACCELERATOR" not in os.environ and not torch.cuda.is_available():
    # Must happen before deepspeed is imported anywhere, or it probes for CUDA and fails.
    os.environ["DS_ACCELERATOR"] = "cpu"

from spiral.algo.ppo import ppo_loss
from spiral.choices import UNIFORM_REFERENCE
from spiral.config.schema import SpiralConfig
from spiral.kernels import lm_head_weight, token_logprobs, vocab_kl
from spiral.learner import distributed as dist_utils
from spiral.learner.batching import (
    PAD_BRANCH,
    Batch,
    collate,
    learning_tokens,
    micro_batches,
    shuffled_order,
    split_even,
    tree_attention_mask,
)
from spiral.learner.update_metrics import RunningTotals, StepStats, mismatch_metrics
from spiral.learner.weight_export import Bucket, weight_buckets
from spiral.models.dtypes import resolve_dtype
from spiral.models.prefix import fill_shared_prefix
from spiral.types import TurnSample

log = logging.getLogger(__name__)

# Attention implementations that take a custom 4D mask (the tree mask, or a mask over a shared prefix's cache).
_CUSTOM_MASK_ATTENTION = ("sdpa", "eager")


class PolicyScorer(nn.Module):
    """Wraps a causal LM so one forward returns the log-probs (and entropy) of the scored tokens.

    The LM head is applied by `token_logprobs` instead of the model's own head, so no full
    [tokens, vocab] logits tensor is kept. Being an nn.Module, it is what DeepSpeed wraps; under
    ZeRO-3 the head weight is registered as an external parameter so it is gathered for this forward.
    """

    def __init__(self, model: nn.Module, backend: str = "auto", chunk_size: int = 1024,
                 share_prefix: bool = True) -> None:
        super().__init__()
        self.model = model
        self.backend = backend
        self.chunk_size = chunk_size
        self.share_prefix = share_prefix

    @property
    def causal_lm(self) -> nn.Module:
        """The transformers model (inside the peft wrapper when LoRA is on)."""
        get_base = getattr(self.model, "get_base_model", None)
        return get_base() if callable(get_base) else self.model

    def forward(self, input_ids: Tensor, position_ids: Tensor, branch_ids: Tensor, score_rows: Tensor,
                score_cols: Tensor, score_targets: Tensor, temperature: float = 1.0, return_entropy: bool = False,
                tree: bool = False, shared_prefix: int = 0,
                kl_to: tuple[Tensor, Tensor, Tensor | None] | None = None) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Log-probs (and entropy) of the scored tokens of a `Batch`; `tree` when rows pack several moves,
        `shared_prefix` the batch's leading columns common to every row (computed once when possible). With
        `kl_to` = (the reference's `scored_hidden`, its head weight and bias), also KL(π ‖ ref) over the
        vocabulary at each scored token (computed here, so that under ZeRO-3 the head weight is gathered)."""
        hidden = self.scored_hidden(input_ids, position_ids, branch_ids, score_rows, score_cols, tree, shared_prefix)
        weight, bias = lm_head_weight(self.model)
        logprobs, entropy = token_logprobs(hidden, weight, score_targets, temperature=temperature, bias=bias,
                                           return_entropy=return_entropy, backend=self.backend,
                                           chunk_size=self.chunk_size)
        kl = None
        if kl_to is not None:
            ref_hidden, ref_weight, ref_bias = kl_to
            kl = vocab_kl(hidden, weight, ref_hidden, ref_weight, bias=bias, ref_bias=ref_bias,
                          temperature=temperature, chunk_size=self.chunk_size)
        return logprobs, entropy, kl

    def scored_hidden(self, input_ids: Tensor, position_ids: Tensor, branch_ids: Tensor, score_rows: Tensor,
                      score_cols: Tensor, tree: bool = False, shared_prefix: int = 0) -> Tensor:
        """[N, H] the final hidden state that predicts each scored token of a `Batch`."""
        decoder = self.causal_lm.get_decoder()
        prefix = shared_prefix if self._can_share_prefix() else 0
        cache = None
        if prefix:
            from transformers import DynamicCache

            cache = DynamicCache(config=self.causal_lm.config)
            fill_shared_prefix(decoder, input_ids[0, :prefix], input_ids.shape[0], cache)
            # The rows' own columns attend to the cached prefix, so they need the 4D mask even without moves.
            mask = self._custom_mask(tree_attention_mask(branch_ids)[:, :, prefix:])
        else:
            mask = self._custom_mask(tree_attention_mask(branch_ids)) if tree else (branch_ids != PAD_BRANCH).long()
        hidden = decoder(input_ids=input_ids[:, prefix:], position_ids=position_ids[:, prefix:], attention_mask=mask,
                         past_key_values=cache, use_cache=cache is not None).last_hidden_state
        return hidden[score_rows, score_cols - prefix]

    def _can_share_prefix(self) -> bool:
        """Whether this forward may compute the shared prefix once and reuse its KV cache."""
        if self.training and self.causal_lm.is_gradient_checkpointing:
            return False  # transformers drops the KV cache inside checkpointed layers
        return self.share_prefix and self.causal_lm.config._attn_implementation in _CUSTOM_MASK_ATTENTION

    def _custom_mask(self, allowed: Tensor) -> Tensor:
        """A [B, 1, Q, K] bool mask (True: may attend) in the form the model's attention implementation takes."""
        implementation = self.causal_lm.config._attn_implementation
        if implementation == "sdpa":
            return allowed
        if implementation == "eager":
            dtype = self.causal_lm.dtype
            return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed,
                                                                                              torch.finfo(dtype).min)
        raise ValueError(
            f"choice samples pack their legal moves into one row under a tree-shaped attention mask, which the "
            f"{implementation!r} attention implementation cannot take; load the model with sdpa or eager attention"
        )


def _load_model(cfg: SpiralConfig, model_path: str, dtype: torch.dtype) -> nn.Module:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, trust_remote_code=cfg.model.trust_remote_code)
    model.config.use_cache = False
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.model.lora.r > 0:
        import peft

        lora = cfg.model.lora
        model = peft.get_peft_model(model, peft.LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules),
            task_type="CAUSAL_LM"))
    return model


def lr_multiplier(step: int, warmup: int, total: int, decay: str = "none", min_ratio: float = 0.0) -> float:
    """Learning-rate factor for optimizer step `step` (0-based): linear warm-up over `warmup` steps, then
    constant (`decay="none"`) or a linear/cosine decay that reaches `min_ratio` at step `total - 1`."""
    if step < warmup:
        return (step + 1) / warmup
    if decay == "none" or total - 1 <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (total - 1 - warmup))
    shape = 1.0 - progress if decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_ratio + (1.0 - min_ratio) * shape


def _engine_logprobs(sample: TurnSample, learner_logprobs: Tensor) -> Tensor | None:
    """The engine's log-probs of a sample's learning tokens, aligned with the learner's (None when the sample
    carries none, e.g. one built by hand)."""
    if len(sample.logprobs) != learner_logprobs.numel():
        return None
    return torch.tensor(sample.logprobs, dtype=learner_logprobs.dtype, device=learner_logprobs.device)


@dataclass
class _OldLogprobs:
    """Per-sample 1-D log-probs of the learning tokens, fixed before an update's first step."""

    learner: list[Tensor]  # the current weights', at the rollout temperature
    engine: list[Tensor | None]  # the inference engine's, where the sample carries them
    reference: list[Tensor] | None  # the KL reference's (algo.kl_coef > 0; every legal move's for exact; None for exact on
    # written moves, whose KL is computed in each micro-batch's forward)
    ratio_base: list[Tensor]  # the PPO ratio's denominators
    is_weights: list[Tensor] | None  # truncated importance weights (algo.tis_cap; ones where no engine log-probs)


def _rank_aligned(groups: list[list[int]]) -> Iterator[tuple[list[int] | None, bool]]:
    """This rank's micro-batches, then None for as many rounds as another rank has more (ZeRO-3 gathers and
    gradient reductions are collective, so every rank must run as many forwards), each with whether it is the
    last round."""
    rounds = int(dist_utils.all_reduce_max([len(groups)])[0])
    for i in range(rounds):
        yield (groups[i] if i < len(groups) else None), i == rounds - 1


class Learner:
    """PPO learner over one policy, wrapped in a DeepSpeed engine."""

    def __init__(self, cfg: SpiralConfig, model_path: str, load_universal: bool = False) -> None:
        """`load_universal`: the checkpoint to resume from is in DeepSpeed's universal format (see
        `checkpoint.prepare_resume`)."""
        import deepspeed
        from deepspeed.utils import logger as ds_logger

        ds_logger.setLevel(logging.WARNING)
        # DeepSpeed's ZeRO-3 calls a deprecated torch collective on every step; the warning is not ours.
        warnings.filterwarnings("ignore", message=".*reduce_scatter_tensor.*", category=FutureWarning)
        dist_utils.init_distributed()
        self.cfg = cfg
        cuda = torch.cuda.is_available()
        self.device = torch.device("cuda", dist_utils.local_rank()) if cuda else torch.device("cpu")
        self.dtype = resolve_dtype(cfg.model.dtype, self.device)
        self.model_path = model_path
        self.load_universal = load_universal
        tr = cfg.trainer
        torch.manual_seed(cfg.run.seed)

        model = _load_model(cfg, model_path, self.dtype)
        self.is_lora = cfg.model.lora.r > 0
        self.scorer = PolicyScorer(model, tr.logprob_backend, tr.logprob_chunk, tr.share_prompt_prefix)
        self.pad_id = self._pad_id(model)

        ds_config = {
            "train_micro_batch_size_per_gpu": tr.micro_batch_size,
            "gradient_accumulation_steps": 1,  # the update sets the accumulation boundary itself
            "gradient_clipping": tr.grad_clip,
            "zero_optimization": {"stage": tr.zero_stage},
            "bf16": {"enabled": self.dtype == torch.bfloat16, "check_grad_overflow": True},
            "fp16": {"enabled": self.dtype == torch.float16},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 2**31 - 1,
            "wall_clock_breakdown": False,
            "checkpoint": {"load_universal": load_universal},
        }
        params = [p for p in self.scorer.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=tr.lr, betas=tuple(tr.betas), eps=tr.adam_eps,
                                      weight_decay=tr.weight_decay)
        total = tr.steps * cfg.algo.epochs * cfg.algo.minibatches  # optimizer steps in the whole run
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_multiplier(step, tr.warmup_steps, total, tr.lr_decay, tr.min_lr_ratio))
        # The DeepSpeed engine around the scorer (named so as not to be confused with the inference engines).
        self.ds_model, _, _, _ = deepspeed.initialize(model=self.scorer, optimizer=optimizer,
                                                      lr_scheduler=scheduler, config=ds_config)
        if tr.zero_stage == 3:
            # Partitioned now (lm_head_weight would refuse its empty shape), gathered in forward.
            head = self.scorer.model.get_output_embeddings()
            deepspeed.zero.register_external_parameter(self.scorer, head.weight)
        # The KL's reference model (none for `algo.kl_reference: uniform`, whose log-probs are known).
        self.reference = self._load_reference() if cfg.algo.kl_coef > 0 and cfg.algo.kl_reference != UNIFORM_REFERENCE else None
        self.updates = 0  # PPO update() calls so far; seeds the minibatch shuffle

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _pad_id(model: nn.Module) -> int:
        config = model.config
        pad = getattr(config, "pad_token_id", None)
        if pad is None:
            pad = getattr(config, "eos_token_id", None)
        if isinstance(pad, list):
            pad = pad[0]
        return int(pad) if pad is not None else 0

    def _load_reference(self) -> PolicyScorer:
        """The KL penalty's reference (only built when kl_coef > 0): a frozen copy of the initial policy, or
        of `algo.kl_reference`."""
        from transformers import AutoModelForCausalLM

        from spiral.models import resolve_model_path

        reference = self.cfg.algo.kl_reference
        path = resolve_model_path(reference, seed=self.cfg.run.seed) if reference else self.model_path
        ref = AutoModelForCausalLM.from_pretrained(path, dtype=self.dtype,
                                                   trust_remote_code=self.cfg.model.trust_remote_code)
        ref.requires_grad_(False).eval().to(self.device)
        return PolicyScorer(ref, self.cfg.trainer.logprob_backend, self.cfg.trainer.logprob_chunk,
                            self.cfg.trainer.share_prompt_prefix)

    def _forward(self, module: nn.Module, batch: Batch, temperature: float, return_entropy: bool = False,
                 kl_to: tuple[Tensor, Tensor, Tensor | None] | None = None
                 ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """The log-prob of every scored token of `batch` (flat; `Batch.sample_logprobs` and its siblings turn
        it into per-sample values) and, if asked, the entropy over the vocabulary at each of them and the KL
        over the vocabulary to `kl_to` (see `PolicyScorer.forward`)."""
        shared = batch.shared_prefix
        tr = self.cfg.trainer
        if tr.share_prompt_prefix and tr.zero_stage == 3 and dist_utils.world_size() > 1:
            # ZeRO-3 gathers a layer's parameters collectively at every call, so every rank must make as
            # many decoder calls as the others: share the prefix only where all ranks can.
            shared = 0 if dist_utils.all_reduce_max([float(shared == 0)])[0] > 0 else shared
        return module(batch.input_ids, batch.position_ids, batch.branch_ids, batch.score_rows, batch.score_cols,
                      batch.score_targets, temperature=temperature, return_entropy=return_entropy,
                      tree=batch.has_choices, shared_prefix=shared, kl_to=kl_to)

    @torch.no_grad()
    def _score_all(self, module: nn.Module, samples: Sequence[TurnSample], temperature: float,
                   all_moves: bool = False) -> list[Tensor]:
        """Per-sample 1-D log-prob tensors of the learning tokens (`all_moves`: of every legal move of a choice
        sample, see `Batch.move_logprobs`), micro-batch by micro-batch.

        Every rank runs the same number of forwards (ZeRO-3 gathers are collective): a rank with fewer
        micro-batches runs throwaway ones.
        """
        out: list[Tensor] = []
        for group, _ in _rank_aligned(micro_batches(range(len(samples)), self.cfg.trainer.micro_batch_size)):
            if group is None:
                self._dummy_forward(module, temperature)
                continue
            batch = collate([samples[j] for j in group], self.pad_id).to(self.device)
            flat, _, _ = self._forward(module, batch, temperature)
            if all_moves:
                out.extend(values.float() for values in batch.move_logprobs(flat))
            else:
                lp = batch.sample_logprobs(flat)
                out.extend(lp[b][batch.sample_mask[b]].float() for b in range(len(group)))
        return out

    def _dummy_forward(self, module: nn.Module, temperature: float) -> Tensor:
        sample = TurnSample(game="", seat=0, prompt_ids=[self.pad_id], completion_ids=[self.pad_id], logprobs=[0.0],
                            ret=0.0)
        flat, _, _ = self._forward(module, collate([sample], self.pad_id).to(self.device), temperature)
        return flat

    # ---------------------------------------------------------------- public API

    def score(self, samples: Sequence[TurnSample], temperature: float = 1.0) -> list[list[float]]:
        """Log-prob of each completion token under the current weights at `temperature`; for a
        choice sample, one value: the chosen move's log-prob renormalised over its legal moves."""
        was_training = self.ds_model.module.training
        self.ds_model.module.eval()
        try:
            return [t.tolist() for t in self._score_all(self.ds_model, samples, temperature)]
        finally:
            self.ds_model.module.train(was_training)

    def update(self, samples: Sequence[TurnSample], temperature: float = 1.0,
               behaviour_logprobs: bool = False) -> dict[str, float]:
        """PPO epochs × minibatches over this rank's samples; returns metrics averaged over ranks.

        Old log-probs are recomputed by the learner (as in the paper) at the rollout temperature, or with
        `behaviour_logprobs` taken from each sample's `logprobs` (the engine's, for samples that may come from
        older weights; recomputed where a sample carries none). A
        non-finite loss or gradient on any rank skips that optimizer step on every rank, leaving the
        weights and optimizer state unchanged; `skipped` counts such steps, and their losses and stats are
        left out of the returned metrics (NaN when every step was skipped).
        """
        algo = self.cfg.algo
        lr = float(self.ds_model.get_lr()[0])  # this update's first step (the scheduler moves on after each)
        old = self._old_logprobs(samples, temperature, behaviour_logprobs)
        totals = RunningTotals()
        for epoch in range(algo.epochs):
            order = shuffled_order(len(samples), seed=self.cfg.run.seed * 1_000_003 + self.updates * 101 + epoch)
            for minibatch in split_even(order, algo.minibatches):
                step = self._ppo_step(samples, minibatch, old, temperature)
                if step is not None:
                    totals.record(*step)
        metrics = totals.metrics(lr, kl_ref=algo.kl_coef > 0)
        if algo.kl_coef > 0:
            metrics["kl_coef"] = self.kl_coef()
        metrics.update(mismatch_metrics(old.learner, old.engine))
        self.updates += 1
        return metrics

    def kl_coef(self) -> float:
        """This update's KL coefficient: `algo.kl_coef`, annealed over the run's steps by `algo.kl_decay`."""
        algo = self.cfg.algo
        return algo.kl_coef * lr_multiplier(self.updates, 0, self.cfg.trainer.steps, algo.kl_decay, algo.kl_min_ratio)

    @property
    def _vocab_kl(self) -> bool:
        """Whether the KL term is the exact KL over the vocabulary at each written token (`exact`, free-form)."""
        algo = self.cfg.algo
        return algo.kl_coef > 0 and algo.kl_estimator == "exact" and self.cfg.rollout.action_constraint != "choice"

    @torch.no_grad()
    def _reference_head(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor | None]:
        """The KL reference's hidden states at `batch`'s scored tokens, and its head weight and bias."""
        assert self.reference is not None  # kl_coef > 0 and not the uniform reference (choice only)
        hidden = self.reference.scored_hidden(batch.input_ids, batch.position_ids, batch.branch_ids, batch.score_rows,
                                              batch.score_cols, tree=batch.has_choices,
                                              shared_prefix=batch.shared_prefix)
        weight, bias = lm_head_weight(self.reference.model)
        return hidden, weight, bias

    def _old_logprobs(self, samples: Sequence[TurnSample], temperature: float,
                      behaviour_logprobs: bool) -> _OldLogprobs:
        """Every sample's log-probs before the update's first step: the current weights', the engine's, the KL
        reference's, and from them the ratio's denominators and the truncated importance weights."""
        algo = self.cfg.algo
        self.ds_model.module.eval()
        learner = self._score_all(self.ds_model, samples, temperature)
        reference = self._reference_logprobs(samples, temperature)
        self.ds_model.module.train()
        engine = [_engine_logprobs(s, o) for s, o in zip(samples, learner)]
        is_weights = None
        if algo.tis_cap > 0 and not behaviour_logprobs:
            is_weights = [torch.ones_like(o) if e is None else (o - e).exp().clamp(max=algo.tis_cap)
                          for o, e in zip(learner, engine)]
        # The ratio's denominator: the current weights' log-probs, or (`behaviour_logprobs`) those of the engine
        # that generated each sample, which already contain the importance weight a truncated IS would add.
        ratio_base = [e if behaviour_logprobs and e is not None else o for o, e in zip(learner, engine)]
        return _OldLogprobs(learner, engine, reference, ratio_base, is_weights)

    def _reference_logprobs(self, samples: Sequence[TurnSample], temperature: float) -> list[Tensor] | None:
        """Per sample, the KL reference's log-probs of the learning tokens (`k3`) or of every legal move (`exact`,
        choice); None without a KL, or with `exact` on written moves, whose KL over the vocabulary is computed
        with each micro-batch's forward. The uniform reference gives each of a choice sample's n legal moves
        log(1/n)."""
        algo = self.cfg.algo
        if algo.kl_coef == 0 or self._vocab_kl:
            return None
        exact = algo.kl_estimator == "exact"
        if self.reference is None:  # algo.kl_reference: uniform (choice samples only, checked in the config)
            return [torch.full((len(s.choices or ()) if exact else 1,), -math.log(len(s.choices or ())))
                    for s in samples]
        return self._score_all(self.reference, samples, temperature, all_moves=exact)

    def _ppo_step(self, samples: Sequence[TurnSample], minibatch: list[int], old: _OldLogprobs,
                  temperature: float) -> tuple[StepStats, bool, float | None] | None:
        """One optimizer step on a minibatch, its PPO loss's gradients accumulated over its micro-batches: the
        step's stats, whether it was applied, and its gradient norm; None when no rank has a sample in it."""
        num_sequences, num_tokens = dist_utils.all_reduce_sum(
            [len(minibatch), sum(learning_tokens(samples[j]) for j in minibatch)])
        if num_sequences == 0:
            return None
        stats = StepStats()

        def micro_loss(group: list[int]) -> Tensor:
            loss, micro_stats = self._ppo_loss(samples, group, old, temperature, num_sequences, num_tokens)
            stats.add(micro_stats)
            return loss

        bad = self._accumulate(micro_batches(minibatch, self.cfg.trainer.micro_batch_size), temperature, micro_loss)
        applied, grad_norm = self._step(bad_loss=bad)
        return stats, applied, grad_norm

    def _ppo_loss(self, samples: Sequence[TurnSample], group: list[int], old: _OldLogprobs, temperature: float,
                  num_sequences: float, num_tokens: float) -> tuple[Tensor, StepStats]:
        """One micro-batch's PPO-clip loss (its share of the minibatch's loss over every rank) and stats."""
        algo = self.cfg.algo
        batch = collate([samples[j] for j in group], self.pad_id).to(self.device)
        kl_to = self._reference_head(batch) if self._vocab_kl else None
        flat, entropy, flat_kl = self._forward(self.ds_model, batch, temperature, return_entropy=True, kl_to=kl_to)
        assert entropy is not None  # return_entropy=True
        new_lp, learning_entropy = batch.sample_logprobs(flat), batch.sample_entropies(flat, entropy)

        def padded(per_sample: list[Tensor]) -> Tensor:
            """The group's rows of a per-sample list, as a [B, T] tensor like `new_lp`."""
            return pad_sequence([per_sample[j] for j in group], batch_first=True).to(new_lp.device, new_lp.dtype)

        ref_logprobs = kl_values = None
        if flat_kl is not None:
            kl_values = batch.sample_logprobs(flat_kl)  # a free sample's per-token values, laid out like new_lp
        elif old.reference is not None:
            if algo.kl_estimator == "exact":
                kl_values = batch.sample_kl(flat, [old.reference[j] for j in group])
            else:
                ref_logprobs = padded(old.reference)

        loss, stats = ppo_loss(new_lp, padded(old.ratio_base), batch.advantages, batch.sample_mask,
                               clip_eps=algo.clip_eps, loss_agg=algo.loss_agg,
                               norm_constant=float(algo.loss_norm or self.cfg.rollout.max_tokens),
                               ref_logprobs=ref_logprobs, kl_values=kl_values, kl_coef=self.kl_coef(),
                               entropy=learning_entropy, entropy_coef=algo.entropy_coef,
                               num_sequences=num_sequences, num_tokens=num_tokens,
                               is_weights=padded(old.is_weights) if old.is_weights is not None else None)
        n = stats["tokens"].item()
        move_entropy = learning_entropy.detach()[[c >= 0 for c in batch.choice_index], 0]
        return loss, StepStats(
            loss=loss.item(), tokens=n, clip_fraction=stats["clip_fraction"].item() * n,
            approx_kl=stats["approx_kl"].item() * n, ratio_mean=stats["ratio_mean"].item() * n,
            kl_ref=stats["kl_ref"].item() * n if "kl_ref" in stats else 0.0,
            entropy=entropy.sum().item(), entropy_tokens=entropy.numel(),
            move_entropy=move_entropy.sum().item(), choice_samples=move_entropy.numel())

    def supervised_update(self, examples: Sequence[TurnSample], weights: Sequence[Sequence[float]]) -> dict[str, float]:
        """One optimizer step of weighted next-token NLL on the completion tokens of this rank's `examples`
        (`weights`: one per completion token; prompt tokens carry no loss). The loss is the weighted mean over
        every rank's tokens; a non-finite loss or gradient skips the step like a PPO step."""
        lr = float(self.ds_model.get_lr()[0])
        (total,) = dist_utils.all_reduce_sum([float(sum(sum(w) for w in weights))])
        if total <= 0:
            raise ValueError("supervised_update: the examples carry no loss weight")
        self.ds_model.module.train()
        nll = 0.0

        def micro_loss(group: list[int]) -> Tensor:
            nonlocal nll
            batch = collate([examples[j] for j in group], self.pad_id).to(self.device)
            flat, _, _ = self._forward(self.ds_model, batch, 1.0)
            lp = batch.sample_logprobs(flat)
            w = pad_sequence([torch.tensor(weights[j], dtype=lp.dtype) for j in group], batch_first=True).to(self.device)
            loss = -(torch.where(batch.sample_mask, lp, 0.0) * w).sum() / total
            nll += loss.item()
            return loss

        bad = self._accumulate(micro_batches(range(len(examples)), self.cfg.trainer.micro_batch_size), 1.0, micro_loss)
        applied, grad_norm = self._step(bad_loss=bad)
        (loss,) = dist_utils.all_reduce_sum([nll])
        return {"loss": loss, "grad_norm": grad_norm if grad_norm is not None else float("nan"), "lr": lr,
                "skipped": float(not applied)}

    @torch.no_grad()
    def supervised_loss(self, examples: Sequence[TurnSample], weights: Sequence[Sequence[float]]) -> float:
        """The weighted mean NLL of `supervised_update` over every rank's examples, without a step."""
        was_training = self.ds_model.module.training
        self.ds_model.module.eval()
        try:
            logprobs = self._score_all(self.ds_model, examples, 1.0)
        finally:
            self.ds_model.module.train(was_training)
        nll = sum(-float((lp * torch.tensor(w, dtype=lp.dtype, device=lp.device)).sum())
                  for lp, w in zip(logprobs, weights))
        nll, total = dist_utils.all_reduce_sum([nll, float(sum(sum(w) for w in weights))])
        return nll / total if total > 0 else float("nan")

    def _accumulate(self, groups: list[list[int]], temperature: float, micro_loss: Callable[[list[int]], Tensor]) -> bool:
        """Backward `micro_loss(group)` for each of this rank's micro-batches, as many rounds on every rank (a
        rank with fewer runs zero-weight ones so collectives stay aligned); the last round is the accumulation
        boundary. Returns whether any rank's loss was non-finite."""
        world = dist_utils.world_size()
        bad = 0.0
        for group, last in _rank_aligned(groups):
            self.ds_model.set_gradient_accumulation_boundary(last)
            if group is None:
                self.ds_model.backward(self._dummy_forward(self.ds_model, temperature).sum() * 0.0,
                                       scale_wrt_gas=False)
                continue
            loss = micro_loss(group)
            if not torch.isfinite(loss.detach()).item():
                bad = 1.0
            # DeepSpeed averages gradients over ranks; micro losses are already global means.
            self.ds_model.backward(loss * world, scale_wrt_gas=False)
        return dist_utils.all_reduce_max([bad])[0] > 0

    def _step(self, bad_loss: bool) -> tuple[bool, float | None]:
        """Apply the accumulated gradients unless anything is non-finite; (applied, grad norm)."""
        applied, norm = self._apply_gradients(bad_loss)
        if not applied:
            log.warning("skipped an optimizer step: non-finite loss or gradient")
        return applied, norm

    def _apply_gradients(self, bad_loss: bool) -> tuple[bool, float | None]:
        """The optimizer step itself, skipped on every rank when `bad_loss` or a gradient is non-finite."""
        if not hasattr(self.ds_model.optimizer, "overflow"):
            # DeepSpeed drives a plain torch optimizer (ZeRO 0, fp32), which never skips a step by itself;
            # the gradients are whole (and already averaged over ranks) in .grad, so check them here.
            grads = [p.grad for p in self.ds_model.module.parameters() if p.grad is not None]
            sq = float(sum(g.detach().float().pow(2).sum() for g in grads)) if grads else 0.0
            if bad_loss or not math.isfinite(sq):
                self.ds_model.zero_grad()
                return False, None
            self.ds_model.step()
            return True, math.sqrt(sq)
        if bad_loss:
            # Make sure the ZeRO optimizer's own overflow check sees the bad step on every rank.
            for p in self.ds_model.module.parameters():
                if p.requires_grad and p.grad is not None:
                    p.grad.fill_(float("nan"))
        self.ds_model.step()
        applied = self.ds_model.was_step_applied()
        if bad_loss and applied:
            raise RuntimeError("DeepSpeed applied an optimizer step with a non-finite loss; weights are corrupt")
        norm = self.ds_model.get_global_grad_norm()
        return applied, (float(norm) if norm is not None and applied else None)

    def peak_memory_gb(self) -> float | None:
        """Peak accelerator memory allocated by this process so far (None on CPU)."""
        return torch.cuda.max_memory_allocated(self.device) / 2**30 if self.device.type == "cuda" else None

    def replica_divergence(self) -> float:
        """Largest difference between ranks of a checksum of the full weights (0 when replicas agree).

        Data-parallel replicas must stay bit-identical; under ZeRO-3 ranks hold different partitions,
        so there is nothing to compare and this returns 0.
        """
        if self.cfg.trainer.zero_stage == 3 or dist_utils.world_size() == 1:
            return 0.0
        with torch.no_grad():
            checksum = sum(float(p.detach().double().abs().sum()) for p in self.scorer.parameters())
        high, neg_low = dist_utils.all_reduce_max([checksum, -checksum])
        return high + neg_low

    def move_magnet(self) -> None:
        """`algo.magnet_ema`: move the KL reference toward the current policy, ref ← (1 − m)·ref + m·policy.
        Every rank must call it (the weights are gathered collectively under ZeRO-3)."""
        rate = self.cfg.algo.magnet_ema
        if self.reference is None or rate == 0:
            return
        ref = dict(self.reference.causal_lm.named_parameters())
        with torch.no_grad():
            for name, weight in self.named_weights():
                ref[name].lerp_(weight.to(ref[name].dtype), rate)

    def named_weights(self, bucket_mb: int | None = None) -> Iterator[tuple[str, Tensor]]:
        """(HF parameter name, tensor) for the full model, LoRA merged; see `weight_buckets`."""
        for bucket in self.weight_buckets(bucket_mb):
            yield from bucket

    def weight_buckets(self, bucket_mb: int | None = None) -> Iterator[Bucket]:
        """The full model's weights in buckets of about `bucket_mb` MiB (default `trainer.sync_bucket_mb`):
        LoRA merged on the fly, gathered bucket by bucket under ZeRO-3 (every rank must iterate)."""
        return weight_buckets(self.scorer.causal_lm, bucket_mb or self.cfg.trainer.sync_bucket_mb, lora=self.is_lora)

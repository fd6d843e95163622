"""The learner's supervised (SFT) step: weighted NLL over completion tokens only, through DeepSpeed."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from spiral.learner.learner import Learner
from tests.learner.helpers import make_samples, small_config


def _reference_nll(model_path: str, samples, weights) -> float:
    """Weighted NLL of each completion after its prompt from a plain HF forward (prompt tokens unscored)."""
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    total, weight = 0.0, 0.0
    with torch.no_grad():
        for s, w in zip(samples, weights):
            ids = torch.tensor([s.prompt_ids + s.completion_ids])
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
            targets = ids[0, 1:]
            token_lp = logp[torch.arange(len(targets)), targets][len(s.prompt_ids) - 1:]
            total -= float((token_lp * torch.tensor(w)).sum())
            weight += sum(w)
    return total / weight


def test_supervised_loss_is_the_weighted_completion_nll(tiny_path: str) -> None:
    """Equal to a plain forward's NLL of the completion tokens alone: prompt tokens carry no loss."""
    samples = make_samples(5)
    weights = [[0.5 if i == 0 else 1.0 for i in range(len(s.completion_ids))] for s in samples]
    learner = Learner(small_config(), tiny_path)
    assert learner.supervised_loss(samples, weights) == pytest.approx(_reference_nll(tiny_path, samples, weights),
                                                                      rel=1e-5)


def test_supervised_steps_lower_the_loss_on_a_fixed_set(tiny_path: str) -> None:
    samples = make_samples(6)
    weights = [[1.0] * len(s.completion_ids) for s in samples]
    learner = Learner(small_config(), tiny_path)
    before = learner.supervised_loss(samples, weights)
    stats = [learner.supervised_update(samples, weights) for _ in range(15)]
    after = learner.supervised_loss(samples, weights)
    assert stats[0]["loss"] == pytest.approx(before, rel=1e-4)  # the reported loss is the pre-step loss
    assert all(s["skipped"] == 0.0 for s in stats)
    assert after < 0.5 * before


def test_supervised_update_refuses_weightless_examples(tiny_path: str) -> None:
    samples = make_samples(2)
    learner = Learner(small_config(), tiny_path)
    with pytest.raises(ValueError, match="no loss weight"):
        learner.supervised_update(samples, [[0.0] * len(s.completion_ids) for s in samples])

"""PPO-clip loss on hand-made ratios and advantages: clipping, aggregation modes, KL, masking."""

import math

import pytest
import torch

from spiral.algo import ppo_loss


def _lp(ratios):
    return torch.log(torch.tensor(ratios, dtype=torch.float64))


def test_clipping_per_token():
    # One sequence, four tokens; advantage +1 clips ratios above 1.2, advantage −1 clips below 0.8.
    new = _lp([[1.5, 0.5, 1.1, 1.0]])
    old = torch.zeros_like(new)
    mask = torch.ones_like(new, dtype=torch.bool)
    loss, stats = ppo_loss(new, old, torch.tensor([1.0], dtype=torch.float64), mask,
                           clip_eps=0.2, loss_agg="token_mean")
    # max(-r, -clip(r)) = -min(r, clip(r)): -1.2, -0.5, -1.1, -1.0
    assert loss.item() == pytest.approx(-(1.2 + 0.5 + 1.1 + 1.0) / 4)
    assert stats["clip_fraction"].item() == pytest.approx(0.25)

    loss_neg, stats_neg = ppo_loss(new, old, torch.tensor([-1.0], dtype=torch.float64), mask,
                                   clip_eps=0.2, loss_agg="token_mean")
    # max(r, clip(r)): 1.5, 0.8, 1.1, 1.0
    assert loss_neg.item() == pytest.approx((1.5 + 0.8 + 1.1 + 1.0) / 4)
    assert stats_neg["clip_fraction"].item() == pytest.approx(0.25)


def test_clipped_tokens_have_no_gradient():
    new = _lp([[1.5, 1.1]]).requires_grad_(True)
    loss, _ = ppo_loss(new, torch.zeros(1, 2, dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64),
                       torch.ones(1, 2, dtype=torch.bool), clip_eps=0.2, loss_agg="token_mean")
    loss.backward()
    # d/dlogp of -A·r/2 = -A·r/2 for the unclipped token; zero for the clipped one.
    assert new.grad[0, 0].item() == 0.0
    assert new.grad[0, 1].item() == pytest.approx(-2.0 * 1.1 / 2)


def test_seq_sum_norm_vs_token_mean():
    # Two sequences of 3 and 1 valid tokens, ratios 1 → token loss = -A.
    new = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    adv = torch.tensor([1.0, 3.0])
    tm, _ = ppo_loss(new, new, adv, mask, clip_eps=0.2, loss_agg="token_mean")
    assert tm.item() == pytest.approx(-(1 + 1 + 1 + 3) / 4)
    ssn, _ = ppo_loss(new, new, adv, mask, clip_eps=0.2, loss_agg="seq_sum_norm", norm_constant=10)
    assert ssn.item() == pytest.approx(-(3 * 1 + 3) / (2 * 10))
    # Micro-batch accumulation: each half normalised by the whole minibatch's count adds up.
    halves = [ppo_loss(new[i:i + 1], new[i:i + 1], adv[i:i + 1], mask[i:i + 1], clip_eps=0.2,
                       loss_agg="seq_sum_norm", norm_constant=10, num_sequences=2)[0] for i in range(2)]
    assert sum(h.item() for h in halves) == pytest.approx(ssn.item())
    halves_tm = [ppo_loss(new[i:i + 1], new[i:i + 1], adv[i:i + 1], mask[i:i + 1], clip_eps=0.2,
                          loss_agg="token_mean", num_tokens=4)[0] for i in range(2)]
    assert sum(h.item() for h in halves_tm) == pytest.approx(tm.item())


def test_masked_positions_ignored_even_if_nonfinite():
    new = torch.tensor([[0.0, float("nan")]])
    old = torch.tensor([[0.0, float("inf")]])
    mask = torch.tensor([[True, False]])
    loss, stats = ppo_loss(new, old, torch.tensor([1.0]), mask, clip_eps=0.2, loss_agg="token_mean")
    assert loss.item() == pytest.approx(-1.0)
    assert math.isfinite(stats["approx_kl"].item())


def test_nan_advantage_gives_nan_loss():
    new = torch.zeros(1, 2)
    loss, _ = ppo_loss(new, new, torch.tensor([float("nan")]), torch.ones(1, 2), clip_eps=0.2, loss_agg="token_mean")
    assert math.isnan(loss.item())


def test_kl_penalty_k3():
    new = torch.zeros(1, 1)
    ref = torch.tensor([[math.log(2.0)]])
    loss, stats = ppo_loss(new, new, torch.tensor([0.0]), torch.ones(1, 1), clip_eps=0.2, loss_agg="token_mean",
                           ref_logprobs=ref, kl_coef=0.5)
    k3 = 2.0 - math.log(2.0) - 1.0
    assert stats["kl_ref"].item() == pytest.approx(k3)
    assert loss.item() == pytest.approx(0.5 * k3)


def test_a_given_kl_replaces_the_k3_estimate_and_carries_its_gradient():
    new = torch.zeros(1, 2)
    mask = torch.tensor([[True, False]])
    kl = torch.tensor([[0.3, 9.0]], requires_grad=True)  # 9.0 sits on a masked slot
    loss, stats = ppo_loss(new, new, torch.tensor([0.0]), mask, clip_eps=0.2, loss_agg="token_mean",
                           kl_values=kl, kl_coef=0.5)
    assert stats["kl_ref"].item() == pytest.approx(0.3)
    assert loss.item() == pytest.approx(0.5 * 0.3)
    loss.backward()
    assert kl.grad.flatten().tolist() == pytest.approx([0.5, 0.0])
    with pytest.raises(ValueError, match="kl_values"):
        ppo_loss(new, new, torch.tensor([0.0]), mask, clip_eps=0.2, loss_agg="token_mean",
                 kl_values=torch.zeros(1, 3), kl_coef=0.5)


def test_entropy_bonus_is_subtracted_per_token_and_aggregated_like_the_loss():
    new = torch.zeros(2, 2)
    mask = torch.tensor([[True, True], [True, False]])
    entropy = torch.tensor([[0.3, 0.6], [0.9, 50.0]], requires_grad=True)  # 50.0 sits on a masked slot
    loss, _ = ppo_loss(new, new, torch.tensor([0.0, 0.0]), mask, clip_eps=0.2, loss_agg="token_mean",
                       entropy=entropy, entropy_coef=0.1)
    assert loss.item() == pytest.approx(-0.1 * (0.3 + 0.6 + 0.9) / 3)
    loss.backward()
    assert entropy.grad.flatten().tolist() == pytest.approx([-0.1 / 3, -0.1 / 3, -0.1 / 3, 0.0])
    seq, _ = ppo_loss(new, new, torch.tensor([0.0, 0.0]), mask, clip_eps=0.2, loss_agg="seq_sum_norm",
                      norm_constant=4.0, entropy=entropy, entropy_coef=0.1)
    assert seq.item() == pytest.approx(-0.1 * (0.3 + 0.6 + 0.9) / (2 * 4.0))


def test_approx_kl_and_ratio_stats():
    new = _lp([[2.0, 0.5]])
    _, stats = ppo_loss(new, torch.zeros_like(new), torch.tensor([0.0], dtype=torch.float64),
                        torch.ones(1, 2), clip_eps=0.2, loss_agg="token_mean")
    expected = ((2.0 - 1 - math.log(2.0)) + (0.5 - 1 - math.log(0.5))) / 2
    assert stats["approx_kl"].item() == pytest.approx(expected)
    assert stats["ratio_mean"].item() == pytest.approx(1.25)
    assert stats["ratio_max"].item() == pytest.approx(2.0)


def test_bad_arguments():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="loss_agg"):
        ppo_loss(x, x, torch.zeros(1), x, clip_eps=0.2, loss_agg="mean")
    with pytest.raises(ValueError, match="ref_logprobs"):
        ppo_loss(x, x, torch.zeros(1), x, clip_eps=0.2, loss_agg="token_mean", kl_coef=0.1)
    with pytest.raises(ValueError, match="shape"):
        ppo_loss(x, torch.zeros(1, 3), torch.zeros(1), x, clip_eps=0.2, loss_agg="token_mean")
    with pytest.raises(ValueError, match="entropy"):
        ppo_loss(x, x, torch.zeros(1), x, clip_eps=0.2, loss_agg="token_mean", entropy_coef=0.1)


def test_importance_weights_scale_each_tokens_policy_term():
    new = _lp([[1.1, 0.9, 1.0]]).requires_grad_(True)
    old, mask = torch.zeros(1, 3, dtype=torch.float64), torch.tensor([[True, True, False]])
    weights = torch.tensor([[2.0, 0.5, float("nan")]], dtype=torch.float64)  # masked positions never count
    loss, _ = ppo_loss(new, old, torch.tensor([1.0], dtype=torch.float64), mask, clip_eps=0.2,
                       loss_agg="token_mean", is_weights=weights)
    assert loss.item() == pytest.approx(-(2.0 * 1.1 + 0.5 * 0.9) / 2)
    loss.backward()
    assert new.grad[0].tolist() == pytest.approx([-2.0 * 1.1 / 2, -0.5 * 0.9 / 2, 0.0])
    with pytest.raises(ValueError, match="is_weights"):
        ppo_loss(new, old, torch.tensor([1.0], dtype=torch.float64), mask, clip_eps=0.2, loss_agg="token_mean",
                 is_weights=weights[:, :2])

"""The DeepSpeed learner in one process (no torchrun): updates, skipped steps, weight streaming."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from spiral.learner.learner import Learner
from tests.learner.helpers import make_samples, small_config, weights


def _objective(learner: Learner, samples) -> float:
    """Σ A · log p(completion): what PPO increases on a repeated batch."""
    scores = learner.score(samples)
    return sum(s.advantage * sum(lp) for s, lp in zip(samples, scores))


def _optimizer_state(learner: Learner) -> dict:
    """AdamW's per-parameter state (the torch optimizer inside any ZeRO wrapper), copied."""
    inner = getattr(learner.ds_model.optimizer, "optimizer", learner.ds_model.optimizer)
    # Keyed by position: ZeRO-3 keeps its flat fp32 partitions out of param_groups between steps.
    return {i: copy.deepcopy(state) for i, state in enumerate(inner.state.values())}


def test_score_matches_plain_transformers(tiny_path):
    from transformers import AutoModelForCausalLM

    learner = Learner(small_config(), tiny_path)
    samples = make_samples(3)
    model = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32).eval()
    for sample, got in zip(samples, learner.score(samples, temperature=0.7)):
        ids = torch.tensor([sample.prompt_ids + sample.completion_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(sample.prompt_ids) - 1 : -1] / 0.7
        want = torch.log_softmax(logits, -1).gather(1, torch.tensor(sample.completion_ids)[:, None])[:, 0]
        assert got == pytest.approx(want.tolist(), abs=1e-4)


def test_choice_samples_score_and_train_on_the_renormalised_distribution(tiny_path):
    from transformers import AutoModelForCausalLM

    from spiral.types import TurnSample

    learner = Learner(small_config(), tiny_path)
    moves = [[40, 41], [42], [43, 44, 45]]
    samples = [TurnSample("kuhn_poker", 0, [5, 6, 7], moves[1], [], 1.0, advantage=1.0, choices=moves, choice_index=1),
               TurnSample("kuhn_poker", 1, [8, 9], [10, 11], [], -1.0, advantage=-1.0)]
    model = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32).eval()

    def move_logprob(prompt, move):
        with torch.no_grad():
            logits = model(torch.tensor([prompt + move])).logits[0, len(prompt) - 1 : -1]
        return torch.log_softmax(logits, -1).gather(1, torch.tensor(move)[:, None]).sum().item()

    totals = torch.tensor([move_logprob([5, 6, 7], m) for m in moves])
    scores = learner.score(samples)
    assert len(scores[0]) == 1 and len(scores[1]) == 2
    assert scores[0][0] == pytest.approx(torch.log_softmax(totals, 0)[1].item(), abs=1e-4)
    metrics = learner.update(samples)
    assert learner.score(samples)[0][0] > scores[0][0]
    # The entropy over the three moves, averaged over the update's epochs (the policy moves a little).
    moves = torch.softmax(totals, 0)
    assert metrics["move_entropy"] == pytest.approx(-(moves * moves.log()).sum().item(), abs=0.05)


def test_entropy_bonus_alone_spreads_the_move_distribution(tiny_path):
    """With every advantage zero the PPO term has no gradient, so an update moves the policy only through
    the entropy bonus: the entropy over the legal moves goes up."""
    from spiral.types import TurnSample

    moves = [[40, 41], [42], [43, 44, 45]]
    samples = [TurnSample("tic_tac_toe", 0, [5, 6, 7], moves[1], [], 0.0, advantage=0.0, choices=moves,
                          choice_index=1)]
    learner = Learner(small_config(), tiny_path)
    learner.cfg.algo.entropy_coef = 1.0
    before = learner.update(samples)["move_entropy"]
    after = learner.update(samples)["move_entropy"]
    assert after > before + 1e-3


def test_updates_change_weights_and_improve_objective(tiny_path):
    learner = Learner(small_config(), tiny_path)
    samples = make_samples()
    before_w, before_obj = weights(learner), _objective(learner, samples)
    for _ in range(2):
        metrics = learner.update(samples)
        assert metrics["skipped"] == 0 and metrics["optimizer_steps"] == 2
        assert all(math.isfinite(metrics[k]) for k in ("policy_loss", "grad_norm", "entropy", "approx_kl"))
        assert "move_entropy" not in metrics  # free-form samples only
    after_w = weights(learner)
    assert any(not torch.equal(before_w[k], after_w[k]) for k in before_w)
    assert _objective(learner, samples) > before_obj + 1.0


@pytest.mark.parametrize("stage", [0, 2, 3])
def test_nonfinite_loss_skips_step(tiny_path, stage):
    learner = Learner(small_config(zero_stage=stage), tiny_path)
    samples = make_samples()
    learner.update(samples)  # build optimizer state first
    w, opt, lr_steps = weights(learner), _optimizer_state(learner), learner.ds_model.lr_scheduler.last_epoch
    samples[3].advantage = float("nan")
    metrics = learner.update(samples)
    assert metrics["skipped"] == 2 and metrics["optimizer_steps"] == 0
    assert all(torch.equal(w[k], v) for k, v in weights(learner).items())
    after = _optimizer_state(learner)
    assert opt and after.keys() == opt.keys()
    for key in opt:
        for name, value in opt[key].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(after[key][name])), (key, name)
    assert learner.ds_model.lr_scheduler.last_epoch == lr_steps
    # The learner still trains afterwards.
    samples[3].advantage = 1.0
    assert learner.update(samples)["skipped"] == 0
    assert any(not torch.equal(w[k], v) for k, v in weights(learner).items())


def test_a_skipped_step_stays_out_of_the_loss_and_stats(tiny_path):
    cfg = small_config()
    cfg.algo.epochs, cfg.algo.minibatches = 1, 2
    learner = Learner(cfg, tiny_path)
    samples = make_samples()
    samples[3].advantage = float("nan")  # poisons exactly one of the two minibatches, whichever holds it
    metrics = learner.update(samples)
    assert metrics["skipped"] == 1 and metrics["optimizer_steps"] == 1
    for key in ("policy_loss", "grad_norm", "entropy", "approx_kl", "clip_fraction", "ratio_mean"):
        assert math.isfinite(metrics[key]), key
    for sample in samples:
        sample.advantage = float("nan")
    metrics = learner.update(samples)
    assert metrics["skipped"] == 2 and math.isnan(metrics["policy_loss"])  # no update: no loss, not 0


def test_named_weights_are_the_hf_parameters(tiny_path):
    from transformers import AutoModelForCausalLM

    expected = dict(AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32).named_parameters())
    for stage in (0, 3):
        got = dict(Learner(small_config(zero_stage=stage), tiny_path).named_weights(bucket_mb=1))
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k].cpu(), expected[k].detach()) for k in expected), stage


def test_zero3_update_matches_zero0(tiny_path):
    samples = make_samples()
    results = []
    for stage in (0, 3):
        learner = Learner(small_config(zero_stage=stage), tiny_path)
        learner.update(samples)
        results.append(weights(learner))
    assert results[0].keys() == results[1].keys()
    # Adam's first step moves each weight by about ±lr, and by g/(|g|+eps) where a gradient is near
    # zero: there reduction-order noise between ZeRO stages shows, so compare against the step size.
    lr = small_config().trainer.lr
    moved = max((results[0][k] - results[1][k]).abs().max().item() for k in results[0])
    assert moved <= 0.05 * lr, moved


def test_lora_named_weights_equal_peft_merge(tiny_path):
    learner = Learner(small_config(lora_r=4), tiny_path)
    learner.update(make_samples())  # lora_B starts at zero; one update makes the merge non-trivial
    peft_model = learner.scorer.model
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n for n in trainable)
    merged = dict(copy.deepcopy(peft_model).merge_and_unload().named_parameters())
    got = dict(learner.named_weights())
    assert got.keys() == merged.keys()
    for k in merged:
        torch.testing.assert_close(got[k], merged[k].detach(), atol=1e-6, rtol=1e-6)
    # The delta is applied, and the training weights are left as they were loaded.
    from transformers import AutoModelForCausalLM

    initial = dict(AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32).named_parameters())
    base = dict(learner.scorer.causal_lm.named_parameters())
    q = "model.layers.0.self_attn.q_proj"
    assert not torch.equal(got[f"{q}.weight"], initial[f"{q}.weight"])
    assert torch.equal(base[f"{q}.base_layer.weight"], initial[f"{q}.weight"])


def test_kl_penalty_runs_against_initial_policy(tiny_path):
    cfg = small_config()
    cfg.algo.kl_coef = 0.1
    learner = Learner(cfg, tiny_path)
    first = learner.update(make_samples())
    second = learner.update(make_samples())
    assert first["kl_ref"] >= 0 and second["kl_ref"] > first["kl_ref"]


def test_the_kl_reference_can_be_another_model(tiny_path, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    other = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.5)
    other.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_path).save_pretrained(tmp_path)
    cfg = small_config()
    cfg.algo.kl_coef, cfg.algo.kl_reference, cfg.algo.epochs = 0.1, str(tmp_path), 1
    learner = Learner(cfg, tiny_path)
    reference = dict(learner.reference.causal_lm.named_parameters())
    assert all(torch.equal(reference[n], p) for n, p in other.named_parameters())
    assert learner.update(make_samples())["kl_ref"] > 0  # the policy starts away from this reference


def test_the_exact_kl_is_summed_over_the_legal_moves_and_pulls_toward_the_reference(tiny_path, tmp_path):
    """KL(π ‖ ref) over every legal move, checked against both models scored by plain transformers; with the
    advantage zero, updates on it alone bring the policy's moves toward the reference's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spiral.types import TurnSample

    other = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)
    with torch.no_grad():
        torch.manual_seed(0)
        other.get_output_embeddings().weight.normal_(0.0, 1.0)  # a move distribution far from the policy's
    other.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_path).save_pretrained(tmp_path)
    policy = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32).eval()
    prompt, moves = [5, 6, 7], [[40, 41], [42], [43, 44, 45]]

    def move_logprobs(model):
        totals = []
        for move in moves:
            with torch.no_grad():
                logits = model(torch.tensor([prompt + move])).logits[0, len(prompt) - 1 : -1]
            totals.append(torch.log_softmax(logits, -1).gather(1, torch.tensor(move)[:, None]).sum())
        return torch.log_softmax(torch.stack(totals), 0)

    p, r = move_logprobs(policy), move_logprobs(other.eval())
    exact = (p.exp() * (p - r)).sum().item()
    sample = TurnSample("kuhn_poker", 0, prompt, moves[0], [], 0.0, advantage=0.0, choices=moves, choice_index=0)
    cfg = small_config()
    cfg.rollout.action_constraint = "choice"
    cfg.algo.kl_coef, cfg.algo.kl_reference, cfg.algo.kl_estimator, cfg.algo.epochs = 1.0, str(tmp_path), "exact", 1
    learner = Learner(cfg, tiny_path)
    first = learner.update([sample])["kl_ref"]
    assert first == pytest.approx(exact, rel=1e-4)
    k3 = math.exp(r[0] - p[0]) - (r[0] - p[0]).item() - 1  # what the sampled estimate would have logged
    assert abs(first - k3) > 0.05
    for _ in range(5):
        last = learner.update([sample])["kl_ref"]
    assert last < first / 2


@pytest.mark.parametrize("stage", [0, 3])
def test_the_exact_kl_of_written_moves_is_over_the_vocabulary_and_pulls_toward_the_reference(tiny_path, tmp_path,
                                                                                             stage):
    """In free-form play `exact` is KL(π ‖ ref) over the whole vocabulary at each written token, checked against
    both models' full logits from plain transformers; with the advantage zero, each update on it alone lowers it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spiral.types import TurnSample

    other = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)
    with torch.no_grad():
        torch.manual_seed(0)
        other.get_output_embeddings().weight.normal_(0.0, 0.1)  # next-token distributions away from the policy's
    other.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_path).save_pretrained(tmp_path)
    policy = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32).eval()
    prompt, completion = [5, 6, 7], [40, 41, 42]

    def next_token_logprobs(model):
        with torch.no_grad():
            logits = model(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1 : -1]
        return torch.log_softmax(logits, -1)

    p, r = next_token_logprobs(policy), next_token_logprobs(other.eval())
    exact = (p.exp() * (p - r)).sum(-1).mean().item()  # the KL at each written token, averaged over them
    sampled = p.gather(1, torch.tensor(completion)[:, None])[:, 0] - r.gather(1, torch.tensor(completion)[:, None])[:, 0]
    k3 = ((-sampled).exp() + sampled - 1).mean().item()  # what the sampled estimate would have logged
    cfg = small_config(zero_stage=stage)
    assert cfg.rollout.action_constraint == "none"
    cfg.algo.kl_coef, cfg.algo.kl_reference, cfg.algo.kl_estimator, cfg.algo.epochs = 1.0, str(tmp_path), "exact", 1
    learner = Learner(cfg, tiny_path)
    sample = TurnSample("kuhn_poker", 0, prompt, completion, [], 0.0, advantage=0.0)
    first = learner.update([sample])["kl_ref"]
    assert first == pytest.approx(exact, rel=1e-4)
    assert abs(first - k3) > 0.05
    history = [first] + [learner.update([sample])["kl_ref"] for _ in range(5)]
    assert all(later < earlier for earlier, later in zip(history, history[1:]))
    assert history[-1] < 0.95 * first


@pytest.mark.parametrize("estimator", ["k3", "exact"])
def test_a_uniform_reference_is_one_over_the_legal_moves_and_loads_no_model(tiny_path, estimator):
    from spiral.types import TurnSample

    moves = [[40, 41], [42], [43, 44, 45]]
    samples = [TurnSample("kuhn_poker", 0, [5, 6, 7], moves[k], [], 0.0, advantage=0.0, choices=moves, choice_index=k)
               for k in range(3)]
    cfg = small_config()
    cfg.rollout.action_constraint = "choice"
    cfg.algo.kl_coef, cfg.algo.kl_reference, cfg.algo.kl_estimator, cfg.algo.epochs = 1.0, "uniform", estimator, 1
    learner = Learner(cfg, tiny_path)
    assert learner.reference is None
    p = torch.tensor([lp[0] for lp in learner.score(samples)], dtype=torch.float64)  # every move's log-prob
    u = -math.log(3)
    if estimator == "exact":  # KL(π ‖ uniform) = log 3 − H(π), the same at each of the three samples
        expected = (p.exp() * (p - u)).sum().item()
    else:  # the k3 estimate at each sample's own move, averaged over the three
        expected = ((u - p).exp() - (u - p) - 1).mean().item()
    assert learner.update(samples)["kl_ref"] == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("stage", [0, 3])
def test_magnet_moves_the_kl_reference_toward_the_policy_by_its_rate(tiny_path, stage):
    cfg = small_config(zero_stage=stage)
    cfg.algo.kl_coef, cfg.algo.magnet_ema = 0.1, 0.25
    learner = Learner(cfg, tiny_path)
    initial = weights(learner)
    learner.update(make_samples())
    policy = weights(learner)
    learner.move_magnet()
    magnet = {n: p.detach().clone() for n, p in learner.reference.causal_lm.named_parameters()}
    assert magnet.keys() == policy.keys()
    for name in policy:
        torch.testing.assert_close(magnet[name], 0.75 * initial[name] + 0.25 * policy[name])
    assert any(not torch.equal(magnet[n], initial[n]) for n in magnet)


def test_a_full_rate_magnet_is_the_policy_so_the_next_kl_is_zero(tiny_path):
    cfg = small_config()
    cfg.algo.kl_coef, cfg.algo.magnet_ema = 0.1, 1.0
    cfg.algo.epochs = 1
    learner = Learner(cfg, tiny_path)
    assert learner.update(make_samples())["kl_ref"] == 0.0  # the reference starts as the policy
    learner.move_magnet()
    assert abs(learner.update(make_samples())["kl_ref"]) < 1e-9  # and is the policy again after the move


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_packed_moves_score_like_separate_rows(tiny_path, implementation):
    """Moves packed behind one prompt under the tree mask get the log-probs of separate, unpacked rows."""
    from transformers import AutoModelForCausalLM

    from spiral.learner.batching import collate
    from spiral.learner.learner import PolicyScorer
    from spiral.types import TurnSample

    model = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32, attn_implementation=implementation)
    model.eval()
    moves = [[40, 41, 42], [43], [44, 45]]
    samples = [TurnSample("g", 0, [5, 6, 7, 8], moves[2], [], 0.0, choices=moves, choice_index=2),
               TurnSample("g", 1, [9, 10], [11, 12], [], 0.0)]
    batch = collate(samples, pad_id=0)
    with torch.no_grad():
        flat, _, _ = PolicyScorer(model)(batch.input_ids, batch.position_ids, batch.branch_ids, batch.score_rows,
                                         batch.score_cols, batch.score_targets, tree=True)
        expected = []
        for prompt, completion in [([5, 6, 7, 8], m) for m in moves] + [([9, 10], [11, 12])]:
            logits = model(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1 : -1]
            expected += torch.log_softmax(logits, -1).gather(1, torch.tensor(completion)[:, None])[:, 0].tolist()
    assert flat.tolist() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_shared_prefix_gives_the_log_probs_and_gradients_of_whole_rows(tiny_path, implementation, checkpointing):
    """Computing the common prompt prefix once and reusing its KV cache changes neither the log-probs nor
    the gradients (also under gradient checkpointing, where training forwards cannot reuse a cache)."""
    from transformers import AutoModelForCausalLM

    from spiral.learner.batching import collate
    from spiral.learner.learner import PolicyScorer
    from spiral.types import TurnSample

    rules = list(range(200, 230))
    moves = [[40, 41], [42], [43, 44, 45]]
    samples = [TurnSample("g", 0, rules + [5, 6, 7], moves[0], [], 0.0, choices=moves, choice_index=0),
               TurnSample("g", 1, rules + [5, 9], [11, 12, 13], [], 0.0),
               TurnSample("g", 0, rules + [8], [14], [], 0.0)]
    batch = collate(samples, pad_id=0)
    assert batch.shared_prefix == len(rules)

    def scored(share: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32,
                                                     attn_implementation=implementation)
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        scorer = PolicyScorer(model, share_prefix=share).train()
        flat, _, _ = scorer(batch.input_ids, batch.position_ids, batch.branch_ids, batch.score_rows, batch.score_cols,
                            batch.score_targets, tree=True, shared_prefix=batch.shared_prefix)
        (flat * torch.linspace(-1.0, 1.0, flat.numel())).sum().backward()
        return flat.detach(), [p.grad.clone() for p in model.parameters()]

    (shared, shared_grads), (whole, whole_grads) = scored(True), scored(False)
    assert shared.tolist() == pytest.approx(whole.tolist(), abs=1e-5)
    for got, want in zip(shared_grads, whole_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    from spiral.learner.learner import lr_multiplier

    assert [lr_multiplier(s, warmup=2, total=10) for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1.0]
    linear = [lr_multiplier(s, warmup=2, total=10, decay="linear", min_ratio=0.1) for s in range(10)]
    assert linear[:3] == [0.5, 1.0, 1.0] and linear[-1] == pytest.approx(0.1)
    assert linear[5] == pytest.approx(0.1 + 0.9 * (1 - 3 / 7))
    cosine = [lr_multiplier(s, warmup=0, total=5, decay="cosine") for s in range(5)]
    assert cosine == pytest.approx([1.0, 0.5 + 0.5 * math.cos(math.pi / 4), 0.5, 0.5 - 0.5 * math.cos(math.pi / 4), 0.0])
    assert lr_multiplier(50, warmup=0, total=10, decay="cosine") == pytest.approx(0.0)  # past the end: the floor


def test_learner_follows_the_configured_decay(tiny_path):
    cfg = small_config(lr_decay="linear", min_lr_ratio=0.2, steps=2)
    cfg.algo.epochs, cfg.algo.minibatches = 1, 1  # one optimizer step per update: 2 in the run
    learner = Learner(cfg, tiny_path)
    first, second = (learner.update(make_samples(4))["lr"] for _ in range(2))
    assert first == pytest.approx(1e-3) and second == pytest.approx(2e-4)


def test_the_kl_coefficient_anneals_over_the_run_and_weighs_the_penalty(tiny_path):
    """`algo.kl_decay`: the coefficient falls from kl_coef to kl_min_ratio × kl_coef over trainer.steps, and the
    penalty in the loss is weighed by it (zero advantages: the loss is the coefficient times the KL)."""
    cfg = small_config(steps=3)
    cfg.algo.kl_coef, cfg.algo.kl_decay, cfg.algo.kl_min_ratio, cfg.algo.epochs = 0.4, "linear", 0.25, 1
    cfg.algo.loss_agg = "token_mean"  # so the loss is the coefficient times the logged per-token KL
    learner = Learner(cfg, tiny_path)
    with torch.no_grad():  # move the policy off its reference so the KL is not zero
        for p in learner.ds_model.module.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    samples = make_samples(4)
    for s in samples:
        s.advantage = 0.0
    runs = [learner.update(samples) for _ in range(3)]
    assert [m["kl_coef"] for m in runs] == pytest.approx([0.4, 0.25, 0.1])
    for m in runs:
        assert m["kl_ref"] > 0
        assert m["policy_loss"] == pytest.approx(m["kl_coef"] * m["kl_ref"], rel=1e-4)


def test_repeated_samples_share_a_row_and_add_up_their_gradients(tiny_path):
    """A batch with a sample twice runs it once; its log-probs and the gradient are those of scoring every
    sample on its own."""
    from transformers import AutoModelForCausalLM

    from spiral.learner.batching import collate
    from spiral.learner.learner import PolicyScorer
    from spiral.types import TurnSample

    moves = [[40, 41], [42]]
    choice = TurnSample("g", 0, [5, 6, 7], moves[0], [], 0.0, choices=moves, choice_index=0)
    free = TurnSample("g", 1, [8, 9], [11, 12], [], 0.0)
    samples = [choice, free, choice, free]
    model = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)
    scorer = PolicyScorer(model).train()

    def score(batch_samples):
        batch = collate(batch_samples, pad_id=0)
        flat, _, _ = scorer(batch.input_ids, batch.position_ids, batch.branch_ids, batch.score_rows, batch.score_cols,
                            batch.score_targets, tree=batch.has_choices)
        return batch, flat

    batch, flat = score(samples)
    assert batch.input_ids.shape[0] == 2
    weights = torch.linspace(-1.0, 1.0, flat.numel())
    (flat * weights).sum().backward()
    together = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    alone, offset = [], 0
    for sample in samples:
        one = score([sample])[1]
        (one * weights[offset : offset + one.numel()]).sum().backward()
        alone.append(one.detach())
        offset += one.numel()
    assert flat.tolist() == pytest.approx(torch.cat(alone).tolist(), abs=1e-5)
    for got, want in zip(together, [p.grad for p in model.parameters()]):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("shift, expected_weight", [(math.log(1.5), 1.5), (math.log(10.0), 2.0)])
def test_truncated_importance_sampling_weights_by_the_capped_engine_ratio(tiny_path, shift, expected_weight):
    """Engine log-probs `shift` below the learner's mean a ratio π_learner / π_engine = e^shift on every token;
    with algo.tis_cap = 2 the policy loss of one minibatch step is that ratio, capped at 2, times the loss without
    the correction. The mismatch metrics report the gap."""
    samples = make_samples(4)
    losses, mismatch = [], []
    for cap in (0.0, 2.0):
        cfg = small_config()
        cfg.algo.epochs, cfg.algo.minibatches, cfg.algo.tis_cap = 1, 1, cap
        learner = Learner(cfg, tiny_path)
        scored = learner.score(samples)
        for sample, lps in zip(samples, scored):
            sample.logprobs = [lp - shift for lp in lps]
        stats = learner.update(samples)
        losses.append(stats["policy_loss"])
        mismatch.append((stats["mismatch_kl"], stats["mismatch_max_abs"]))
    assert losses[1] == pytest.approx(expected_weight * losses[0], rel=1e-4)
    for kl, largest in mismatch:
        assert kl == pytest.approx(math.exp(shift) - shift - 1.0, rel=1e-4)
        assert largest == pytest.approx(shift, rel=1e-4)

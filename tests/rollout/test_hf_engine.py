"""HFEngine: batching, prefix sharing, exact log-probs, scoring and in-place weight loads (the contract every engine
meets, shapes, seeding and sampled log-probs, is in test_engine_contract.py)."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator

import pytest
import torch

from spiral.rollout import create_engine
from spiral.types import SamplingSettings
from tests.rollout.helpers import eos_loving_weights, reference_logprobs

ATOL = 1e-4  # fp32 on CPU: engine (batched, KV-cached) vs unpadded full forward; measured ~5e-7


@pytest.fixture(scope="module")
def engine(tiny_path):
    eng = create_engine("hf", tiny_path, dtype="float32", device="cpu", max_model_len=1024, max_batch_size=2)
    yield eng
    eng.close()


@pytest.fixture()
def fresh(engine, tiny_path):
    """The module engine, restored to builtin:tiny's weights after the test."""
    from transformers import AutoModelForCausalLM

    yield engine
    base = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)
    engine.load_weights(base.named_parameters())


def _assert_reports_exact_logprobs(engine, prompts, temperature: float, seed: int, atol: float = ATOL) -> None:
    """Sampled tokens' reported log-probs equal log_softmax(logits / T) of an unpadded forward."""
    outs = engine.generate(prompts, SamplingSettings(temperature=temperature, max_tokens=12, seed=seed))
    for prompt, out in zip(prompts, outs):
        ref = reference_logprobs(engine.model, prompt, out.token_ids, temperature)
        torch.testing.assert_close(torch.tensor(out.logprobs), ref, atol=atol, rtol=0)


@contextlib.contextmanager
def _forward_input_shapes(model) -> Iterator[list[tuple[int, ...]]]:
    """Record the `input_ids` shape of every forward call of `model` inside the block."""
    shapes: list[tuple[int, ...]] = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)),
                                           with_kwargs=True)
    try:
        yield shapes
    finally:
        hook.remove()


def test_top_p_logprobs_are_renormalised_over_the_nucleus(engine, prompts):
    top_p = 0.5
    outs = engine.generate(prompts, SamplingSettings(temperature=1.0, top_p=top_p, max_tokens=8, seed=4))
    for prompt, out in zip(prompts, outs):
        with torch.no_grad():
            logits = engine.model(torch.tensor([prompt + out.token_ids])).logits[0, len(prompt) - 1:-1]
        for row, tok, lp in zip(logits, out.token_ids, out.logprobs):
            probs = torch.softmax(row.double(), -1)
            order = torch.argsort(probs, descending=True)
            # nucleus: most likely tokens until the mass of the rest is below 1 - top_p (ties aside)
            mass_before = torch.cumsum(probs[order], 0) - probs[order]
            nucleus = order[mass_before < top_p]
            assert tok in nucleus.tolist()
            expected = math.log(probs[tok] / probs[nucleus].sum())
            assert abs(lp - expected) < ATOL


def test_greedy_is_batch_invariant_and_reports_untempered_logprobs(engine, prompts):
    greedy = SamplingSettings(temperature=0.0, max_tokens=8)
    batched = engine.generate(prompts, greedy)
    for prompt, out in zip(prompts, batched):
        alone = engine.generate([prompt], greedy)[0]
        assert alone.token_ids == out.token_ids
        torch.testing.assert_close(torch.tensor(out.logprobs), reference_logprobs(engine.model, prompt, out.token_ids),
                                   atol=ATOL, rtol=0)


def test_score_matches_reference_and_handles_empty(engine, prompts):
    completions = [[5, 6, 7], [], [100, 200, 300, 400, 2]]
    scores = engine.score(prompts, completions, temperature=0.8)
    assert scores[1] == []
    for prompt, completion, got in zip(prompts, completions, scores):
        if completion:
            torch.testing.assert_close(torch.tensor(got), reference_logprobs(engine.model, prompt, completion, 0.8),
                                       atol=ATOL, rtol=0)


def test_context_limit(engine, prompts):
    near = [5] * (engine.max_model_len - 3)
    out = engine.generate([near], SamplingSettings(temperature=1.0, max_tokens=50, seed=0))[0]
    assert len(out.token_ids) <= 3
    with pytest.raises(ValueError, match="max_model_len"):
        engine.generate([[5] * engine.max_model_len], SamplingSettings(max_tokens=4))
    with pytest.raises(ValueError, match="empty"):
        engine.generate([[]], SamplingSettings(max_tokens=4))


def test_load_weights_matches_a_model_holding_them(fresh, tiny_seed1_model, long_prompt):
    completion = [17, 42, 99, 3, 250, 2]
    before = fresh.score([long_prompt], [completion])[0]
    # named_parameters() of a tied model omits lm_head.weight: the learner's iterator looks like this.
    fresh.load_weights(tiny_seed1_model.named_parameters())
    after = fresh.score([long_prompt], [completion])[0]
    expected = reference_logprobs(tiny_seed1_model, long_prompt, completion)
    torch.testing.assert_close(torch.tensor(after), expected, atol=ATOL, rtol=0)
    assert max(abs(a - b) for a, b in zip(before, after)) > 0.01


def test_eos_loving_weights_stop_at_once(fresh, prompts):
    eos = fresh.tokenizer.eos_token_id
    weights, eos_logprob = eos_loving_weights(fresh.model, eos)
    fresh.load_weights(weights.items())
    for out in fresh.generate(prompts, SamplingSettings(temperature=0.0, max_tokens=8)):
        assert out.token_ids == [eos]
        assert out.finish_reason == "stop"
        assert out.text == ""
        assert abs(out.logprobs[0] - eos_logprob) < ATOL


def test_load_weights_rejects_unknown_names(engine):
    with pytest.raises(KeyError, match="no parameter"):
        engine.load_weights([("model.nonexistent.weight", torch.zeros(1))])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp32_logprobs_and_weight_load(tiny_path, tiny_seed1_model, prompts, long_prompt):
    import copy

    eng = create_engine("hf", tiny_path, dtype="float32", device="cuda", max_model_len=1024)
    reference = copy.deepcopy(tiny_seed1_model).to("cuda")
    eng.load_weights(reference.named_parameters())
    outs = eng.generate(prompts + [long_prompt], SamplingSettings(temperature=0.8, max_tokens=16, seed=0))
    for prompt, out in zip(prompts + [long_prompt], outs):
        # TF32 matmuls may be on: looser than the CPU fp32 tolerance.
        torch.testing.assert_close(torch.tensor(out.logprobs), reference_logprobs(reference, prompt, out.token_ids, 0.8),
                                   atol=2e-3, rtol=0)
    eng.close()


@pytest.fixture(scope="module")
def short_context_engine(tiny_path):
    """A 72-token context: prompts of different lengths get different budgets and finish at different steps."""
    eng = create_engine("hf", tiny_path, dtype="float32", device="cpu", max_model_len=72, max_batch_size=8)
    yield eng
    eng.close()


@pytest.mark.parametrize("shared", [False, True], ids=["own-prefixes", "shared-prefix"])
@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_batch_shrinks_to_running_rows_and_stays_exact(short_context_engine, temperature, shared):
    """Rows end after 12, 24, 36 and 48 tokens: the batch drops finished rows once at most half still run."""
    engine = short_context_engine
    prompts = [[(7 * i + (0 if shared else 11 * row)) % 900 + 5 for i in range(16)]  # a shared prefix, or not
               + [(7 * i + 13 * row) % 900 + 5 for i in range(length)]
               for row, length in enumerate((44, 8, 32, 20))]
    with _forward_input_shapes(engine.model) as calls:
        outs = engine.generate(prompts, SamplingSettings(temperature=temperature, max_tokens=48, seed=9))
    assert [len(out.token_ids) for out in outs] == [12, 48, 24, 36]  # no row sampled end-of-sequence early
    assert calls[0] == (4, 44 if shared else 60)  # with a shared prefix, prefill covers only what follows it
    # 4 rows until the 12-token row ends and while 3 run; 2 rows after step 24, then 1.
    assert [rows for rows, _ in calls[1:]] == [4] * 23 + [2] * 12 + [1] * 12
    for prompt, out in zip(prompts, outs):
        assert out.finish_reason == "length"
        torch.testing.assert_close(torch.tensor(out.logprobs),
                                   reference_logprobs(engine.model, prompt, out.token_ids, temperature or 1.0),
                                   atol=ATOL, rtol=0)
        if temperature == 0:
            alone = engine.generate([prompt], SamplingSettings(temperature=0.0, max_tokens=48))[0]
            assert alone.token_ids == out.token_ids


@pytest.fixture(scope="module")
def game_prompts(engine) -> list[list[int]]:
    """Kuhn Poker prompts from different deals and seats: they share the rules text as a long common prefix."""
    from spiral.games import make_game
    from spiral.rollout.prompts import build_prompt

    out = []
    for seed in range(3):
        game = make_game("kuhn_poker")
        game.reset(seed)
        out.append(build_prompt(game, 0, "direct", engine.tokenizer))
        game.apply_action(game.legal_actions()[seed % 2])
        out.append(build_prompt(game, 1, "direct", engine.tokenizer))
    return out


@pytest.fixture(scope="module")
def wide_engine(tiny_path):
    """One micro-batch holds all of `game_prompts`, so their shared prefix is computed once."""
    eng = create_engine("hf", tiny_path, dtype="float32", device="cpu", max_model_len=1024, max_batch_size=16)
    yield eng
    eng.close()


def test_game_prompts_share_a_long_prefix(game_prompts):
    from spiral.models.prefix import MIN_SHARED_PREFIX

    shared = len(os.path.commonprefix(game_prompts))
    assert shared >= MIN_SHARED_PREFIX
    assert all(len(p) > shared for p in game_prompts)
    assert len({len(p) for p in game_prompts}) > 1  # the rows after the prefix need padding


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_shared_prefix_generation_reports_exact_logprobs(wide_engine, game_prompts, temperature):
    _assert_reports_exact_logprobs(wide_engine, game_prompts, temperature, seed=5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_shared_prefix_generation_reports_logprobs(tiny_path, game_prompts):
    """On the GPU, game prompts go through the shared prefix and cascade attention; log-probs stay exact."""
    eng = create_engine("hf", tiny_path, dtype="float32", device="cuda", max_model_len=1024, max_batch_size=16)
    # TF32 matmuls may be on: looser than the CPU fp32 tolerance.
    _assert_reports_exact_logprobs(eng, game_prompts, 0.8, seed=5, atol=2e-3)
    eng.close()


def test_shared_prefix_greedy_equals_each_prompt_alone(wide_engine, game_prompts):
    greedy = SamplingSettings(temperature=0.0, max_tokens=10)
    batched = wide_engine.generate(game_prompts, greedy)
    for prompt, out in zip(game_prompts, batched):
        assert wide_engine.generate([prompt], greedy)[0].token_ids == out.token_ids


def test_repeated_prompts_are_prefilled_once_and_still_sample_independently(wide_engine, game_prompts):
    prompts = [game_prompts[i] for i in (0, 1, 0, 2, 0, 1, 3, 0)]  # 4 distinct, prompt 0 four times
    with _forward_input_shapes(wide_engine.model) as calls:
        outs = wide_engine.generate(prompts, SamplingSettings(temperature=1.0, max_tokens=12, seed=6))
    rows_seen = [rows for rows, _ in calls]
    assert rows_seen[0] == 4 and set(rows_seen[1:]) == {len(prompts)}  # prefill: distinct rows; decode: all
    assert len({tuple(outs[i].token_ids) for i in (0, 2, 4, 7)}) > 1
    for prompt, out in zip(prompts, outs):
        torch.testing.assert_close(torch.tensor(out.logprobs), reference_logprobs(wide_engine.model, prompt, out.token_ids),
                                   atol=ATOL, rtol=0)


def test_shared_prefix_scoring_matches_reference(wide_engine, game_prompts):
    from spiral.rollout.choice import boxed_move_ids

    # Completions that themselves start alike: the shared part must stop inside the prompts.
    completions = [boxed_move_ids(wide_engine.tokenizer, move) for move in ("check", "bet", "fold", "call")]
    prompts = [p for p in game_prompts for _ in completions]
    scores = wide_engine.score(prompts, completions * len(game_prompts), temperature=0.9)
    for prompt, completion, got in zip(prompts, completions * len(game_prompts), scores):
        torch.testing.assert_close(torch.tensor(got), reference_logprobs(wide_engine.model, prompt, completion, 0.9),
                                   atol=ATOL, rtol=0)


def test_sampled_tokens_follow_the_reported_distribution(wide_engine, prompts):
    """Many one-token draws from one prompt: frequencies match the engine's own probabilities."""
    temperature, draws = 0.15, 2000  # a low temperature concentrates the mass on a few tokens to count
    outs = wide_engine.generate([prompts[0]] * draws, SamplingSettings(temperature=temperature, max_tokens=1, seed=11))
    counts: dict[int, int] = {}
    for out in outs:
        counts[out.token_ids[0]] = counts.get(out.token_ids[0], 0) + 1
    top = sorted(counts, key=counts.get, reverse=True)[:5]
    probs = [math.exp(lp[0]) for lp in wide_engine.score([prompts[0]] * len(top), [[t] for t in top], temperature)]
    assert sum(probs) > 0.3  # the test has something to count
    for token, p in zip(top, probs):
        sigma = math.sqrt(p * (1 - p) / draws)
        assert abs(counts[token] / draws - p) < 5 * sigma + 1e-3, (token, counts[token] / draws, p)

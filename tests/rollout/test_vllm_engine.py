"""VLLMEngine (real vLLM, in-process): sampled-token log-probs, seeding, weight reloads, prefix-cache reset.

All comparisons are against a transformers model holding the same weights, in fp32 on CPU.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.rollout.conftest import eos_loving_weights, reference_logprobs

pytest.importorskip("vllm")

from spiral.rollout import create_engine  # noqa: E402
from spiral.types import SamplingSettings  # noqa: E402

pytestmark = pytest.mark.vllm
ATOL = 1e-4  # fp32: vLLM's CPU kernels vs transformers; measured ~1e-6


@pytest.fixture(scope="module")
def tiny_model(tiny_path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def engine(tiny_path):
    eng = create_engine("vllm", tiny_path, dtype="float32", max_model_len=1024, kv_cache_gb=0.25, max_num_seqs=16)
    yield eng
    eng.close()


@pytest.fixture()
def fresh(engine, tiny_model):
    """The module engine, restored to builtin:tiny's weights after the test."""
    yield engine
    engine.load_weights(tiny_model.named_parameters())


def assert_matches_reference(model, prompts, outs, temperature=1.0):
    for prompt, out in zip(prompts, outs):
        ref = reference_logprobs(model, prompt, out.token_ids, temperature)
        torch.testing.assert_close(torch.tensor(out.logprobs), ref, atol=ATOL, rtol=0)


def test_outputs_are_consistent(engine, prompts):
    outs = engine.generate(prompts, SamplingSettings(temperature=1.0, max_tokens=12, seed=0))
    eos = engine.tokenizer.eos_token_id
    assert len(outs) == len(prompts)
    for out in outs:
        assert 1 <= len(out.token_ids) <= 12
        assert len(out.logprobs) == len(out.token_ids)
        assert eos not in out.token_ids[:-1]
        assert out.finish_reason == ("stop" if out.token_ids[-1] == eos else "length")
        assert out.text == engine.tokenizer.decode(out.token_ids, skip_special_tokens=True)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_are_of_the_sampling_distribution(engine, tiny_model, prompts, temperature):
    outs = engine.generate(prompts, SamplingSettings(temperature=temperature, max_tokens=12, seed=1))
    assert_matches_reference(tiny_model, prompts, outs, temperature)


def test_top_p_logprobs_are_renormalised_over_the_nucleus(engine, tiny_model, prompts):
    outs = engine.generate(prompts, SamplingSettings(temperature=1.0, top_p=0.5, max_tokens=8, seed=2))
    for prompt, out in zip(prompts, outs):
        with torch.no_grad():
            logits = tiny_model(torch.tensor([prompt + out.token_ids])).logits[0, len(prompt) - 1:-1]
        for row, tok, lp in zip(logits, out.token_ids, out.logprobs):
            probs = torch.softmax(row.double(), -1)
            order = torch.argsort(probs, descending=True)
            nucleus = order[torch.cumsum(probs[order], 0) - probs[order] < 0.5]
            assert abs(lp - math.log(probs[tok] / probs[nucleus].sum())) < ATOL


def test_seeded_sampling_is_reproducible(engine, prompts):
    settings = SamplingSettings(temperature=1.0, max_tokens=10, seed=7)
    first, again = engine.generate(prompts, settings), engine.generate(prompts, settings)
    other = engine.generate(prompts, SamplingSettings(temperature=1.0, max_tokens=10, seed=8))
    assert [o.token_ids for o in first] == [o.token_ids for o in again]
    assert [o.token_ids for o in first] != [o.token_ids for o in other]
    same_prompt = engine.generate([prompts[0]] * 4, settings)
    assert len({tuple(o.token_ids) for o in same_prompt}) > 1


def test_score_agrees_with_hf_engine(engine, tiny_path, prompts):
    hf = create_engine("hf", tiny_path, max_model_len=1024)
    completions = [[5, 6, 7], [], [100, 200, 300, 400, 2]]
    for temperature in (1.0, 0.7):
        got, want = engine.score(prompts, completions, temperature), hf.score(prompts, completions, temperature)
        assert got[1] == []
        for g, w in zip(got, want):
            torch.testing.assert_close(torch.tensor(g), torch.tensor(w), atol=ATOL, rtol=0)


def test_weight_load_with_long_prompt_matches_new_model(fresh, tiny_seed1_model, long_prompt):
    settings = SamplingSettings(temperature=1.0, max_tokens=8, seed=3)
    before = fresh.generate([long_prompt], settings)[0]  # fills the prefix cache with the old weights' KV
    # named_parameters() of a tied model omits lm_head.weight, like the learner's iterator.
    fresh.load_weights(tiny_seed1_model.named_parameters())
    after = fresh.generate([long_prompt], settings)
    assert_matches_reference(tiny_seed1_model, [long_prompt], after)
    assert after[0].logprobs != before.logprobs
    completion = [17, 42, 99, 3, 250, 2]
    torch.testing.assert_close(torch.tensor(fresh.score([long_prompt], [completion])[0]),
                               reference_logprobs(tiny_seed1_model, long_prompt, completion), atol=ATOL, rtol=0)


def test_zero_weights_give_uniform_logprobs(fresh, tiny_model, prompts, long_prompt):
    fresh.load_weights((name, torch.zeros_like(p)) for name, p in tiny_model.named_parameters())
    vocab = tiny_model.config.vocab_size
    for out in fresh.generate(prompts + [long_prompt], SamplingSettings(temperature=1.0, max_tokens=6, seed=4)):
        assert out.logprobs == pytest.approx([-math.log(vocab)] * len(out.logprobs), abs=1e-5)


def test_eos_loving_weights_stop_at_once(fresh, tiny_model, prompts):
    eos = fresh.tokenizer.eos_token_id
    weights, eos_logprob = eos_loving_weights(tiny_model, eos)
    fresh.load_weights(weights.items())
    for out in fresh.generate(prompts, SamplingSettings(temperature=0.0, max_tokens=8)):
        assert out.token_ids == [eos]
        assert out.finish_reason == "stop"
        assert abs(out.logprobs[0] - eos_logprob) < ATOL


def test_restored_weights_reproduce_the_original_samples(fresh, tiny_model, tiny_seed1_model, prompts):
    settings = SamplingSettings(temperature=1.0, max_tokens=10, seed=5)
    original = fresh.generate(prompts, settings)
    fresh.load_weights(tiny_seed1_model.named_parameters())
    fresh.load_weights(tiny_model.named_parameters())
    restored = fresh.generate(prompts, settings)
    assert [o.token_ids for o in restored] == [o.token_ids for o in original]


def test_sleep_and_wake_keep_the_engine_usable(engine, tiny_model, prompts):
    engine.sleep()
    engine.wake()
    outs = engine.generate(prompts, SamplingSettings(temperature=1.0, max_tokens=4, seed=6))
    assert_matches_reference(tiny_model, prompts, outs)


@pytest.mark.slow
def test_closing_an_engine_keeps_the_callers_process_group():
    """An eval opponent's engine closed mid-training must not tear down the learner's torch.distributed group."""
    import torch.distributed as dist

    from spiral.learner.distributed import init_distributed
    from spiral.rollout.engines import create_engine

    init_distributed()
    engine = create_engine("vllm", "builtin:tiny", max_model_len=256, seed=0, kv_cache_gb=0.25)
    engine.close()
    assert dist.is_initialized()
    dist.barrier()  # the group still works

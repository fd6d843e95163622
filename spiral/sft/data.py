"""SFT examples from game records: replay each game, render each kept turn's prompt, tokenize its completion.

Records come from transcript files (what `spiral train` and `spiral arena --transcripts` write) or from games
played on the fly by agents. No model training here; the loop is `spiral/sft/loop.py`.
"""

from __future__ import annotations

import glob
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spiral.agents.arena import play_game
from spiral.agents.base import Agent
from spiral.config.schema import GameSpec
from spiral.errors import SpiralError
from spiral.games import make_game
from spiral.rollout.prompts import render_prompt
from spiral.seeding import derive_seed
from spiral.text import last_boxed, last_boxed_span
from spiral.types import GameRecord, TurnRecord, TurnSample

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class SftDataError(SpiralError):
    """Transcripts that cannot be read or replayed, or a data selection that leaves nothing to learn."""


@dataclass
class SftExample:
    """One supervised turn: the prompt the seat saw and the completion to imitate, with per-token loss weights."""

    sample: TurnSample
    weights: list[float]
    """One weight per completion token (the prompt carries no loss)."""


def read_records(patterns: Sequence[str]) -> list[GameRecord]:
    """Every game in the JSONL files matched by `patterns` (globs), in sorted file order."""
    files = sorted({f for pattern in patterns for f in glob.glob(pattern, recursive=True)})
    if not files:
        raise SftDataError(f"sft.data: no transcript file matches {list(patterns)}")
    records = []
    for name in files:
        with open(name, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                    turns = [TurnRecord(**t) for t in raw.pop("transcript")]
                    records.append(GameRecord(transcript=turns, **raw))
                except (ValueError, TypeError, KeyError) as err:
                    raise SftDataError(f"{name}:{number}: not a game transcript line ({err})") from None
    return records


def play_records(agents: Sequence[Agent], games: Sequence[GameSpec], episodes: int, seed: int) -> list[GameRecord]:
    """`episodes` games of the `games` mixture (by weight) between `agents[0]` (seat 0) and `agents[1]`."""
    rng = random.Random(derive_seed(seed, "sft-games"))
    rngs = [random.Random(derive_seed(seed, "sft-agent", seat)) for seat in range(len(agents))]
    records = []
    for _ in range(episodes):
        spec = rng.choices(list(games), weights=[g.weight for g in games])[0]
        game = make_game(spec.name, spec.params)
        records.append(play_game(game, agents, rng.getrandbits(31), rngs, params=spec.params))
    return records


def keep_turn(record: GameRecord, turn: TurnRecord, keep: str) -> bool:
    """`all`: every valid move; `winners`: the valid moves of the seat whose return beat the other's."""
    if turn.move is None:
        return False
    if keep == "all":
        return True
    mine, theirs = record.returns[turn.seat], max(r for s, r in enumerate(record.returns) if s != turn.seat)
    return mine > theirs


def boxed_completion(turn: TurnRecord) -> str:
    """The text to imitate: the recorded completion when it holds a box (a model wrote it), else `\\boxed{move}`
    (a scripted agent's bare move, in the answer format the prompts ask for)."""
    if last_boxed(turn.completion) is not None:
        return turn.completion
    return f"\\boxed{{{turn.move}}}"


def build_examples(records: Sequence[GameRecord], tokenizer: PreTrainedTokenizerBase, template: str, *, keep: str,
                   move_weight: float) -> list[SftExample]:
    """Replay every record from its seed and moves and turn each kept turn into an `SftExample`."""
    examples = []
    for index, record in enumerate(records):
        game = make_game(record.game, record.params)
        game.reset(record.seed)
        for number, turn in enumerate(record.transcript):
            if turn.move is None:  # an invalid move ends the game
                break
            seat = game.current_player()
            if seat != turn.seat or game.observation(seat) != turn.observation:
                raise SftDataError(f"game {index} ({record.game}, seed {record.seed}) does not replay: at move "
                                   f"{number} the recorded observation differs (other game parameters?)")
            if keep_turn(record, turn, keep):
                prompt = render_prompt(game, seat, template, tokenizer)
                examples.append(_tokenize(record.game, seat, prompt, boxed_completion(turn), record.returns[seat],
                                          tokenizer, move_weight))
            game.apply_action(turn.move)
    return examples


def _tokenize(game: str, seat: int, prompt: str, completion: str, ret: float, tokenizer: PreTrainedTokenizerBase,
              move_weight: float) -> SftExample:
    """Token ids of prompt and completion (+ end-of-sequence); the move's own tokens weigh `move_weight`."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    encoded = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)
    start, end = last_boxed_span(completion) or (0, 0)
    weights = [move_weight if (a < end and b > start) else 1.0 for a, b in encoded["offset_mapping"]]
    completion_ids = list(encoded["input_ids"]) + [tokenizer.eos_token_id]
    sample = TurnSample(game=game, seat=seat, prompt_ids=list(prompt_ids), completion_ids=completion_ids,
                        logprobs=[], ret=ret)
    return SftExample(sample, weights + [1.0])


def split_records(records: Sequence[GameRecord], eval_fraction: float, seed: int
                  ) -> tuple[list[GameRecord], list[GameRecord]]:
    """(train, eval) by whole games, shuffled with `seed`; eval holds round(fraction × games) of them."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_eval = round(eval_fraction * len(records))
    held = set(order[:n_eval])
    return ([r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held])

"""SFT data: transcripts replayed into prompts and completions, completion-only weights, the winners filter."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from spiral.agents import make_agent
from spiral.config.schema import GameSpec
from spiral.games import make_game
from spiral.models import resolve_model_path
from spiral.rollout.collector import write_transcripts
from spiral.rollout.prompts import render_prompt
from spiral.sft.data import SftDataError, build_examples, play_records, read_records, split_records
from spiral.types import GameRecord, TurnRecord


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model_path("builtin:tiny"))


def test_examples_are_the_replayed_prompts_and_boxed_moves(tokenizer) -> None:
    records = play_records([make_agent("random"), make_agent("random")], [GameSpec("kuhn_poker")], 20, seed=1)
    examples = build_examples(records, tokenizer, "direct", keep="all", move_weight=0.25)
    assert len(examples) == sum(len(r.transcript) for r in records)
    record, ex = records[0], examples[0]
    game = make_game("kuhn_poker")
    game.reset(record.seed)
    assert ex.sample.prompt_ids == tokenizer(render_prompt(game, 0, "direct", tokenizer), add_special_tokens=False)["input_ids"]
    move = record.transcript[0].move
    expected = tokenizer(f"\\boxed{{{move}}}", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert ex.sample.completion_ids == expected
    # One weight per completion token; the move's own token (the builtin tokenizer gives each move one) is
    # down-weighted, the format tokens and end-of-sequence are not.
    assert len(ex.weights) == len(expected)
    move_id = tokenizer(move, add_special_tokens=False)["input_ids"]
    assert len(move_id) == 1
    assert [w for w, t in zip(ex.weights, expected) if t == move_id[0]] == [0.25]
    assert sorted(set(ex.weights)) == [0.25, 1.0]


def test_winners_filter_keeps_only_the_winning_seats_turns(tokenizer) -> None:
    records = play_records([make_agent("random"), make_agent("random")], [GameSpec("kuhn_poker")], 40, seed=2)
    winners = build_examples(records, tokenizer, "direct", keep="winners", move_weight=1.0)
    expected = [(r.game, t.seat) for r in records for t in r.transcript if r.returns[t.seat] > r.returns[1 - t.seat]]
    assert 0 < len(winners) == len(expected) < sum(len(r.transcript) for r in records)
    assert all(ex.sample.ret > 0 for ex in winners)


def test_model_completions_are_kept_and_invalid_moves_never_learned(tokenizer) -> None:
    game = make_game("kuhn_poker")
    game.reset(5)
    first = TurnRecord(0, "policy", game.observation(0), "I hold a card. \\boxed{check}", "check")
    game.apply_action("check")
    second = TurnRecord(1, "policy", game.observation(1), "\\boxed{raise}", None)
    record = GameRecord("kuhn_poker", 5, [first, second], [1.0, -1.0], "invalid_move", 1)
    (only,) = build_examples([record], tokenizer, "direct", keep="all", move_weight=1.0)
    assert tokenizer.decode(only.sample.completion_ids[:-1]) == "I hold a card. \\boxed{check}"


def test_transcripts_round_trip_and_replay(tmp_path: Path, tokenizer) -> None:
    records = play_records([make_agent("random"), make_agent("nash")], [GameSpec("kuhn_poker", params={"hands": 2})],
                           6, seed=3)
    write_transcripts(records[:3], tmp_path / "a" / "step-1.jsonl")
    write_transcripts(records[3:], tmp_path / "a" / "step-2.jsonl")
    assert read_records([str(tmp_path / "a" / "*.jsonl")]) == records
    built = build_examples(read_records([str(tmp_path / "a" / "*.jsonl")]), tokenizer, "direct", keep="all",
                           move_weight=1.0)
    assert len(built) == sum(len(r.transcript) for r in records)


def test_unreadable_or_unreplayable_data_is_a_clear_error(tmp_path: Path, tokenizer) -> None:
    with pytest.raises(SftDataError, match="no transcript file matches"):
        read_records([str(tmp_path / "missing" / "*.jsonl")])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"game": "kuhn_poker"}\n')
    with pytest.raises(SftDataError, match="bad.jsonl:1"):
        read_records([str(bad)])
    record = play_records([make_agent("random"), make_agent("random")], [GameSpec("kuhn_poker", params={"hands": 3})],
                          1, seed=4)[0]
    record.params = {}  # replayed as a one-hand game, the observations differ
    with pytest.raises(SftDataError, match="does not replay"):
        build_examples([record], tokenizer, "direct", keep="all", move_weight=1.0)


def test_split_keeps_games_whole_and_is_seeded() -> None:
    records = [GameRecord("kuhn_poker", seed) for seed in range(40)]
    train, held = split_records(records, 0.25, seed=7)
    assert len(held) == 10 and len(train) == 30
    assert {r.seed for r in train} | {r.seed for r in held} == set(range(40))
    assert split_records(records, 0.25, seed=7) == (train, held)
    assert split_records(records, 0.25, seed=8) != (train, held)

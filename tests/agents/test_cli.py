"""`spiral arena` and `spiral play` through their command modules (argument parsing included)."""

from __future__ import annotations

import argparse
import io
import json

from spiral.commands import arena, play


def _run(module, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def test_arena_json_is_one_parsable_object(capsys):
    rc = _run(arena, ["kuhn_poker", "--agents", "nash:alpha=0.1,random", "--games", "200", "--seed", "3", "--json"])
    out = capsys.readouterr().out
    assert rc == 0 and out.count("\n") == 1
    result = json.loads(out)
    assert result["game"] == "kuhn_poker" and result["games"] == 200
    assert result["agents"] == ["nash:alpha=0.1", "random"]
    for key in ["mean_return", "win_rate", "loss_rate", "draw_rate"]:
        assert len(result[key]) == 2
    assert abs(sum(result["mean_return"])) < 1e-9


def test_arena_params_table_and_errors(capsys):
    rc = _run(arena, ["tic_tac_toe", "--agents", "random,random", "--games", "10", "--param", "size=4"])
    out = capsys.readouterr().out
    assert rc == 0 and "tic_tac_toe" in out and "draw" in out
    assert _run(arena, ["tic_tac_toe", "--agents", "random,nash", "--games", "5"]) == 2
    assert "standard Kuhn Poker" in capsys.readouterr().err
    assert _run(arena, ["tik_tac_toe", "--agents", "random,random"]) == 2
    assert "Did you mean 'tic_tac_toe'" in capsys.readouterr().err


def test_play_with_piped_moves_reasks_after_illegal_input(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("9\nbanana\n\\boxed{0}\n1\n2\n3\n4\n5\n6\n7\n8\n"))
    rc = _run(play, ["tic_tac_toe", "--opponent", "minimax", "--seed", "0"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Illegal move '9'" in out and "Illegal move 'banana'" in out
    assert "Opponent (minimax) plays" in out
    assert "Result: " in out and "you win" not in out  # minimax cannot lose


def test_play_exits_cleanly_at_end_of_input(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("bet\n"))
    rc = _run(play, ["kuhn_poker", "--opponent", "random", "--seat", "1", "--seed", "4"])
    out = capsys.readouterr().out
    assert rc == 0 and "Your move> bet" in out
    assert "End of input; game abandoned." in out or "Result:" in out  # the opponent may fold at once

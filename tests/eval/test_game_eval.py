"""Game evaluation reports: scripted agents through the arena, the tiny model through the collector, flat metrics."""

from __future__ import annotations

import pytest

from spiral.config.schema import EvalConfig, RolloutConfig
from spiral.eval.game_eval import GameReport, MatchResult, Skipped, game_report, opponent_label

SEAT_KEYS = {"games", "return_mean", "return_stderr", "win_rate", "loss_rate", "draw_rate", "invalid_rate",
             "opponent_invalid_rate", "length_mean"}


def _report(agent: str, games: list[str], opponents: list[str], episodes: int, seed: int, *,
            rollout: RolloutConfig | None = None, engine_kwargs: dict | None = None, **eval_settings) -> GameReport:
    eval_cfg = EvalConfig(games=games, opponents=opponents, episodes=episodes, **eval_settings)
    return game_report(agent, eval_cfg, rollout or RolloutConfig(), seed=seed, engine_kwargs=engine_kwargs)


def _seats(report: GameReport, game: str, opponent: str) -> dict[str, dict[str, float]]:
    match = report.games[game].opponents[opponent]
    assert isinstance(match, MatchResult)
    return {f"seat{seat}": view.to_dict() for seat, view in match.seats.items()}


def test_nash_beats_random_at_kuhn_and_is_unexploitable():
    report = _report("nash", ["kuhn_poker"], ["random"], episodes=600, seed=3)
    kuhn = report.games["kuhn_poker"]
    assert kuhn.exploitability is not None and abs(kuhn.exploitability.exploitability) < 1e-9
    seats = _seats(report, "kuhn_poker", "random")
    seat1 = seats["seat1"]
    assert set(seat1) == SEAT_KEYS and seat1["games"] == 600
    # An equilibrium never loses in expectation; allow three standard errors of noise.
    assert seat1["return_mean"] >= -3 * seat1["return_stderr"]
    for view in seats.values():
        assert view["win_rate"] + view["loss_rate"] + view["draw_rate"] == pytest.approx(1.0)
        assert view["invalid_rate"] == view["opponent_invalid_rate"] == 0.0


def test_minimax_never_loses_tic_tac_toe():
    report = _report("minimax", ["tic_tac_toe"], ["random", "minimax"], episodes=40, seed=0)
    assert report.games["tic_tac_toe"].exploitability is None
    assert "exploitability" not in report.to_dict()["games"]["tic_tac_toe"]
    against_random, against_minimax = _seats(report, "tic_tac_toe", "random"), _seats(report, "tic_tac_toe", "minimax")
    for seat in ("seat0", "seat1"):
        assert against_random[seat]["loss_rate"] == 0.0
        assert against_minimax[seat]["draw_rate"] == 1.0  # perfect play against itself is always a draw
    assert against_random["seat0"]["win_rate"] > 0.5


def test_scripted_opponent_that_cannot_play_is_skipped_and_not_logged():
    report = _report("random", ["kuhn_poker"], ["minimax", "nash"], episodes=5, seed=0)
    assert isinstance(report.games["kuhn_poker"].opponents["minimax"], Skipped)
    assert "skipped" in report.to_dict()["games"]["kuhn_poker"]["minimax"]
    flat = report.to_metrics()
    assert not any("/minimax/" in k for k in flat)
    assert flat["eval/kuhn_poker/exploitability"] == pytest.approx(11 / 24, abs=1e-9)
    assert flat["eval/kuhn_poker/nash/games"] == 10


def test_agent_that_cannot_play_a_game_is_an_error():
    with pytest.raises(ValueError, match="nash.*tic_tac_toe"):
        _report("nash", ["tic_tac_toe"], ["random"], episodes=2, seed=0)


def test_flatten_combines_seats_weighted_by_games():
    report = _report("random", ["kuhn_poker"], ["nash"], episodes=50, seed=1)
    flat = report.to_metrics()
    seats = _seats(report, "kuhn_poker", "nash")
    for metric in ("return_mean", "win_rate", "length_mean"):
        assert flat[f"eval/kuhn_poker/nash/{metric}"] == pytest.approx((seats["seat0"][metric] + seats["seat1"][metric]) / 2)
        assert flat[f"eval/kuhn_poker/nash/seat1/{metric}"] == seats["seat1"][metric]
    assert all(isinstance(v, float) for v in flat.values())


def test_opponent_labels():
    assert opponent_label("nash:alpha=0.2") == "nash:alpha=0.2"
    assert opponent_label("builtin:tiny") == "builtin:tiny"
    assert opponent_label("runs/a/checkpoints/step_000050/") == "step_000050"


@pytest.mark.slow
def test_tiny_model_report_counts_invalid_moves_of_both_seats():
    # One new token can never spell a boxed move, so every model move (policy or opponent) is invalid.
    report = _report("builtin:tiny", ["kuhn_poker"], ["random", "builtin:tiny"], episodes=3, seed=0,
                     rollout=RolloutConfig(template="direct"), engine_kwargs={"max_model_len": 1024},
                     temperature=1.0, top_p=1.0, max_tokens=1)
    kuhn = report.to_dict()["games"]["kuhn_poker"]
    assert 0.0 <= kuhn["exploitability"] <= 2.0
    assert kuhn["exploitability_detail"]["mode"] == "exact"
    for opponent in ("random", "builtin:tiny"):
        for view in kuhn[opponent].values():
            assert set(view) == SEAT_KEYS | {"response_len_mean", "truncated_rate"}
            assert view["games"] == 3 and 0 <= view["response_len_mean"] <= 1
    # Seat 0 moves first and forfeits; as seat 1 the scripted opponent moves legally, then the model forfeits.
    assert (kuhn["random"]["seat0"]["invalid_rate"], kuhn["random"]["seat0"]["length_mean"]) == (1.0, 1.0)
    assert (kuhn["random"]["seat1"]["invalid_rate"], kuhn["random"]["seat1"]["length_mean"]) == (1.0, 2.0)
    # Against the tiny model as opponent, whoever sits in seat 0 forfeits first: as seat 1 the policy never moves.
    seat0, seat1 = kuhn["builtin:tiny"]["seat0"], kuhn["builtin:tiny"]["seat1"]
    assert (seat0["invalid_rate"], seat0["opponent_invalid_rate"], seat0["loss_rate"]) == (1.0, 0.0, 1.0)
    assert (seat1["invalid_rate"], seat1["opponent_invalid_rate"], seat1["win_rate"]) == (0.0, 1.0, 1.0)
    assert seat1["response_len_mean"] == 0.0 and "unplayed" not in kuhn["builtin:tiny"]
    flat = report.to_metrics()
    assert flat["eval/kuhn_poker/builtin:tiny/opponent_invalid_rate"] == 0.5
    assert "eval/kuhn_poker/exploitability" in flat and "eval/kuhn_poker/random/response_len_mean" in flat
    # Writing its moves, the untrained model puts almost no mass on any legal `\boxed{move}`.
    assert flat["eval/kuhn_poker/exploitability_invalid"] > 0.99


@pytest.mark.slow
def test_a_choice_policy_has_no_invalid_mass_to_report():
    # Choosing among the legal moves, the model never answers invalidly, so the mass it would put elsewhere when
    # writing (~1 for the untrained model, above) is not reported beside the exploitability of what it plays.
    report = _report("builtin:tiny", ["kuhn_poker"], ["random"], episodes=2, seed=0,
                     rollout=RolloutConfig(template="direct", action_constraint="choice"),
                     engine_kwargs={"max_model_len": 1024}, temperature=1.0, top_p=1.0, max_tokens=12)
    flat = report.to_metrics()
    assert 0.0 <= flat["eval/kuhn_poker/exploitability"] <= 1.0
    assert "eval/kuhn_poker/exploitability_invalid" not in flat
    assert report.to_dict()["games"]["kuhn_poker"]["exploitability_detail"]["invalid"] == {}

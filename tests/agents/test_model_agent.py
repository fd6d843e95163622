"""The model-backed agent on the real HF engine and tiny model, alone and in the arena."""

from __future__ import annotations

import random

import pytest

from spiral.agents import RandomAgent
from spiral.agents.arena import play_match
from spiral.agents.model import INVALID_PREFIX, ModelAgent
from spiral.games import make_game
from spiral.types import SamplingSettings


@pytest.fixture(scope="module")
def engine():
    from spiral.rollout.engine_factory import create_engine

    return create_engine("hf", "builtin:tiny", max_model_len=1024, seed=0)


def agent(engine, template="direct", max_tokens=8):
    return ModelAgent(engine, template, SamplingSettings(temperature=1.0, max_tokens=max_tokens))


def test_act_returns_a_legal_move_or_a_marked_completion(engine):
    game = make_game("kuhn_poker")
    game.reset(0)
    player = agent(engine)
    for seed in range(4):
        move = player.act(game, random.Random(seed))
        out = player.last_output
        assert move in game.legal_actions() or move == INVALID_PREFIX + out.text
        assert move == player.act(game, random.Random(seed))  # the caller's generator fixes the sample


def test_action_probabilities_cover_the_legal_moves(engine):
    game = make_game("kuhn_poker")
    game.reset(0)
    probs = agent(engine).action_probabilities(game)
    assert list(probs) == game.legal_actions()
    assert sum(probs.values()) == pytest.approx(1.0) and all(p > 0 for p in probs.values())
    with pytest.raises(ValueError, match="direct"):
        agent(engine, template="chat").action_probabilities(game)


def test_plays_in_the_arena(engine):
    result = play_match("kuhn_poker", {}, [agent(engine), RandomAgent()], n_games=4, seed=0)
    assert result.games == 4 and result.agents == ["model", "random"]
    assert result.mean_return[0] == pytest.approx(-result.mean_return[1])


def test_arena_accepts_a_model_agent(capsys):
    import json

    from spiral.cli import main

    code = main(["arena", "kuhn_poker", "--agents", "builtin:tiny,random", "--games", "20", "--template", "direct",
                 "--action-constraint", "choice", "--temperature", "1", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["agents"] == ["builtin:tiny", "random"] and result["games"] == 20
    # Choosing among legal moves can never be invalid; the returns stay zero-sum.
    assert result["invalid_rate"] == [0.0, 0.0]
    assert abs(sum(result["mean_return"])) < 1e-9


def test_model_agent_choice_mode_plays_only_legal_moves():
    import random

    from spiral.agents.model import ModelAgent
    from spiral.games import make_game
    from spiral.rollout.engine_factory import create_engine
    from spiral.types import SamplingSettings

    engine = create_engine("hf", "builtin:tiny", max_model_len=1024, seed=0)
    agent = ModelAgent(engine, "direct", SamplingSettings(temperature=1.0, max_tokens=8), action_constraint="choice")
    rng = random.Random(0)
    for seed in range(10):
        game = make_game("tic_tac_toe")
        game.reset(seed)
        assert agent.act(game, rng) in game.legal_actions()

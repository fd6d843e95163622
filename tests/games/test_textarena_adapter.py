"""The `textarena:<env id>` adapter on SPIRAL's own environments: conformance, seeding, invalid moves, and play
through the collector (a scripted engine for the policy, scripted agents as opponents)."""

from __future__ import annotations

import random
import re

import pytest

pytest.importorskip("textarena")

from spiral.agents import UnsupportedGameError, make_agent  # noqa: E402
from spiral.config.schema import GameSpec, RolloutConfig  # noqa: E402
from spiral.games import GameNotFound, IllegalMoveError, check_game, make_game, resolve_game  # noqa: E402
from spiral.models import resolve_model_path  # noqa: E402
from spiral.rollout.collector import Collector  # noqa: E402
from tests.rollout.test_collector import ScriptedEngine  # noqa: E402

KUHN, TTT, NEGOTIATION = "textarena:KuhnPoker-v0", "textarena:TicTacToe-v0", "textarena:SimpleNegotiation-v0"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path("builtin:tiny"))


def cfg(**kw) -> RolloutConfig:
    return RolloutConfig(**{"concurrent_games": 4, "max_tokens": 64, "template": "direct", **kw})


@pytest.mark.parametrize("name", [KUHN, TTT, NEGOTIATION])
def test_spirals_environments_pass_check_game(name):
    check_game(resolve_game(name), games=10)


def test_moves_are_listed_where_the_environment_knows_them():
    assert not make_game(KUHN).free_form and make_game(KUHN).legal_actions() == ["check", "bet"]
    assert make_game(TTT).legal_actions() == [str(i) for i in range(9)]
    assert make_game(NEGOTIATION).free_form and make_game(NEGOTIATION).legal_actions() == []


def test_seeded_resets_reproduce_and_leave_global_random_alone():
    random.seed(123)
    before = random.getstate()
    a, b = make_game(NEGOTIATION), make_game(NEGOTIATION)
    a.reset(7)
    b.reset(7)
    assert a.observation(0) == b.observation(0) and a.observation(1) == b.observation(1)
    b.reset(8)
    assert a.observation(0) != b.observation(0)  # valuations and inventories are drawn from the seed
    assert random.getstate() == before
    cards = set()
    kuhn = make_game(KUHN)
    for seed in range(30):
        kuhn.reset(seed)
        cards.add(re.findall(r"Your card is: '(\w)'", kuhn.observation(0))[0])
    assert cards == {"J", "Q", "K"}


def test_malformed_moves_are_refused_and_undone():
    game = make_game(NEGOTIATION)
    game.reset(0)
    seen = game.observation(0)
    with pytest.raises(IllegalMoveError, match="incorrect format"):
        game.apply_action("[Offer: banana -> 2 Gold]")  # the environment's own offer rules
    assert game.observation(0) == seen and game.current_player() == 0
    game.apply_action("Shall we trade?")  # free talk is a move in this environment
    assert game.current_player() == 1
    ttt = make_game(TTT)
    assert ttt.parse_action("\\boxed{9}") is None and ttt.parse_action("\\boxed{[4]}") == "4"


def first_legal_or_offer(prompt: str) -> str:
    """Box the first move TextArena lists ('[0]', '[check]'), else a simple offer."""
    listed = re.findall(r"'\[([^\]]+)\]'", prompt.split("available actions are:")[-1].split("Available Moves:")[-1])
    return f"\\boxed{{{listed[0]}}}" if listed else "\\boxed{Offer: 1 Wheat -> 1 Wood}"


@pytest.mark.parametrize("name", [KUHN, TTT])
def test_scripted_policy_against_random_through_the_collector(tokenizer, name):
    rollout = Collector(ScriptedEngine(tokenizer, first_legal_or_offer), [GameSpec(name)], cfg(), seed=0,
                        opponent=make_agent("random")).collect(8)
    assert rollout.records and all(r.returns and sum(r.returns) == 0 for r in rollout.records)
    assert all(r.invalid_seat is None for r in rollout.records)
    assert rollout.stats["invalid_rate"] == 0.0


def test_negotiation_self_play_and_invalid_moves_through_the_collector(tokenizer):
    rollout = Collector(ScriptedEngine(tokenizer, first_legal_or_offer), [GameSpec(NEGOTIATION)], cfg(), seed=0).collect(10)
    assert rollout.records and all(r.invalid_seat is None for r in rollout.records)
    bad = Collector(ScriptedEngine(tokenizer, lambda _: "\\boxed{Offer: 3 Unicorns -> 1 Wood}"), [GameSpec(NEGOTIATION)],
                    cfg(invalid_penalty=[-1.0, 1.0]), seed=0).collect(2)
    assert all(r.invalid_seat == 0 and r.returns == [-1.0, 1.0] for r in bad.records)
    assert bad.stats["invalid_rate"] == 1.0


def test_a_move_outside_the_list_is_an_invalid_move(tokenizer):
    rollout = Collector(ScriptedEngine(tokenizer, lambda _: "\\boxed{raise}"), [GameSpec(KUHN)], cfg(), seed=0).collect(2)
    assert all(r.invalid_seat is not None for r in rollout.records)


def test_free_form_games_refuse_choice_and_list_agents(tokenizer):
    with pytest.raises(ValueError, match="free-form.*action_constraint"):
        Collector(ScriptedEngine(tokenizer, first_legal_or_offer), [GameSpec(NEGOTIATION)],
                  cfg(action_constraint="choice"), seed=0).collect(2)
    with pytest.raises(UnsupportedGameError, match="free-form"):
        make_agent("random").action_probabilities(make_game(NEGOTIATION))


def test_unknown_env_id_suggests_one():
    with pytest.raises(GameNotFound, match="textarena:TicTacToe-v0"):
        resolve_game("textarena:TicTacToe-v1")

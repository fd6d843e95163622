"""Simple Negotiation: offers are validated by parsing against the inventories, and trades move resources."""

from __future__ import annotations

import pytest

from spiral.games import IllegalMoveError
from spiral.games.simple_negotiation import SimpleNegotiation


@pytest.fixture
def game() -> SimpleNegotiation:
    game = SimpleNegotiation()
    game.reset(3)
    return game


def _inventory(game: SimpleNegotiation, player: int) -> dict[str, int]:
    line = next(l for l in game.observation(player).splitlines() if l.startswith("Your inventory"))
    items = line.removeprefix("Your inventory: ").rstrip(".").split(", ")
    return {item.split()[1]: int(item.split()[0]) for item in items}


def test_any_affordable_offer_is_legal_in_many_spellings(game):
    mine, theirs = _inventory(game, 0), _inventory(game, 1)
    give = next(r for r, q in mine.items() if q >= 1)
    get = next(r for r, q in theirs.items() if q >= 2 and r != give)
    canonical = f"Offer: I give 1 {give} -> you give 2 {get}"
    for spelling in [
        f"\\boxed{{[Offer: I give 1 {give} -> you give 2 {get}]}}",
        f"\\boxed{{offer: 1 {give.lower()} → 2 {get.upper()}s}}",
        f"thinking... \\boxed{{Offer: I give 1x {give} in exchange for 2 {get}}}",
    ]:
        assert game.parse_action(spelling) == canonical
    assert canonical not in game.legal_actions()  # the listed actions are only examples
    game.apply_action(canonical)
    assert "[Accept]" in game.observation(1) and "Accept" in game.legal_actions()


def test_offers_beyond_what_a_seat_holds_are_invalid(game):
    mine, theirs = _inventory(game, 0), _inventory(game, 1)
    resource = next(iter(mine))
    too_many = f"\\boxed{{Offer: I give {mine[resource] + 1} {resource} -> you give nothing}}"
    assert game.parse_action(too_many) is None
    ask_too_much = f"\\boxed{{Offer: I give nothing -> you give {theirs[resource] + 1} {resource}}}"
    assert game.parse_action(ask_too_much) is None
    for junk in ["\\boxed{Offer: I give 1 Unicorn -> you give 1 Wood}", "\\boxed{Offer: nothing -> nothing}",
                 "\\boxed{Offer: I give 1 Wood}", "\\boxed{Accept}", "\\boxed{Offer: I give 99999999 Wood -> you give 1 Ore}"]:
        assert game.parse_action(junk) is None, junk
    with pytest.raises(IllegalMoveError):
        game.apply_action("Accept")  # nothing is pending


def test_accept_swaps_resources_and_deny_does_not(game):
    mine, theirs = _inventory(game, 0), _inventory(game, 1)
    give = next(iter(mine))
    get = next(r for r in theirs if r != give)
    offer = f"Offer: I give 1 {give} -> you give 1 {get}"
    game.apply_action(offer)  # seat 0 offers
    game.apply_action("Deny")  # seat 1 refuses
    assert _inventory(game, 0) == mine
    game.apply_action(offer)  # seat 0 offers again
    game.apply_action("Accept")  # seat 1 accepts
    after0, after1 = _inventory(game, 0), _inventory(game, 1)
    assert after0[give] == mine[give] - 1 and after0[get] == mine[get] + 1
    assert after1[give] == theirs[give] + 1 and after1[get] == theirs[get] - 1


def test_counter_offer_replaces_the_pending_one(game):
    game.apply_action(game.legal_actions()[0])  # seat 0 offers
    before = _inventory(game, 1)
    counter = next(a for a in game.legal_actions() if a.startswith("Offer"))
    game.apply_action(counter)  # seat 1 counters instead of answering
    assert game.legal_actions()[:2] == ["Accept", "Deny"]
    game.apply_action("Accept")  # seat 0 accepts the counter: seat 1 gives and gets what it said
    (gave, got) = (side.split(" give ")[1].split(" ", 1) for side in counter.split(" -> "))
    after = _inventory(game, 1)
    assert after[gave[1]] == before[gave[1]] - int(gave[0])
    assert after[got[1]] == before[got[1]] + int(got[0])


def test_game_ends_at_the_turn_limit_and_the_bigger_gain_wins():
    game = SimpleNegotiation(resources=3, max_turns=4)
    for seed in range(30):
        game.reset(seed)
        while not game.is_terminal():
            legal = game.legal_actions()
            game.apply_action("Accept" if "Accept" in legal else legal[0])
        a, b = game.gains()
        expected = [1.0, -1.0] if a > b else [-1.0, 1.0] if b > a else [0.0, 0.0]
        assert game.returns() == expected


def test_private_values_are_not_shown_to_the_opponent(game):
    own = game.observation(0)
    other = game.observation(1)
    assert "worth" in own and own.count("worth") == len(game.resources)
    opponent_line = next(l for l in other.splitlines() if l.startswith("Opponent's inventory"))
    assert "worth" not in opponent_line

"""The plugin's own conformance test: spiral's random-play checker, plus one rule test."""

from coin_game import CoinGame

from spiral.games import check_game


def test_passes_spiral_check_game():
    check_game(CoinGame, games=200)
    check_game(CoinGame, games=50, params={"bias": 0.9})


def test_only_the_correct_caller_wins():
    game = CoinGame(bias=1.0)  # always heads
    game.reset(seed=7)
    game.apply_action("heads")
    game.apply_action("tails")
    assert game.returns() == [1.0, -1.0]

"""`spiral play GAME --opponent AGENT`: play a game yourself in the terminal (moves may be piped on stdin)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spiral.games import Game


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("game", help="game name (see `spiral games`) or package.module:Class")
    parser.add_argument("--opponent", default="random", help="agent to play against (default random)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the game and the opponent")
    parser.add_argument("--seat", type=int, choices=[0, 1], default=0, help="your seat (0 moves first)")
    parser.add_argument("--param", action="append", default=[], metavar="K=V", help="game parameter (repeatable)")


def _read_move(game: Game, prompt: str) -> str | None:
    """Ask until the person types a legal move; None at end of input."""
    while True:
        try:
            text = input(prompt)
        except EOFError:
            return None
        if not sys.stdin.isatty():  # piped moves are not echoed by the terminal; show them in the log
            print(text)
        # People type `bet` or `\boxed{bet}`; both go through the game's own model-output parser.
        move = game.parse_action(text if "\\boxed" in text else f"\\boxed{{{text}}}")
        if move is not None:
            return move
        legal = game.legal_actions()
        shown = ", ".join(legal[:12]) + (", ..." if len(legal) > 12 else "")
        print(f"Illegal move {text.strip()[:80]!r}. Legal moves: {shown}")


def run(args: argparse.Namespace) -> int:
    import random

    from spiral.agents import make_agent
    from spiral.commands.arena import parse_params
    from spiral.games import GameNotFound, make_game

    try:
        game = make_game(args.game, parse_params(args.param))
        opponent = make_agent(args.opponent, seed=args.seed)
    except (ValueError, GameNotFound) as err:
        print(f"spiral play: {err}", file=sys.stderr)
        return 2
    me, rng = args.seat, random.Random(f"play:{args.seed}")
    game.reset(args.seed)
    print(game.description, end="\n\n")
    while not game.is_terminal():
        if game.current_player() == me:
            print(game.observation(me))
            move = _read_move(game, "Your move> ")
            if move is None:
                print("\nEnd of input; game abandoned.")
                return 0
        else:
            move = opponent.act(game, rng)
            print(f"Opponent ({opponent.name}) plays: {move}")
        game.apply_action(move)
        print()
    print(game.observation(me))
    result = game.returns()[me]
    print(f"Result: {'you win' if result > 0 else 'you lose' if result < 0 else 'draw'} (return {result:+g})")
    return 0

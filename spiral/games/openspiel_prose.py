"""Readable prose for OpenSpiel games: rules, what a seat sees, and move names, from the game's own state.

OpenSpiel's strings are terse (Kuhn's information state is `"1p"`); the games people train on get a renderer
here, every other game the generic one. Renderers only read state; they never apply moves.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spiral.games.openspiel_game import OpenSpielGame

_CARDS = "JQK"


class Prose:
    """The generic renderer: OpenSpiel's own strings with a sentence around them."""

    def rules(self, game: Any) -> str:
        kind = game.get_type()
        params = ", ".join(f"{k}={v}" for k, v in sorted(game.get_parameters().items()))
        return (f"{kind.long_name} (OpenSpiel game {kind.short_name}{f' with {params}' if params else ''}). Two players "
                "take turns; moves are written as OpenSpiel names them. The game ends with a payoff for each player.")

    def move_name(self, state: Any, action: int) -> str:
        return state.action_to_string(state.current_player(), action)

    def view(self, state: Any, player: int) -> str:
        """OpenSpiel's own string for what `player` knows."""
        kind = state.get_game().get_type()
        if kind.provides_observation_string and kind.information == kind.information.PERFECT_INFORMATION:
            return state.observation_string(player)
        if kind.provides_information_state_string:
            return state.information_state_string(player)
        return state.observation_string(player)

    def history(self, game: OpenSpielGame, player: int, moves: list[tuple[int, int, str]] | None = None) -> str:
        moves = game.moves if moves is None else moves
        return ", ".join(f"{'You' if seat == player else 'Opponent'}: {name}" for seat, _, name in moves) or "none yet"

    def observation(self, game: OpenSpielGame, player: int) -> str:
        return (f"You are Player {player}.\nState (OpenSpiel's notation):\n{self.view(game.state, player)}\n"
                f"Moves so far: {self.history(game, player)}.")


class KuhnProse(Prose):
    """Kuhn Poker in spiral's words: check/bet, and call/fold facing a bet (OpenSpiel's Pass/Bet)."""

    def rules(self, game: Any) -> str:
        return ("Kuhn Poker. The deck has 3 cards ranked J < Q < K. Both players ante 1 chip and get one private "
                "card. Player 0 acts first and may [check] or [bet] 1 chip. If a player bets, the other may [call] "
                "(add 1 chip) or [fold] (give up the pot). After check-check or a call, the higher card wins the pot.")

    def move_name(self, state: Any, action: int) -> str:
        facing_bet = state.information_state_string(state.current_player()).endswith("b")
        return [("check", "bet"), ("fold", "call")][facing_bet][action]

    def observation(self, game: OpenSpielGame, player: int) -> str:
        card = int(game.state.information_state_string(player)[0])
        pot = 2 + sum(name in ("bet", "call") for _, _, name in game.moves)
        return (f"You are Player {player}. Your card: {_CARDS[card]}.\n"
                f"Actions so far: {self.history(game, player)}. Pot: {pot} chips.")


class LeducProse(Prose):
    """Leduc Hold'em: private card, public card in round 2, fold/call/raise (call with nothing to call checks)."""

    def rules(self, game: Any) -> str:
        return ("Leduc Hold'em poker. The deck has 6 cards: two each of J, Q, K. Both players ante 1 chip and get "
                "one private card. There are two betting rounds; in each, player 0 acts first, at most two raises "
                "are allowed, and a raise adds 2 chips in round 1 and 4 chips in round 2. On your turn you may "
                "[fold] (give up the pot), [call] (match the opponent's chips; with nothing to match this is a "
                "check) or [raise]. After round 1 one public card is shown. At the showdown a private card that "
                "pairs the public card wins, otherwise the higher card; equal ranks split the pot.")

    def move_name(self, state: Any, action: int) -> str:
        return ("fold", "call", "raise")[action]

    def observation(self, game: OpenSpielGame, player: int) -> str:
        fields = dict(re.findall(r"\[([\w ]+): ([^\]]*)\]", game.state.information_state_string(player)))
        lines = [f"You are Player {player}. Your private card: {_CARDS[int(fields['Private']) // 2]}."]
        by_round = _split_rounds(game)
        lines.append(f"Round 1 actions: {self.history(game, player, by_round[0])}.")
        if "Public" in fields:
            lines.append(f"Public card: {_CARDS[int(fields['Public']) // 2]}.")
            lines.append(f"Round 2 actions: {self.history(game, player, by_round[1])}.")
        money = [int(m) for m in fields["Money"].split()]
        if not game.state.is_terminal():  # at the end OpenSpiel has paid the pot out
            lines.append(f"Pot: {fields['Pot']} chips. Chips you have put in: {_put_in(money, player)}; "
                         f"the opponent: {_put_in(money, 1 - player)}.")
        return "\n".join(lines)


def _split_rounds(game: OpenSpielGame) -> list[list[tuple[int, int, str]]]:
    """Leduc moves by betting round: the public card is dealt between them."""
    rounds: list[list[tuple[int, int, str]]] = [[], []]
    state = game.openspiel_game.new_initial_state()
    moves = iter(game.moves)
    dealt = 0
    for action in game.state.history():
        if state.is_chance_node():
            dealt += 1
        else:
            rounds[dealt > 2].append(next(moves))
        state.apply_action(action)
    return rounds


def _put_in(money: list[int], seat: int) -> int:
    return 100 - money[seat]  # OpenSpiel's Leduc starts each player with 100 chips


class LiarsDiceProse(Prose):
    """Liar's Dice as OpenSpiel plays it: bids `q-f`, the highest face wild, `Liar` to call."""

    def rules(self, game: Any) -> str:
        p = game.get_parameters()
        dice, sides = p.get("numdice", 1), p.get("dice_sides", 6)
        return (f"Liar's Dice. Each player rolls {dice} private {sides}-sided {'die' if dice == 1 else 'dice'}. Players "
                f"alternate, player 0 first. A bid [q-f] claims that at least q of all {2 * dice} dice show face f; "
                f"face {sides} is wild and counts as every face. Each bid must be higher than the previous one (the "
                "legal moves list exactly the allowed bids). Instead of bidding you may call [Liar] on the previous "
                "bid: the dice are shown; if the bid holds the bidder wins, otherwise the caller wins.")

    def observation(self, game: OpenSpielGame, player: int) -> str:
        dice = game.state.information_state_string(player).split(" ")[0]
        bids = [f"{'You' if seat == player else 'Opponent'}: {name}" for seat, _, name in game.moves]
        return f"You are Player {player}. Your dice: {' '.join(dice)}.\nBids so far: {', '.join(bids) or 'none yet'}."


class BoardProse(Prose):
    """Tic-Tac-Toe and Connect Four: the board as rows of x, o and ., with the seat's mark."""

    def __init__(self, rules_text: str) -> None:
        self.rules_text = rules_text

    def rules(self, game: Any) -> str:
        return self.rules_text.format(**game.get_parameters())

    def observation(self, game: OpenSpielGame, player: int) -> str:
        board = game.state.observation_string(player).strip("\n")
        return (f"You are Player {player} and play {'xo'[player]}. Board (top row first; . is empty):\n{board}\n"
                f"Moves so far: {self.history(game, player)}.")


_RENDERERS: dict[str, Prose] = {
    "kuhn_poker": KuhnProse(),
    "leduc_poker": LeducProse(),
    "liars_dice": LiarsDiceProse(),
    "tic_tac_toe": BoardProse(
        "Tic-Tac-Toe on a 3x3 board. Player 0 plays x and moves first, player 1 plays o. A move [x(r,c)] or "
        "[o(r,c)] puts your mark in row r, column c (both from 0, top left is (0,0)). Three of your marks in a row, "
        "column or diagonal win; a full board with no line is a draw."),
    "connect_four": BoardProse(
        "Connect Four on a board of {rows} rows and {columns} columns. Player 0 plays x and moves first, player 1 plays o. "
        "A move [x3] or [o3] drops your mark into column 3 (columns from 0, left to right); it falls to the lowest "
        "empty row. {x_in_row} of your marks in a row, column or diagonal win; a full board is a draw."),
}


def renderer_for(openspiel_name: str) -> Prose:
    """The prose renderer of an OpenSpiel game (the generic one when it has none of its own)."""
    return _RENDERERS.get(openspiel_name, Prose())

"""What a seat is told when it must move: the game's rules, its observation and the answer instruction.

Plain text from the game alone; `spiral.rollout.prompts` wraps it in a chat or base-model template and tokenises it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spiral.choices import TEMPLATES

if TYPE_CHECKING:
    from spiral.games.base import Game

REASONING_INSTRUCTION = "Think step by step, then put your move in \\boxed{}, for example \\boxed{move}."
DIRECT_INSTRUCTION = "Answer immediately with only your move in \\boxed{}, for example \\boxed{move}, and nothing else."


def prompt_content(game: Game, seat: int, template: str) -> str:
    """The user message: rules, what `seat` sees (games list the legal moves there), and the instruction."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown prompt template {template!r}; choose one of {', '.join(TEMPLATES)}")
    instruction = DIRECT_INSTRUCTION if template == "direct" else REASONING_INSTRUCTION
    return f"{game.description}\n\n{game.observation(seat)}\n\n{instruction}"

"""Prompt templates: the text and token ids a seat sees when it must move.

Pure functions of (game state, seat, template, tokenizer), and a cache of the token ids they produce; no
sampling and no engine here.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

from spiral.games.prompts import prompt_content

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from spiral.games.base import Game

def qwen3_raw(content: str) -> str:
    """One user turn in the raw im_start format (base models have no chat template but were pre-trained on it)."""
    return f"<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"


def render_text(content: str, template: str, tokenizer: PreTrainedTokenizerBase) -> str:
    """A user message wrapped as a generation prompt.

    `chat` uses the tokenizer's chat template (it must have one); `qwen3_base` writes the im_start
    format by hand; `direct` uses the chat template when the tokenizer has one, else the im_start format.
    """
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if template == "qwen3_base" or (template == "direct" and not has_chat):
        return qwen3_raw(content)
    if not has_chat:
        raise ValueError("template 'chat' needs a tokenizer with a chat template; use 'qwen3_base' for base models")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )


def render_prompt(game: Game, seat: int, template: str, tokenizer: PreTrainedTokenizerBase) -> str:
    """The full prompt text for `seat` to move in `game` (see `render_text` for the templates)."""
    return render_text(prompt_content(game, seat, template), template, tokenizer)


def _encode(texts: list[str], tokenizer: PreTrainedTokenizerBase) -> list[list[int]]:
    """Token ids of rendered prompts in one batch call (the rendered text already holds every special token)."""
    return tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []


def build_prompts(movers: list[tuple[Game, int]], template: str, tokenizer: PreTrainedTokenizerBase) -> list[list[int]]:
    """Token ids of `render_prompt` for each (game, seat)."""
    return _encode([render_prompt(game, seat, template, tokenizer) for game, seat in movers], tokenizer)


class PromptCache:
    """`build_prompts` that remembers the token ids of each prompt text it has encoded (least recently
    used dropped first beyond `capacity`).

    In self-play the same observation recurs all the time (every Kuhn hand opens at one of six prompts),
    and encoding a few hundred tokens of rules costs more than rendering them: ~0.15 ms a prompt with the
    built-in tokenizer, a fifth of a 64-game CPU collection with the tiny model. Ids are kept as int32
    arrays, so a full cache of 500-token prompts holds ~16 MB of ids (and the texts).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, capacity: int = 8192) -> None:
        if capacity < 1:
            raise ValueError(f"PromptCache capacity must be at least 1, got {capacity}")
        self.tokenizer = tokenizer
        self.capacity = capacity
        self._ids: OrderedDict[str, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def build(self, movers: list[tuple[Game, int]], template: str) -> list[list[int]]:
        """Token ids of `render_prompt` for each (game, seat); a fresh list each, safe to modify."""
        return self.encode([self.render(game, seat, template) for game, seat in movers])

    def render(self, game: Game, seat: int, template: str) -> str:
        """`render_prompt` with this cache's tokenizer (the part of `build` that runs game code)."""
        return render_prompt(game, seat, template, self.tokenizer)

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of rendered prompt texts, encoding only those not seen recently (in one batch call)."""
        missing = [text for text in dict.fromkeys(texts) if text not in self._ids]
        for text, ids in zip(missing, _encode(missing, self.tokenizer), strict=True):
            self._ids[text] = np.asarray(ids, dtype=np.int32)
        for text in texts:
            self._ids.move_to_end(text)
        result = [self._ids[text].tolist() for text in texts]
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return result


def build_prompt(game: Game, seat: int, template: str, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids of `render_prompt` for one seat (see `build_prompts`)."""
    return build_prompts([(game, seat)], template, tokenizer)[0]

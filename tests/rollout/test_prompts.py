"""Prompt templates on a real game and the built-in tiny model's tokenizer."""

from __future__ import annotations

import copy

import pytest

from spiral.games import make_game
from spiral.games.prompts import DIRECT_INSTRUCTION, REASONING_INSTRUCTION
from spiral.models import resolve_model_path
from spiral.rollout.prompts import (
    PromptCache,
    build_prompt,
    build_prompts,
    render_prompt,
)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path("builtin:tiny"))


@pytest.fixture
def kuhn():
    game = make_game("kuhn_poker")
    game.reset(7)
    return game


@pytest.mark.parametrize("template", ["chat", "qwen3_base", "direct"])
def test_prompt_holds_rules_observation_and_instruction(tokenizer, kuhn, template):
    text = render_prompt(kuhn, 0, template, tokenizer)
    assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert kuhn.description in text and kuhn.observation(0) in text and "[check], [bet]" in text
    assert (DIRECT_INSTRUCTION in text) == (template == "direct")
    assert (REASONING_INSTRUCTION in text) == (template != "direct")
    ids = build_prompt(kuhn, 0, template, tokenizer)
    assert tokenizer.decode(ids) == text
    assert ids.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == 2  # special tokens are single ids


def test_hand_written_base_format_matches_a_qwen_chat_template(tokenizer, kuhn):
    # The tiny model's chat template is Qwen's, so both routes must produce the same ids.
    assert build_prompt(kuhn, 1, "chat", tokenizer) == build_prompt(kuhn, 1, "qwen3_base", tokenizer)


def test_each_seat_sees_only_its_own_view(tokenizer, kuhn):
    for seat in (0, 1):
        text = render_prompt(kuhn, seat, "direct", tokenizer)
        assert kuhn.observation(seat) in text and kuhn.observation(1 - seat) not in text


def test_chat_needs_a_chat_template_but_direct_falls_back(tokenizer, kuhn):
    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    with pytest.raises(ValueError, match="qwen3_base"):
        build_prompt(kuhn, 0, "chat", plain)
    assert build_prompt(kuhn, 0, "direct", plain) == build_prompt(kuhn, 0, "direct", tokenizer)


def test_unknown_template_is_refused(tokenizer, kuhn):
    with pytest.raises(ValueError, match="chat, qwen3_base, direct"):
        render_prompt(kuhn, 0, "fancy", tokenizer)


class _CountingTokenizer:
    """The real tokenizer, counting the texts it is asked to encode."""

    def __init__(self, tokenizer):
        self.inner = tokenizer
        self.chat_template = tokenizer.chat_template
        self.encoded: list[str] = []

    def apply_chat_template(self, *args, **kwargs):
        return self.inner.apply_chat_template(*args, **kwargs)

    def __call__(self, texts, **kwargs):
        self.encoded += texts
        return self.inner(texts, **kwargs)


def _positions(seed: int) -> list[tuple]:
    """Movers from random Kuhn and TicTacToe play: many repeats (every Kuhn opening) and some new states."""
    import random

    rng = random.Random(seed)
    movers = []
    for name in ("kuhn_poker", "tic_tac_toe") * 6:
        game = make_game(name)
        game.reset(rng.randrange(100))
        while not game.is_terminal():
            movers.append((copy.deepcopy(game), game.current_player()))
            game.apply_action(rng.choice(game.legal_actions()))
    return movers


def test_prompt_cache_matches_build_prompts_and_encodes_each_text_once(tokenizer):
    counting = _CountingTokenizer(tokenizer)
    cache = PromptCache(counting)
    for seed in (0, 1):
        movers = _positions(seed)
        assert cache.build(movers, "direct") == build_prompts(movers, "direct", tokenizer)
    texts = [render_prompt(game, seat, "direct", tokenizer) for seed in (0, 1) for game, seat in _positions(seed)]
    assert sorted(counting.encoded) == sorted(set(texts))  # each distinct text encoded once
    assert len(set(texts)) < len(texts)  # some positions repeat, so the cache was used


def test_prompt_cache_returns_fresh_lists_and_keeps_at_most_capacity(tokenizer):
    movers = _positions(2)
    cache = PromptCache(tokenizer, capacity=3)
    first = cache.build(movers[:1], "direct")
    first[0].append(-1)
    assert cache.build(movers[:1], "direct") == build_prompts(movers[:1], "direct", tokenizer)
    assert cache.build(movers, "direct") == build_prompts(movers, "direct", tokenizer)
    assert len(cache) == 3
    with pytest.raises(ValueError, match="capacity"):
        PromptCache(tokenizer, capacity=0)

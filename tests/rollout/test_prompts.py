"""Prompt templates on a real game and the built-in tiny model's tokenizer."""

from __future__ import annotations

import copy

import pytest

from spiral.games import make_game
from spiral.models import resolve_model_path
from spiral.rollout.prompts import (
    DIRECT_INSTRUCTION,
    REASONING_INSTRUCTION,
    build_prompt,
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

"""What `spiral train` checks after loading the config and before it writes anything or builds a model:
every configured game passes a short conformance check, and the opening prompts fit the context."""

from __future__ import annotations

from spiral.config.schema import ConfigError, SpiralConfig

CHECK_GAMES = 8
"""Seeded random games `check_game` plays per configured game (a few seconds at most for any built-in game)."""


def check_games_conform(cfg: SpiralConfig) -> None:
    """Refuse a training or evaluation game that fails `check_game` (with its reason). The check is
    bounded: at most `TURN_CAP` moves a game, and a digest, not a copy, of each state."""
    from spiral.games import GameCheckError, check_game, make_game, resolve_game

    specs = [(f"games[{i}]", g.name, dict(g.params)) for i, g in enumerate(cfg.games)]
    specs += [(f"eval.games[{i}]", name, {}) for i, name in enumerate(cfg.eval.games)]
    for key, name, params in specs:
        try:
            check_game(resolve_game(name), games=CHECK_GAMES, seed=cfg.run.seed, params=params)
        except GameCheckError as err:
            raise ConfigError(f"{key}: game {name!r} fails spiral's conformance check (check_game): {err}") from None
        if resolve_game(name).num_players != 2:
            raise ConfigError(f"{key}: game {name!r} is not a two-player game; spiral trains by two-seat self-play")
        if cfg.rollout.action_constraint == "choice" and make_game(name, params).free_form:
            raise ConfigError(f"{key}: game {name!r} is free-form (its moves cannot be listed); rollout.action_constraint "
                              "choice needs a list of legal moves: set rollout.action_constraint: none")


def check_prompts_fit(cfg: SpiralConfig, model_path: str) -> None:
    """Refuse a `model.max_model_len` shorter than a training game's opening prompt (no turn could be played)."""
    from transformers import AutoTokenizer

    from spiral.games import make_game
    from spiral.rollout.prompts import build_prompt

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=cfg.model.trust_remote_code)
    except (OSError, ValueError) as err:
        reason = str(err).splitlines()[0]
        raise ConfigError(f"model.path: cannot load the tokenizer of {cfg.model.path!r}: {reason}") from None
    for spec in cfg.games:
        game = make_game(spec.name, spec.params)
        game.reset(cfg.run.seed)
        try:
            prompt = build_prompt(game, game.current_player(), cfg.rollout.template, tokenizer)
        except ValueError as err:  # e.g. template chat with a tokenizer that has no chat template
            raise ConfigError(f"rollout.template: {err}") from None
        if len(prompt) >= cfg.model.max_model_len:
            raise ConfigError(
                f"model.max_model_len ({cfg.model.max_model_len}) is too small: {spec.name}'s opening prompt alone is "
                f"{len(prompt)} tokens with template {cfg.rollout.template}; raise it to at least "
                f"{len(prompt) + cfg.rollout.max_tokens} (prompt + rollout.max_tokens)"
            )

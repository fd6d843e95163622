"""Load a YAML config plus dotted overrides into a validated `SpiralConfig`.

Errors name the key, the file (or "command line") and a close suggestion; nothing runs before that.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import fields, is_dataclass
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from spiral.config.schema import ConfigError, SpiralConfig


def _known_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key the schema accepts (nested dataclasses expanded)."""
    keys = []
    for f in fields(cls):
        dotted = f"{prefix}{f.name}"
        keys.append(dotted)
        default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        if is_dataclass(default):
            keys.extend(_known_keys(type(default), dotted + "."))
    return keys


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def _explain(err: OmegaConfBaseException, source: str) -> ConfigError:
    key = getattr(err, "full_key", None) or getattr(err, "key", None) or "?"
    key = re.sub(r"\[\d+\]", "", str(key))  # games[0].nme -> games.nme for suggestions
    msg = str(err).splitlines()[0]
    if "not in" in msg or "Key '" in msg and "not" in msg:
        hint = _suggest(key, _known_keys(SpiralConfig) + [f"games.{f.name}" for f in _game_fields()])
        return ConfigError(f"{source}: unknown config key '{key}'.{hint}")
    return ConfigError(f"{source}: bad value for '{key}': {msg}")


def _game_fields():
    from spiral.config.schema import GameSpec

    return fields(GameSpec)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> SpiralConfig:
    """Read `path` (may be None for defaults), apply `key=value` overrides, validate everything."""
    merged = OmegaConf.structured(SpiralConfig)
    source = str(path) if path else "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.load(path))
        except OmegaConfBaseException as err:
            raise _explain(err, str(path)) from None
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"command line: override {item!r} must look like key=value (e.g. trainer.lr=2e-6)")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as err:
            raise _explain(err, f"command line override {item!r}") from None
    try:
        cfg = OmegaConf.to_object(merged)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    except OmegaConfBaseException as err:
        raise _explain(err, source) from None
    _check_games(cfg, source)
    return cfg  # type: ignore[return-value]


def _check_games(cfg: SpiralConfig, source: str) -> None:
    from spiral.games.registry import GameNotFound, resolve_game

    for name in [g.name for g in cfg.games] + list(cfg.eval.games):
        try:
            resolve_game(name)
        except GameNotFound as err:
            raise ConfigError(f"{source}: {err}") from None


def to_yaml(cfg: SpiralConfig) -> str:
    """The fully resolved config as YAML (what `spiral config show` prints and runs save)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))

"""Load a YAML config plus dotted overrides into a validated `SpiralConfig`.

Errors name the key, where its value came from (the file or the command line) and a fix; nothing
runs and nothing is written before that.
"""

from __future__ import annotations

import difflib
import io
import math
import re
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from spiral.choices import UNIFORM_REFERENCE
from spiral.config.schema import ConfigError, GameSpec, SpiralConfig


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
        hint = _suggest(key, _known_keys(SpiralConfig) + [f"games.{f.name}" for f in fields(GameSpec)])
        return ConfigError(f"{source}: unknown config key '{key}'.{hint}")
    return ConfigError(f"{source}: bad value for '{key}': {msg}")


def _read_yaml(path: Path) -> DictConfig:
    """The file as a mapping; malformed, non-UTF-8, empty or non-mapping files are refused."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}); "
                          "save the file as UTF-8") from None
    try:
        data = OmegaConf.load(io.StringIO(text))  # OmegaConf's YAML loader also refuses duplicate keys
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem} (check the indentation and quoting there)") from None
    except OmegaConfBaseException as err:  # e.g. a lone scalar
        raise ConfigError(f"{path}: the top level must be a mapping of sections (run:, model:, games:, ...): "
                          f"{str(err).splitlines()[0]}") from None
    if not isinstance(data, DictConfig):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (run:, model:, games:, ...), "
                          "not a list")
    if len(data) == 0:
        raise ConfigError(f"{path}: the file is empty; a config sets at least run.dir and the games "
                          "(start from configs/kuhn_tiny.yaml)")
    return data


def _apply_override(merged: DictConfig, item: str) -> DictConfig:
    """One `key=value` on top of `merged`; list items are addressed by index (`games.0.weight=2`)."""
    key, _, _ = item.partition("=")
    parts = key.strip().split(".")
    if not any(p.isdigit() for p in parts):
        return OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
    value = OmegaConf.from_dotlist([f"value={item.partition('=')[2]}"])["value"]
    for i, part in enumerate(parts):
        if part.isdigit():
            container = OmegaConf.select(merged, ".".join(parts[:i]))
            if not OmegaConf.is_list(container) or int(part) >= len(container):
                size = len(container) if OmegaConf.is_list(container) else 0
                raise ConfigError(
                    f"command line override {item!r}: {'.'.join(parts[:i])} holds {size} item(s), so there is no "
                    f"index {part}; set the whole list instead, e.g. games=[{{name: kuhn_poker}}, {{name: tic_tac_toe}}]")
    OmegaConf.update(merged, key.strip(), value, merge=True)
    return merged


def _source_of(key: str | None, overrides: list[str], file_source: str) -> str:
    """Where the value of `key` came from: the last command-line override that sets it, else the file."""
    if key:
        for item in reversed(overrides):
            set_key = re.sub(r"\.\d+(?=\.|$)", "", item.partition("=")[0].strip())
            if key == set_key or key.startswith(set_key + ".") or set_key.startswith(key + "."):
                return f"command line ({item})"
    return file_source


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> SpiralConfig:
    """Read `path` (may be None for defaults), apply `key=value` overrides, validate everything."""
    overrides = list(overrides or [])
    merged = OmegaConf.structured(SpiralConfig)
    source = str(path) if path else "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            merged = OmegaConf.merge(merged, _read_yaml(path))
        except OmegaConfBaseException as err:
            raise _explain(err, str(path)) from None
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"command line: override {item!r} must look like key=value (e.g. trainer.lr=2e-6)")
        try:
            merged = _apply_override(merged, item)
        except OmegaConfBaseException as err:
            raise _explain(err, f"command line override {item!r}") from None
    try:
        cfg = OmegaConf.to_object(merged)
        _check_finite(cfg)
        _check_games(cfg)
        _check_models_and_agents(cfg)
    except ConfigError as err:
        raise ConfigError(f"{_source_of(err.key, overrides, source)}: {err}") from None
    except OmegaConfBaseException as err:
        raise _explain(err, source) from None
    return cfg  # type: ignore[return-value]


def _check_finite(value: Any, key: str = "") -> None:
    """No setting takes an infinite or NaN number."""
    if is_dataclass(value):
        for f in fields(value):
            _check_finite(getattr(value, f.name), f"{key}.{f.name}" if key else f.name)
        return
    for item in value if isinstance(value, list) else [value]:
        if is_dataclass(item):
            _check_finite(item, key + "[]")
        elif isinstance(item, float) and not math.isfinite(item):
            raise ConfigError(f"{key} must be finite, got {value}")


def _check_games(cfg: SpiralConfig) -> None:
    """Every training and evaluation game exists and accepts its parameters (built once to find out)."""
    from spiral.games.registry import GameNotFound, make_game

    specs = [("games[].name", g.name, g.params) for g in cfg.games] + [("eval.games", n, {}) for n in cfg.eval.games]
    for key, name, params in specs:
        try:
            make_game(name, dict(params))
        except GameNotFound as err:
            raise ConfigError(f"{key}: {err}") from None
        except ValueError as err:  # the game's own check of its parameters, or an unknown parameter
            raise ConfigError(f"games[].params: {err}; `spiral games` lists each game's parameters") from None


def _check_models_and_agents(cfg: SpiralConfig) -> None:
    """`model.path`, `algo.kl_reference`, `run.resume`, `rollout.opponent` and `eval.opponents` name things that exist (no typo
    fails late)."""
    from spiral.agents.factory import check_agent_spec
    from spiral.models.builtin import check_model_path

    checks: list[tuple[str, str, Callable[[str], None]]] = [("model.path", cfg.model.path, check_model_path)]
    if cfg.algo.kl_reference and cfg.algo.kl_reference != UNIFORM_REFERENCE:
        checks.append(("algo.kl_reference", cfg.algo.kl_reference, check_model_path))
    if cfg.run.resume not in ("auto", "never"):
        checks.append(("run.resume", cfg.run.resume, _check_checkpoint_dir))
    if cfg.rollout.opponent not in ("self", "pool"):
        checks.append(("rollout.opponent", cfg.rollout.opponent, check_agent_spec))
    checks += [("eval.opponents", spec, check_agent_spec) for spec in cfg.eval.opponents]
    for key, value, check in checks:
        try:
            check(value)
        except ValueError as err:
            hint = "; rollout.opponent also takes self or pool" if key == "rollout.opponent" else ""
            raise ConfigError(f"{key}: {err}{hint}") from None


def _check_checkpoint_dir(path: str) -> None:
    if not (Path(path) / "state.json").is_file():
        raise ValueError(f"{path} is not a spiral checkpoint (no state.json); pass auto, never or a "
                         "run's checkpoints/step-N folder")


def to_yaml(cfg: SpiralConfig) -> str:
    """The fully resolved config as YAML (what `spiral config show` prints and runs save)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))

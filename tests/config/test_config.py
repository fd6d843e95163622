"""The config contract: typed loading, dotted overrides, errors that name key, file and fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from spiral.cli import main
from spiral.config import ConfigError, SpiralConfig, load_config, to_yaml

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, SpiralConfig)
    assert cfg.trainer.steps > 0 and cfg.trainer.lr > 0


def test_shipped_configs_exist() -> None:
    names = {p.name for p in CONFIGS}
    assert {"kuhn.yaml", "kuhn_tiny.yaml", "tictactoe.yaml", "negotiation.yaml", "multigame.yaml"} <= names


def test_paper_settings_in_kuhn_yaml() -> None:
    cfg = load_config(Path(__file__).parents[2] / "configs" / "kuhn.yaml")
    assert cfg.trainer.lr == 1e-6 and cfg.trainer.steps == 400
    assert cfg.rollout.samples_per_step == 128 and cfg.algo.epochs == 2 and cfg.algo.clip_eps == 0.2
    assert cfg.trainer.betas == [0.9, 0.95] and cfg.algo.rae.decay == 0.95


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_overrides_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  lr: 1e-6\n")
    cfg = load_config(path, ["trainer.lr=2e-6", "run.seed=3", "run.dir=/tmp/x"])
    assert isinstance(cfg.trainer.lr, float) and cfg.trainer.lr == 2e-6
    assert cfg.run.seed == 3 and cfg.run.dir == "/tmp/x"
    assert isinstance(load_config(path).trainer.lr, float)


def test_unknown_key_names_key_file_and_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, {"trainer": {"stpes": 3}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "trainer.stpes" in msg and str(path) in msg and "trainer.steps" in msg


def test_unknown_section_and_override_typo(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rollout"):
        load_config(_write(tmp_path, {"rollot": {"temperature": 1.0}}))
    with pytest.raises(ConfigError, match=r"command line.*trainer\.lr"):
        load_config(None, ["trainer.lrr=1e-3"])


def test_wrong_type_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="trainer.steps"):
        load_config(_write(tmp_path, {"trainer": {"steps": "many"}}))


def test_unknown_game_name_is_suggested(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kuhn_poker"):
        load_config(_write(tmp_path, {"games": [{"name": "kuhn_pokr"}]}))


def test_post_init_validation_names_file(tmp_path: Path) -> None:
    path = _write(tmp_path, {"rollout": {"engine": "tgi"}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "rollout.engine" in str(err.value) and str(path) in str(err.value)


def test_resolved_yaml_round_trips(tmp_path: Path) -> None:
    cfg = load_config(None, ["trainer.steps=7"])
    path = tmp_path / "resolved.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(path) == cfg


def test_cli_config_show_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", str(CONFIGS[0]), "trainer.lr=3e-6"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["trainer"]["lr"] == 3e-6
    bad = _write(tmp_path, {"trainer": {"lrr": 1}})
    assert main(["config", "show", str(bad)]) == 2
    assert "trainer.lr" in capsys.readouterr().err


def test_pool_sampling_is_recency_by_default_and_checked() -> None:
    assert load_config(None, []).rollout.pool_sampling == "recency"
    assert load_config(None, ["rollout.pool_sampling=uniform"]).rollout.pool_sampling == "uniform"
    with pytest.raises(ConfigError, match="rollout.pool_sampling must be recency or uniform, not 'fifo'"):
        load_config(None, ["rollout.pool_sampling=fifo"])


def test_average_policy_needs_the_pool_and_an_exploitability_eval() -> None:
    pool = ["eval.average_policy=true", "rollout.opponent=pool", "rollout.pool_size=2"]
    assert load_config(None, pool).eval.average_policy
    for extra, key in ((["rollout.opponent=self"], "rollout.opponent: pool"),
                       (["eval.exploitability=false"], "eval.exploitability"),
                       (["trainer.sync_every=2"], "trainer.sync_every")):
        with pytest.raises(ConfigError, match=f"eval.average_policy .*{key}"):
            load_config(None, pool + extra)


def test_pool_ratings_need_the_pool_and_the_colocated_layout() -> None:
    pool = ["rollout.pool_ratings=true", "rollout.opponent=pool", "rollout.pool_size=2"]
    assert load_config(None, pool).rollout.pool_ratings
    for extra, key in ((["rollout.opponent=random"], "rollout.opponent: pool"),
                       (["trainer.layout=dedicated"], "trainer.layout: colocated")):
        with pytest.raises(ConfigError, match=f"rollout.pool_ratings .*{key}"):
            load_config(None, pool + extra)


def test_pool_must_fit_in_kept_checkpoints() -> None:
    with pytest.raises(ConfigError, match="rollout.pool_size"):
        load_config(None, ["rollout.opponent=pool", "rollout.pool_size=5", "checkpoint.keep=3"])
    assert load_config(None, ["rollout.opponent=pool", "rollout.pool_size=3", "checkpoint.keep=3"]).rollout.pool_size == 3


def test_training_rejects_nucleus_sampling(tmp_path: Path) -> None:
    path = _write(tmp_path, {"rollout": {"top_p": 0.95}})
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: rollout\.top_p must be 1\.0 for training"):
        load_config(path)
    assert load_config(None, ["eval.top_p=0.95"]).eval.top_p == 0.95


def test_a_moving_magnet_needs_the_kl_it_moves(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="magnet_ema.*kl_coef"):
        load_config(_write(tmp_path, {"algo": {"kl_coef": 0.0, "magnet_ema": 0.05}}))
    assert load_config(_write(tmp_path, {"algo": {"kl_coef": 0.2, "magnet_ema": 0.05}})).algo.magnet_ema == 0.05


def test_the_exact_kl_needs_the_kl_and_takes_choice_or_written_moves(tmp_path: Path) -> None:
    exact = {"kl_coef": 0.2, "kl_estimator": "exact"}
    for constraint in ("choice", "none"):
        cfg = load_config(_write(tmp_path, {"algo": exact, "rollout": {"action_constraint": constraint}}))
        assert (cfg.algo.kl_estimator, cfg.rollout.action_constraint) == ("exact", constraint)
    with pytest.raises(ConfigError, match="kl_estimator: exact needs algo.kl_coef"):
        load_config(_write(tmp_path, {"algo": {"kl_estimator": "exact"}, "rollout": {"action_constraint": "choice"}}))
    with pytest.raises(ConfigError, match="algo.kl_estimator must be k3 or exact"):
        load_config(_write(tmp_path, {"algo": {"kl_coef": 0.2, "kl_estimator": "k2"}}))


def test_a_uniform_kl_reference_needs_choice_moves_and_cannot_move(tmp_path: Path) -> None:
    uniform = {"kl_coef": 0.2, "kl_reference": "uniform"}
    cfg = load_config(_write(tmp_path, {"algo": uniform, "rollout": {"action_constraint": "choice"}}))
    assert cfg.algo.kl_reference == "uniform"  # not looked up as a model
    with pytest.raises(ConfigError, match="kl_reference: uniform.*action_constraint"):
        load_config(_write(tmp_path, {"algo": uniform}))
    with pytest.raises(ConfigError, match="magnet_ema.*uniform"):
        load_config(_write(tmp_path, {"algo": {**uniform, "magnet_ema": 0.1}, "rollout": {"action_constraint": "choice"}}))


def test_the_kl_decay_is_checked_like_the_learning_rates(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, {"algo": {"kl_coef": 0.2, "kl_decay": "cosine", "kl_min_ratio": 0.1}}))
    assert (cfg.algo.kl_decay, cfg.algo.kl_min_ratio) == ("cosine", 0.1)
    with pytest.raises(ConfigError, match="algo.kl_decay must be"):
        load_config(_write(tmp_path, {"algo": {"kl_coef": 0.2, "kl_decay": "exponential"}}))
    with pytest.raises(ConfigError, match="algo.kl_min_ratio"):
        load_config(_write(tmp_path, {"algo": {"kl_coef": 0.2, "kl_decay": "cosine", "kl_min_ratio": 0.0}}))
    with pytest.raises(ConfigError, match="kl_decay anneals the KL.*kl_coef"):
        load_config(_write(tmp_path, {"algo": {"kl_decay": "cosine"}}))


def test_a_kl_reference_must_exist_and_needs_the_kl(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="algo.kl_reference.*no/such/model"):
        load_config(_write(tmp_path, {"algo": {"kl_coef": 0.2, "kl_reference": str(tmp_path / "no/such/model")}}))
    with pytest.raises(ConfigError, match="kl_reference.*kl_coef"):
        load_config(_write(tmp_path, {"algo": {"kl_coef": 0.0, "kl_reference": "builtin:tiny"}}))

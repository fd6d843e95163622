"""Every bad config is refused before anything is written: exit 2, one line naming the key, where the
value came from (the file or the command line) and a fix, and no run directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from spiral.agents import is_model_spec
from spiral.cli import main
from spiral.config import ConfigError, load_config

TINY = Path(__file__).parents[2] / "configs" / "kuhn_tiny.yaml"


def _train(capsys: pytest.CaptureFixture[str], config: Path, run_dir: Path, *overrides: str) -> tuple[int, str]:
    code = main(["train", str(config), f"run.dir={run_dir}", *overrides])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("content", "expected"), [
    (b"trainer:\n  lr: [1\n", "invalid YAML at line 3"),
    (b"trainer:\n  lr: 1.0e-4\n  lr: 2.0e-4\n", "duplicate key lr"),
    (b"run:\n  name: caf\xe9\n", "not UTF-8"),
    (b"- run\n- model\n", "top level must be a mapping"),
    (b"", "the file is empty"),
    (b"# nothing but a comment\n", "the file is empty"),
], ids=["syntax", "duplicate-key", "latin-1", "top-level-list", "empty", "only-comments"])
def test_malformed_files_are_refused(tmp_path, capsys, content, expected) -> None:
    config = tmp_path / "bad.yaml"
    config.write_bytes(content)
    code, err = _train(capsys, config, tmp_path / "run")
    assert code == 2
    assert expected in err and str(config) in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


BAD_VALUES = [
    ("trainer.lr=inf", "trainer.lr"),
    ("trainer.lr=nan", "trainer.lr"),
    ("rollout.temperature=0", "rollout.temperature"),
    ("rollout.temperature=-1", "rollout.temperature"),
    ("rollout.top_p=0", "rollout.top_p"),
    ("rollout.top_p=1.5", "rollout.top_p"),
    ("trainer.micro_batch_size=0", "trainer.micro_batch_size"),
    ("eval.episodes=0", "eval.episodes"),
    ("algo.kl_coef=-0.1", "algo.kl_coef"),
    ("algo.rae.baseline=prompt", "algo.rae.baseline"),
    ("algo.rae.max_states=0", "algo.rae.max_states"),
    ("algo.magnet_ema=1.5", "algo.magnet_ema"),
    ("trainer.grad_clip=-1", "trainer.grad_clip"),
    ("trainer.adam_eps=0", "trainer.adam_eps"),
    ("trainer.warmup_steps=-1", "trainer.warmup_steps"),
    ("checkpoint.every=-1", "checkpoint.every"),
    ("checkpoint.keep=0", "checkpoint.keep"),
    ("trainer.steps=0", "trainer.steps"),
    ("model.path=./no/such/model", "model.path"),
    ("model.path=builtin:huge", "builtin:tiny"),
    ("model.path=tiny", "builtin:tiny"),
    ("games=[{name: kuhn_poker, params: {hands: 0}}]", "hands must be in 1..100"),
    ("games=[{name: kuhn_poker, params: {hand: 2}}]", "unexpected keyword argument 'hand'"),
    ("games.0.weight=0", "games"),
    ("games.1.weight=2", "no index 1"),
    ("rollout.opponent=ranodm", "Did you mean 'random'"),
    ("eval.opponents=[random,nsh]", "Did you mean 'nash'"),
    ("rollout.invalid_penalty=[nan,1]", "rollout.invalid_penalty"),
    ("rollout.pool_ratings=true", "rollout.pool_ratings"),
    ("run.resume=/no/such/checkpoint", "not a spiral checkpoint"),
]


@pytest.mark.parametrize(("override", "expected"), BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_bad_values_are_refused_naming_key_and_command_line(tmp_path, capsys, override, expected) -> None:
    code, err = _train(capsys, TINY, tmp_path / "run", override)
    assert code == 2
    assert expected in err and "command line" in err and override in err, err
    assert str(TINY) not in err  # the value came from the command line, not the file
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_a_bad_value_in_the_file_names_the_file(tmp_path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("trainer:\n  lr: .inf\n")
    with pytest.raises(ConfigError) as err:
        load_config(config, ["trainer.steps=3"])
    assert str(err.value).startswith(f"{config}: trainer.lr")
    # The same key fixed on the command line is accepted.
    assert load_config(config, ["trainer.lr=1e-5"]).trainer.lr == 1e-5


def test_list_items_can_be_overridden_by_index() -> None:
    cfg = load_config(None, ["games=[{name: kuhn_poker}, {name: tic_tac_toe}]", "games.1.weight=3",
                             "games.0.params.hands=2"])
    assert [(g.name, g.weight, g.params) for g in cfg.games] == [("kuhn_poker", 1.0, {"hands": 2}),
                                                                  ("tic_tac_toe", 3.0, {})]


def test_greedy_evaluation_stays_valid() -> None:
    assert load_config(None, ["eval.temperature=0"]).eval.temperature == 0.0
    assert load_config(None, ["eval.every=0", "eval.episodes=0"]).eval.episodes == 0


def test_a_folder_named_like_an_agent_stays_the_agent(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "random").mkdir()
    (tmp_path / "nash").mkdir()
    assert not is_model_spec("random") and not is_model_spec("nash:alpha=0.2")
    assert is_model_spec("./random") and is_model_spec("builtin:tiny")
    cfg = load_config(None, ["rollout.opponent=random", "eval.opponents=[nash]"])
    assert cfg.rollout.opponent == "random"


def test_a_checkpoint_folder_as_model_says_which_folder_to_pass(tmp_path) -> None:
    checkpoint = tmp_path / "step-000002"
    (checkpoint / "model").mkdir(parents=True)
    (checkpoint / "state.json").write_text("{}")
    with pytest.raises(ConfigError, match=f"pass {checkpoint / 'model'}"):
        load_config(None, [f"model.path={checkpoint}"])
    with pytest.raises(ConfigError, match="eval.opponents.*training checkpoint"):
        load_config(None, [f"eval.opponents=[{checkpoint}]"])

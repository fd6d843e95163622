"""`spiral eval` refuses unsafe or misplaced model folders with one line that says what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from spiral.cli import main
from spiral.models import resolve_model_path


class _WritesMarker:
    """Unpickling this runs code (it writes a file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_a_pickled_model_that_runs_code_is_refused_in_one_line(tmp_path, capsys) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for f in Path(resolve_model_path("builtin:tiny")).glob("*.json"):  # config and tokenizer, no weights
        shutil.copy(f, model)
    marker = tmp_path / "marker"
    torch.save({"model.embed_tokens.weight": _WritesMarker(marker)}, model / "pytorch_model.bin")
    assert main(["eval", str(model), "--games", "kuhn_poker", "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert f"refusing to load {model}" in err and "safetensors" in err
    assert len(err.strip().splitlines()) == 1, err
    assert not marker.exists()


@pytest.mark.parametrize("benchmarks", [False, True])
def test_a_checkpoint_folder_says_which_folder_to_pass(tmp_path, capsys, benchmarks) -> None:
    checkpoint = tmp_path / "checkpoints" / "step-000002"
    (checkpoint / "model").mkdir(parents=True)
    (checkpoint / "state.json").write_text("{}")
    flags = ["--benchmarks", "gsm8k", "--data-dir", str(tmp_path)] if benchmarks else ["--games", "kuhn_poker"]
    assert main(["eval", str(checkpoint), *flags]) == 2
    err = capsys.readouterr().err
    assert f"pass {checkpoint / 'model'}" in err and len(err.strip().splitlines()) == 1, err

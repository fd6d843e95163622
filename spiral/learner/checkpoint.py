"""Atomic training checkpoints: HF model (or LoRA adapter), DeepSpeed state, RNG, run state, config.

A checkpoint is written under a hidden temporary name and renamed when complete, so a crash leaves
the previous one intact; leftovers are ignored by `latest_checkpoint` and removed by the next save.
"""

from __future__ import annotations

import errno
import json
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from spiral.durable import fsync_dir, fsync_tree
from spiral.errors import SpiralError
from spiral.learner import distributed as dist_utils
from spiral.learner.safe_load import trusted, weights_only_loads

if TYPE_CHECKING:
    from spiral.learner.learner import Learner, PolicyScorer

_STEP_DIR = re.compile(r"^step-(\d{6,})$")
_DS_TAG = "state"
_UNIVERSAL_DIR = "deepspeed-universal"
_MAGNET_FILE = "magnet.safetensors"  # the moving KL reference (algo.magnet_ema), written by rank 0
_NEARLY_FULL_MIB = 64


class CheckpointError(SpiralError):
    """A checkpoint that cannot be written or read; the message says why and what to do."""


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _STEP_DIR.match(p.name)) and (p / "state.json").is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint directory, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def _rng_state() -> dict[str, Any]:
    """Every generator's state as JSON-able numbers (a checkpoint file that can carry no code)."""
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(words), gauss],
        "numpy": [kind, np.asarray(keys).tolist(), pos, has_gauss, cached],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `_rng_state` (also takes the tensors and arrays of checkpoints from before JSON)."""
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _load_rng_state(folder: Path) -> dict[str, Any] | None:
    """This rank's saved RNG state; None when absent (resuming with more ranks than were saved)."""
    rank = dist_utils.rank()
    saved = folder / f"rank-{rank}.json"
    if saved.is_file():
        try:
            return json.loads(saved.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{saved} is not a valid RNG state ({err}); the checkpoint is damaged") from None
    legacy = folder / f"rank-{rank}.pt"  # checkpoints written before the JSON format
    if legacy.is_file():
        with weights_only_loads(legacy):
            return torch.load(legacy, weights_only=not trusted())
    return None


def _save_hf_model(learner: Learner, out: Path) -> None:
    """Full HF model directory (LoRA merged) from `named_weights`; every rank iterates, rank 0 writes."""
    weights = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in learner.named_weights()}
    if dist_utils.is_main():
        learner.scorer.causal_lm.save_pretrained(out, state_dict=weights, safe_serialization=True)
        _save_tokenizer(learner, out)


def _save_tokenizer(learner: Learner, out: Path) -> None:
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(learner.model_path, trust_remote_code=learner.cfg.model.trust_remote_code
                                  ).save_pretrained(out)


def _save_adapter(learner: Learner, out: Path) -> None:
    """peft adapter directory; LoRA parameters are gathered first under ZeRO-3 (collective)."""
    import deepspeed

    peft_model = learner.scorer.model
    lora_params = [p for n, p in peft_model.named_parameters() if ".lora_" in n]
    with deepspeed.zero.GatheredParameters(lora_params, modifier_rank=None):
        if dist_utils.is_main():
            peft_model.save_pretrained(out)
    if dist_utils.is_main():
        _save_tokenizer(learner, out)


def save_checkpoint(run_dir: str | Path, step: int, learner: Learner, state: dict[str, Any]) -> Path:
    """Write `checkpoints/step-XXXXXX/` atomically on every rank's behalf; returns its path.

    Contents: `model/` (HF, loadable by transformers and vLLM; LoRA merged) or, with LoRA, `adapter/`
    plus `model/` when `checkpoint.save_merged`; `deepspeed/` (weights, optimizer, scheduler; one
    shard per rank); `rng/rank-N.json`; `state.json` (step and `state`, which must be JSON-able);
    `config.yaml`; `magnet.safetensors` with `algo.magnet_ema`. Keeps the newest `checkpoint.keep`. Every rank must call it.

    Durability: every file is fsynced before the rename, and the rename before older checkpoints are
    deleted, so a crash or power loss leaves the newest complete checkpoint on disk. A full disk is
    reported as such (`CheckpointError`), with the partial files removed.
    """
    root = checkpoint_root(run_dir)
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp"
    if dist_utils.is_main():
        root.mkdir(parents=True, exist_ok=True)
        for leftover in root.glob(".*.tmp"):  # from a save that crashed
            shutil.rmtree(leftover, ignore_errors=True)
        tmp.mkdir()
    dist_utils.barrier()
    try:
        _write_files(tmp, step, learner, state)
        fsync_tree(tmp)  # every rank: its own files are on disk before rank 0 renames
    except Exception as err:
        if not _disk_full(err, root):
            raise
        if dist_utils.is_main():
            shutil.rmtree(tmp, ignore_errors=True)  # give the space back
        previous = latest_checkpoint(run_dir)
        raise CheckpointError(
            f"no space left on {root} while writing checkpoint step {step} ({_free_mib(root)} MiB free); "
            f"{'the previous checkpoint ' + str(previous) + ' is intact' if previous else 'no checkpoint was saved'}. "
            "Free some space (or lower checkpoint.keep) and rerun to resume"
        ) from err
    dist_utils.barrier()

    if dist_utils.is_main():
        if final.exists():  # re-saving a step: set the old copy aside first (a leftover the next save removes)
            final.rename(root / f".step-{step:06d}.old.tmp")
        tmp.rename(final)
        fsync_dir(root)  # the new checkpoint is durable before any older one goes
        keep = max(1, learner.cfg.checkpoint.keep)
        for old in list_checkpoints(run_dir)[:-keep] + list(root.glob(".*.old.tmp")):
            shutil.rmtree(old, ignore_errors=True)
        fsync_dir(root)
    dist_utils.barrier()
    return final


def _write_files(tmp: Path, step: int, learner: Learner, state: dict[str, Any]) -> None:
    """This rank's part of a checkpoint (see `save_checkpoint`)."""
    from spiral.config.loader import to_yaml

    if learner.is_lora:
        _save_adapter(learner, tmp / "adapter")
    if not learner.is_lora or learner.cfg.checkpoint.save_merged:
        _save_hf_model(learner, tmp / "model")
    learner.ds_model.save_checkpoint(str(tmp / "deepspeed"), tag=_DS_TAG, save_latest=False)
    magnet_ref = learner.reference if learner.cfg.algo.magnet_ema > 0 else None
    if magnet_ref is not None and dist_utils.is_main():  # every rank holds the same full magnet
        from safetensors.torch import save_file

        magnet = {n: p.detach().to("cpu").contiguous() for n, p in magnet_ref.causal_lm.named_parameters()}
        save_file(magnet, str(tmp / _MAGNET_FILE))
    (tmp / "rng").mkdir(exist_ok=True)
    (tmp / "rng" / f"rank-{dist_utils.rank()}.json").write_text(json.dumps(_rng_state()))
    if dist_utils.is_main():
        layout = {"world_size": dist_utils.world_size(), "zero_stage": learner.cfg.trainer.zero_stage}
        text = json.dumps({"step": step, "learner": {"updates": learner.updates}, "layout": layout, "state": state},
                          indent=1)
        (tmp / "state.json").write_text(text)
        (tmp / "config.yaml").write_text(to_yaml(learner.cfg))


def _disk_full(err: BaseException, root: Path) -> bool:
    """Whether a failed write ran out of disk: ENOSPC anywhere in the chain, or (torch reports a full disk
    as a bare iostream error) next to no space left where the checkpoint goes."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC or "No space left" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return 0 <= _free_mib(root) < _NEARLY_FULL_MIB


def _free_mib(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free // 2**20
    except OSError:
        return -1


def _read_meta(path: Path) -> dict[str, Any]:
    meta_file = path / "state.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a complete spiral checkpoint (no state.json)")
    return json.loads(meta_file.read_text())


def saved_state(path: str | Path) -> dict[str, Any]:
    """The `state` dict a checkpoint was saved with (its JSON only: no weights are read)."""
    return dict(_read_meta(Path(path))["state"])


def checkpoint_step(path: str | Path) -> int:
    """The training step a complete checkpoint was saved after."""
    return int(_read_meta(Path(path))["step"])


def prepare_resume(path: str | Path) -> bool:
    """Call on every rank before building the learner that resumes from `path`. Returns whether it must
    load DeepSpeed's universal format (`Learner(load_universal=True)`).

    ZeRO 1-3 shard the optimizer state by rank, so a checkpoint saved by a different number of ranks is
    converted once with DeepSpeed's `ds_to_universal` into `deepspeed-universal/` beside the original
    (written under a temporary name and renamed; the original is left as it was).
    """
    path = Path(path)
    layout = _read_meta(path).get("layout", {})
    saved_world = int(layout.get("world_size", dist_utils.world_size()))
    if saved_world == dist_utils.world_size() or int(layout.get("zero_stage", 0)) == 0:
        return False
    target = path / _UNIVERSAL_DIR
    if dist_utils.is_main() and not target.is_dir():
        from argparse import Namespace

        from deepspeed.checkpoint.ds_to_universal import main as ds_to_universal

        tmp = path / f".{_UNIVERSAL_DIR}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with weights_only_loads(path / "deepspeed"):  # one worker each: the conversion stays in this process
            ds_to_universal(Namespace(input_folder=str(path / "deepspeed" / _DS_TAG), output_folder=str(tmp / _DS_TAG),
                                      num_extract_workers=1, num_merge_workers=1, keep_temp_folder=False, strict=True,
                                      inject_missing_state=True))
        tmp.rename(target)
    dist_utils.barrier()
    return True


def load_checkpoint(path: str | Path, learner: Learner) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and this rank's RNG from `path`; returns the saved state.

    The result is the `state` dict given to `save_checkpoint` with `step` added. A learner built with
    `load_universal` (see `prepare_resume`) reads the universal conversion instead of the rank shards.
    Nothing in the checkpoint can run code: DeepSpeed's files are read weights-only (see `safe_load`),
    the rest is JSON.
    """
    path = Path(path)
    meta = _read_meta(path)
    folder = path / (_UNIVERSAL_DIR if learner.load_universal else "deepspeed")
    with weights_only_loads(folder):
        loaded, _ = learner.ds_model.load_checkpoint(str(folder), tag=_DS_TAG, load_optimizer_states=True,
                                                   load_lr_scheduler_states=True)
    if loaded is None:
        raise RuntimeError(f"DeepSpeed could not load the training state in {folder}")
    _apply_optimizer_settings(learner)
    if learner.cfg.algo.magnet_ema > 0 and learner.reference is not None:
        _load_magnet(path / _MAGNET_FILE, learner.reference)
    learner.updates = int(meta["learner"]["updates"])
    rng = _load_rng_state(path / "rng")
    if rng is not None:
        _set_rng_state(rng)
    return {**meta["state"], "step": int(meta["step"])}


def _load_magnet(file: Path, reference: PolicyScorer) -> None:
    """Put the moving KL reference saved with a checkpoint back (safetensors: data only, no code)."""
    if not file.is_file():
        raise CheckpointError(f"{file.parent} has no {_MAGNET_FILE}: it was saved without algo.magnet_ema, so the "
                              "moving KL reference cannot be restored; resume with the config it was saved with")
    from safetensors.torch import load_file

    saved = load_file(str(file))
    with torch.no_grad():
        for name, param in reference.causal_lm.named_parameters():
            param.copy_(saved[name])


def _apply_optimizer_settings(learner: Learner) -> None:
    """Put the current config's trainer.lr, betas, adam_eps and weight_decay back after a load.

    Loading restores the optimizer's hyperparameters and the scheduler's base learning rate as they were
    saved, which would silently ignore a run resumed with new values (see `run.allow_config_change`).
    The schedule's shape (warm-up, decay, total steps) already comes from the current config.
    """
    tr = learner.cfg.trainer
    scheduler = learner.ds_model.lr_scheduler
    groups = scheduler.optimizer.param_groups  # the torch optimizer DeepSpeed steps (wrapped or not)
    scheduler.base_lrs = [tr.lr] * len(groups)
    for group, lr_lambda in zip(groups, scheduler.lr_lambdas):
        group.update(initial_lr=tr.lr, lr=tr.lr * lr_lambda(scheduler.last_epoch), betas=tuple(tr.betas),
                     eps=tr.adam_eps, weight_decay=tr.weight_decay)
    scheduler._last_lr = [group["lr"] for group in groups]  # what get_last_lr() reports until the next step


def iter_model_weights(model_dir: str | Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(HF name, tensor) pairs of a saved model directory, one safetensors shard at a time
    (what an engine's `load_weights` takes, e.g. to load a past checkpoint as an opponent)."""
    from safetensors.torch import load_file

    shards = sorted(Path(model_dir).glob("*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"no *.safetensors weights in {model_dir}")
    for shard in shards:
        yield from load_file(shard).items()

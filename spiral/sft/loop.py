"""`spiral sft`, top to bottom: game records → prompts and completions → weighted NLL steps → checkpoints → model.

Uses the same learner (DeepSpeed, LoRA, gradient checkpointing), checkpoints, metrics and torchrun support
as `spiral train`; only the loss differs. The result, `run.dir/model`, is an ordinary HF model directory.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

from spiral.config import SpiralConfig, to_yaml
from spiral.learner import distributed as dist
from spiral.learner.batching import shuffled_order
from spiral.learner.checkpoint import load_checkpoint, prepare_resume, save_checkpoint
from spiral.models import resolve_model_path
from spiral.rundir import resume_point
from spiral.seeding import derive_seed
from spiral.sft.data import SftDataError, SftExample, build_examples, play_records, read_records, split_records
from spiral.tracking import MetricsLogger
from spiral.types import GameRecord


def sft(cfg: SpiralConfig) -> Path:
    """Fine-tune `model.path` on the configured transcripts; returns the saved model directory."""
    from transformers import AutoTokenizer

    dist.init_distributed()
    run_dir = Path(cfg.run.dir)
    # One optimizer step per batch, so the learner's schedule spans `trainer.steps` steps; checkpoints hold
    # this config, so a resume compares against it.
    learner_cfg = replace(cfg, algo=replace(cfg.algo, epochs=1, minibatches=1, kl_coef=0.0))
    resume_from = resume_point(learner_cfg, run_dir, is_main=dist.is_main())
    model_path = resolve_model_path(cfg.model.path, seed=cfg.run.seed)

    # 1. Data: every kept turn of every game, replayed and rendered with the template training will use.
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=cfg.model.trust_remote_code)
    records = read_records(cfg.sft.data) if cfg.sft.data else _play(cfg)
    train_records, eval_records = split_records(records, cfg.sft.eval_fraction, cfg.run.seed)
    train_set, eval_set = (build_examples(part, tokenizer, cfg.rollout.template, keep=cfg.sft.filter,
                                          move_weight=cfg.sft.move_weight) for part in (train_records, eval_records))
    if not train_set:
        raise SftDataError(f"sft: {len(train_records)} training games hold no turn to learn from with "
                           f"sft.filter={cfg.sft.filter!r} (no winners? only invalid moves?)")

    if dist.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
    dist.barrier()

    # 2. The learner, as `spiral train` builds it.
    from spiral.learner.learner import Learner

    learner = Learner(learner_cfg, model_path, load_universal=resume_from is not None and prepare_resume(resume_from))
    start_step = int(load_checkpoint(resume_from, learner)["step"]) if resume_from is not None else 0
    logger = MetricsLogger(run_dir, enabled=dist.is_main(), console=cfg.logging.console,
                           wandb_project=cfg.logging.project if cfg.logging.wandb else None, run_name=cfg.run.name)
    logger.truncate_after(start_step)
    logger.note(f"sft: {len(train_set)} training and {len(eval_set)} held-out turns from {len(records)} games")

    steps = cfg.trainer.steps
    for step in range(start_step + 1, steps + 1):
        t0 = time.perf_counter()
        # 3. This step's batch: a fixed shuffle per pass over the data, so a resumed run sees the same batches.
        batch = _batch(len(train_set), cfg.sft.batch_size, step, cfg.run.seed)[dist.rank()::dist.world_size()]
        stats = learner.supervised_update([train_set[i].sample for i in batch], [train_set[i].weights for i in batch])
        metrics = {"sft/loss": stats["loss"], "train/grad_norm": stats["grad_norm"], "train/lr": stats["lr"],
                   "train/skipped": stats["skipped"], "sft/epoch": step * cfg.sft.batch_size / len(train_set)}
        if eval_set and ((cfg.sft.eval_every and step % cfg.sft.eval_every == 0) or step == steps):
            metrics["sft/eval_loss"] = _eval_loss(learner, eval_set)
        metrics["time/step"] = time.perf_counter() - t0
        logger.log(step, metrics, steps)
        # 4. Checkpoint (atomic), so a killed run resumes where it stopped.
        if (cfg.checkpoint.every and step % cfg.checkpoint.every == 0) or step == steps:
            save_checkpoint(run_dir, step, learner, {})
    logger.close()
    return _publish_model(run_dir)


def _play(cfg: SpiralConfig) -> list[GameRecord]:
    """Games between `sft.agents` on the fly; model agents run on an engine of `rollout.engine`."""
    from spiral.agents import is_model_spec, make_agent
    from spiral.agents.model import ModelAgent
    from spiral.rollout.engine_factory import create_engine_from_config
    from spiral.types import SamplingSettings

    engines = []
    try:
        agents = []
        for spec in cfg.sft.agents:
            if not is_model_spec(spec):
                agents.append(make_agent(spec, seed=cfg.run.seed))
                continue
            engines.append(create_engine_from_config(cfg, resolve_model_path(spec, seed=cfg.run.seed)))
            ro = cfg.rollout
            agents.append(ModelAgent(engines[-1], ro.template, SamplingSettings(ro.temperature, ro.top_p, ro.max_tokens),
                                     name=spec, action_constraint=ro.action_constraint))
        return play_records(agents, cfg.games, cfg.sft.episodes, cfg.run.seed)
    finally:
        for engine in engines:
            engine.close()


def _batch(n: int, size: int, step: int, seed: int) -> list[int]:
    """Example indices of optimizer step `step` (1-based): consecutive slices of a fresh permutation per pass."""
    orders: dict[int, list[int]] = {}
    out = []
    for position in range((step - 1) * size, step * size):
        epoch, offset = divmod(position, n)
        if epoch not in orders:
            orders[epoch] = shuffled_order(n, derive_seed(seed, "sft-order", epoch))
        out.append(orders[epoch][offset])
    return out


def _eval_loss(learner, examples: list[SftExample]) -> float:
    mine = examples[dist.rank()::dist.world_size()]
    return learner.supervised_loss([e.sample for e in mine], [e.weights for e in mine])


def _publish_model(run_dir: Path) -> Path:
    """`run.dir/model`: the last checkpoint's model directory, hard-linked (no copy) and swapped in atomically."""
    from spiral.learner.checkpoint import latest_checkpoint

    target = run_dir / "model"
    if dist.is_main():
        last = latest_checkpoint(run_dir)
        assert last is not None  # sft() saves its final step before publishing
        source = last / "model"
        tmp = run_dir / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp, copy_function=_link_or_copy)
        old = run_dir / ".model.old"
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return target


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)

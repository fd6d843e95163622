"""The SPIRAL training loop, top to bottom: collect self-play turns → RAE → PPO → sync → eval → log → save.

Reusable mechanics (engines, learner, checkpoints, distributed helpers) live in their packages;
this file keeps the algorithm visible. It runs alone or under torchrun, one engine per rank.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spiral.algo.rae import RoleBaselines, rae_advantages, state_key
from spiral.config import SpiralConfig, to_yaml
from spiral.learner import distributed as dist
from spiral.learner.checkpoint import (
    load_checkpoint,
    prepare_resume,
    save_checkpoint,
)
from spiral.learner.learner import Learner
from spiral.models import resolve_model_path
from spiral.rollout.collector import Collector, Rollout, write_transcripts
from spiral.rollout.engine import Engine
from spiral.rollout.engine_factory import create_engine_from_config
from spiral.rollout.opponents import Opponents
from spiral.rollout.ratings import PoolRatings, policy_result
from spiral.rundir import resume_point
from spiral.seeding import derive_seed
from spiral.tracking import MetricsLogger
from spiral.types import SamplingSettings, TurnSample

if TYPE_CHECKING:
    from spiral.eval.average_policy import PoolAverage


def train(cfg: SpiralConfig) -> Path:
    """Run (or resume) training as configured; returns the run directory."""
    if cfg.trainer.layout == "dedicated":
        from spiral.dedicated.run import train_dedicated

        return train_dedicated(cfg)
    dist.init_distributed()
    run_dir = Path(cfg.run.dir)
    resume_from = resume_point(cfg, run_dir, is_main=dist.is_main())
    if dist.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
    dist.barrier()

    # The policy: a DeepSpeed learner and, on the same device, an inference engine with the same weights.
    model_path = resolve_model_path(cfg.model.path, seed=cfg.run.seed)
    learner = Learner(cfg, model_path, load_universal=resume_from is not None and prepare_resume(resume_from))
    engine = create_engine_from_config(cfg, model_path)
    baselines = RoleBaselines(cfg.algo.rae.max_states)
    opponents = Opponents(cfg, model_path)
    eval_opponents = _eval_opponent_engines(cfg)
    average = _pool_average(cfg, opponents)
    ratings = PoolRatings(opponents.pool) if cfg.rollout.pool_ratings else None
    start_step = 0
    if resume_from is not None:
        state = load_checkpoint(resume_from, learner)
        start_step = int(state["step"])
        baselines.load_state_dict(state["rae"])
        opponents.pool.load_state_dict(state["opponent_pool"])
        if ratings is not None:
            ratings.load_state_dict(state.get("pool_ratings"))
        if cfg.rollout.opponent == "pool":  # the state was saved before its own checkpoint joined the pool
            opponents.pool.add(str(resume_from / "model"))
            if ratings is not None:
                ratings.join(str(resume_from / "model"), start_step)
        if average is not None:
            average.load()
        engine.load_weights(learner.named_weights(cfg.trainer.sync_bucket_mb))

    logger = MetricsLogger(run_dir, enabled=dist.is_main(), console=cfg.logging.console,
                           wandb_project=cfg.logging.project if cfg.logging.wandb else None,
                           run_name=cfg.run.name, config=_plain_config(cfg))
    logger.truncate_after(start_step)  # steps after the checkpoint are replayed, so drop their old rows
    samples_per_rank = math.ceil(cfg.rollout.samples_per_step / dist.world_size())

    if start_step == 0 and _due(cfg.eval.every, 0):
        logger.log(0, evaluate(cfg, engine, step=0, opponent_engines=eval_opponents, average=average), cfg.trainer.steps)

    for step in range(start_step + 1, cfg.trainer.steps + 1):
        timer = PhaseTimer()
        member = opponents.member_for_step(step)
        # A fresh collector per step seeded from (seed, rank, step): a resumed run replays exactly
        # the games an uninterrupted one would have played.
        collector = Collector(engine, cfg.games, cfg.rollout, opponent=opponents.for_step(step),
                              seed=derive_seed(cfg.run.seed, "rollout", dist.rank(), step))

        # 1. Self-play: many games at once, every pending turn in one generate call.
        with timer("rollout"):
            engine.wake()
            rollout = collector.collect(samples_per_rank)
            engine.sleep()

        # 2. Role-conditioned advantages from every rank's returns, in rank order (identical baselines).
        baselines_before = baselines.items()
        _assign_advantages(cfg, rollout.samples, baselines)
        train_samples = [s for s in rollout.samples if not (cfg.algo.filter_zero_advantage and s.advantage == 0.0)]

        # 3. PPO update (a non-finite loss or gradient skips the step and leaves the weights as they were).
        with timer("update"):
            update_stats = learner.update(train_samples, temperature=cfg.rollout.temperature)
            learner.move_magnet()

        # 4. Push the new weights into the engine, in buckets, no disk (a sleeping engine wakes as it loads).
        if step % cfg.trainer.sync_every == 0:
            with timer("sync"):
                engine.load_weights(learner.named_weights(cfg.trainer.sync_bucket_mb))

        # 5. Evaluate: games against opponents, Kuhn exploitability, benchmarks.
        metrics: dict[str, float] = {}
        if cfg.eval.every > 0 and (_due(cfg.eval.every, step) or step == cfg.trainer.steps):
            with timer("eval"):
                metrics.update(evaluate(cfg, engine, step, opponent_engines=eval_opponents, average=average))

        # 6. Log.
        metrics.update({("loss/policy" if k == "policy_loss" else f"train/{k}"): v for k, v in update_stats.items()})
        metrics.update(_rollout_metrics(rollout, dist.world_size()))
        metrics.update(rae_metrics(cfg, baselines_before, baselines))
        metrics.update(_advantage_metrics(rollout.samples))
        if ratings is not None:
            if member is not None:  # every rank's games, in rank order: the same ratings on every rank
                ratings.rate(member, [r for part in dist.gather_objects([policy_result(g) for g in rollout.records])
                                      for r in part])
            metrics.update(ratings.metrics())
        metrics.update(timer.metrics(rollout))
        if (peak := learner.peak_memory_gb()) is not None:
            metrics["perf/peak_memory_gb"] = peak
        if dist.world_size() > 1:  # replicas and baselines must agree on every rank
            metrics["dist/weights_divergence"] = learner.replica_divergence()
            rae_sum = sum(v for _, v in baselines.items())
            high, neg_low = dist.all_reduce_max([rae_sum, -rae_sum])
            metrics["dist/rae_divergence"] = high + neg_low
            metrics["dist/world_size"] = dist.world_size()
        if dist.is_main() and cfg.rollout.transcripts_every and step % cfg.rollout.transcripts_every == 0:
            write_transcripts(rollout.records, run_dir / "transcripts" / f"step-{step:06d}.jsonl")
        logger.log(step, metrics, cfg.trainer.steps)

        # 7. Checkpoint (atomic: written under a temporary name, then renamed).
        if _due(cfg.checkpoint.every, step) or step == cfg.trainer.steps:
            state = {"step": step, "rae": baselines.state_dict(), "opponent_pool": opponents.pool.state_dict()}
            if ratings is not None:
                state["pool_ratings"] = ratings.state_dict()
            if average is not None:  # the policy this checkpoint plays as a pool member, read out once
                state["policy"] = average.policy_at(step, engine, cfg.rollout.template,
                                                    _eval_sampling(cfg, step), cfg.eval.exploitability_samples)
            path = save_checkpoint(run_dir, step, learner, state)
            if cfg.rollout.opponent == "pool":
                opponents.pool.add(str(path / "model"))
                if ratings is not None:
                    ratings.join(str(path / "model"), step)
            if average is not None:
                average.add(str(path / "model"), state["policy"])
    logger.close()
    # Shut the engines down while the process group they were built beside still exists: left to vLLM's exit
    # hook, the shutdown runs after ours has destroyed the group and ends the run with a traceback.
    for opened in (engine, opponents.engine, *eval_opponents.values()):
        if opened is not None:
            opened.close()
    return run_dir


# -- the steps' helpers ----------------------------------------------------------------------------


def _assign_advantages(cfg: SpiralConfig, samples: list[TurnSample], baselines: RoleBaselines) -> None:
    """RAE over all ranks' samples in rank order; each rank keeps the advantages of its own samples."""
    everyone = dist.gather_objects(rae_rows(cfg, samples))
    advantages = rae_over_rows(cfg, [row for part in everyone for row in part], baselines)
    offset = sum(len(part) for part in everyone[: dist.rank()])
    for sample, adv in zip(samples, advantages[offset: offset + len(samples)]):
        sample.advantage = adv


def rae_rows(cfg: SpiralConfig, samples: list[TurnSample]) -> list[tuple[str, int, float, str | None]]:
    """What RAE needs of each sample, small enough to gather: game, seat, return and (per-state baselines) state."""
    per_state = cfg.algo.rae.baseline == "state"
    return [(s.game, s.seat, s.ret, state_key(s.prompt_ids) if per_state else None) for s in samples]


def rae_over_rows(cfg: SpiralConfig, rows: list[tuple[str, int, float, str | None]],
                  baselines: RoleBaselines) -> list[float]:
    """The advantages of `rae_rows`, in order, updating `baselines` as `algo.rae` says."""
    return rae_advantages([(game, seat) for game, seat, _, _ in rows], [ret for _, _, ret, _ in rows], baselines,
                          cfg.algo.rae.decay, enabled=cfg.algo.rae.enabled, states=[state for *_, state in rows])


def rae_metrics(cfg: SpiralConfig, before: list[tuple[tuple[str, int], float]],
                baselines: RoleBaselines) -> dict[str, float]:
    """The seats' baselines as they were before the step, and how many state baselines are kept."""
    metrics = {f"rae/baseline/{g}/seat{s}": v for (g, s), v in before}
    if cfg.algo.rae.baseline == "state":
        metrics["rae/states"] = float(baselines.num_states())
    return metrics


def evaluate(cfg: SpiralConfig, engine: Engine, step: int, opponent_engines: dict[str, Engine] | None = None,
             average: PoolAverage | None = None) -> dict[str, float]:
    """Online evaluation with the current engine weights: game report and benchmark subset (rank 0).

    `opponent_engines` serve the model opponents of `eval.opponents` (see `_eval_opponent_engines`); `average`
    (with `eval.average_policy`) adds the average policy's exploitability.
    """
    from spiral.eval.game_eval import evaluate_games

    if not dist.is_main():
        return {}
    ev = cfg.eval
    sampling = _eval_sampling(cfg, step)
    engine.wake()
    metrics: dict[str, float] = {}
    if ev.games:
        report = evaluate_games(engine, ev, cfg.rollout, seed=cfg.run.seed, sampling=sampling,
                                opponent_engines=opponent_engines)
        metrics.update(report.to_metrics())
        if average is not None:
            metrics.update(average.observe(step, report))
    if ev.benchmarks:
        from spiral.eval.bench_runner import run_benchmarks

        # Benchmarks are questions, not games: a `direct` game template still asks them in chat form.
        template = "qwen3_base" if cfg.rollout.template == "qwen3_base" else "chat"
        results = run_benchmarks(engine, ev.benchmarks, data_dir=ev.data_dir or None, samples=ev.samples,
                                 sampling=sampling, out_dir=Path(cfg.run.dir) / "bench" / f"step-{step:06d}",
                                 limit=ev.benchmark_limit, template=template, verbose=False)
        for name, res in results["metrics"].items():
            metrics[f"eval/bench/{name}/accuracy"] = res["accuracy"]
    return metrics


def _eval_sampling(cfg: SpiralConfig, step: int) -> SamplingSettings:
    """The evaluation's sampling settings at `step` (seeded per step)."""
    from spiral.eval.game_eval import eval_sampling

    return eval_sampling(cfg.eval, seed=derive_seed(cfg.run.seed, "eval", step))


def _pool_average(cfg: SpiralConfig, opponents: Opponents) -> PoolAverage | None:
    """With `eval.average_policy`, the pool's read-out policies (rank 0, which evaluates); else None."""
    from spiral.eval.average_policy import PoolAverage
    from spiral.eval.game_eval import exploitability_targets

    if not cfg.eval.average_policy or not dist.is_main():
        return None
    return PoolAverage(opponents.pool, exploitability_targets(cfg.eval.games))


def _rollout_metrics(rollout: Rollout, world: int) -> dict[str, float]:
    """Returns by game and seat, invalid/truncated rates, response lengths, summed over ranks."""
    sums: dict[str, float] = defaultdict(float)
    for s in rollout.samples:
        sums[f"returns/{s.game}/seat{s.seat}"] += s.ret
        sums[f"n/{s.game}/seat{s.seat}"] += 1
    local = [
        float(len(rollout.samples)), sum(len(s.completion_ids) for s in rollout.samples),
        sum(s.invalid for s in rollout.samples), sum(s.truncated for s in rollout.samples),
        sum(s.ret for s in rollout.samples), float(len(rollout.records)),
    ]
    keys = sorted(sums)
    names = dist.gather_objects(keys)
    all_keys = sorted({k for part in names for k in part})
    totals = dist.all_reduce_sum(local + [sums.get(k, 0.0) for k in all_keys])
    n, tokens, invalid, truncated, ret, games = totals[:6]
    out = {
        "rollout/samples": n, "rollout/tokens": tokens, "rollout/games": games,
        "rollout/response_length_mean": tokens / max(n, 1), "rollout/invalid_rate": invalid / max(n, 1),
        "rollout/truncated_rate": truncated / max(n, 1), "rollout/return_mean": ret / max(n, 1),
    }
    by_key = dict(zip(all_keys, totals[6:]))
    for key in all_keys:
        if key.startswith("returns/"):
            out[key] = by_key[key] / max(by_key["n/" + key[len("returns/"):]], 1)
    for key, value in rollout.stats.items():  # this rank's collector details (the totals above are global)
        if key == "turns_per_s":
            out["perf/rollout_turns_per_s"] = value
        elif key not in ("samples", "games", "invalid_rate", "truncated_rate", "response_len_mean", "seconds"):
            out[f"rollout/{key}"] = value
    return out


def _advantage_metrics(samples: list[TurnSample]) -> dict[str, float]:
    if not samples:
        return {}
    advs = [s.advantage for s in samples]
    mean = sum(advs) / len(advs)
    return {"advantage/mean": mean, "advantage/std": (sum((a - mean) ** 2 for a in advs) / len(advs)) ** 0.5,
            "advantage/min": min(advs), "advantage/max": max(advs)}


class PhaseTimer:
    """Wall time per phase of one step."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0

    def metrics(self, rollout: Rollout) -> dict[str, float]:
        total = time.perf_counter() - self.start
        out = {f"time/{k}": v for k, v in self.seconds.items()}
        out["time/step"] = total
        n, tokens = len(rollout.samples), sum(len(s.completion_ids) for s in rollout.samples)
        out["perf/samples_per_s"] = n / total
        if "rollout" in self.seconds:
            out["perf/rollout_tokens_per_s"] = tokens / max(self.seconds["rollout"], 1e-9)
        if "update" in self.seconds:  # every token the learner scores: prompts and completions
            scored = sum(len(s.prompt_ids) + len(s.completion_ids) for s in rollout.samples)
            out["perf/update_tokens_per_s"] = scored / max(self.seconds["update"], 1e-9)
        return out


def _due(every: int, step: int) -> bool:
    return every > 0 and step % every == 0


def _eval_opponent_engines(cfg: SpiralConfig) -> dict[str, Engine]:
    """An engine per model opponent in `eval.opponents`, built now on every rank and kept for the run.

    Only rank 0 evaluates, but building a vLLM engine under torchrun is collective (external-launcher mode):
    one built on rank 0 alone would wait forever for the other ranks.
    """
    from spiral.agents.factory import is_model_spec

    if cfg.eval.every <= 0 or not cfg.eval.games:
        return {}
    return {spec: create_engine_from_config(cfg, resolve_model_path(spec), secondary=True)
            for spec in dict.fromkeys(cfg.eval.opponents) if is_model_spec(spec)}


def _plain_config(cfg: SpiralConfig) -> dict[str, Any]:
    return asdict(cfg)

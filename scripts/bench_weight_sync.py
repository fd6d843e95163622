"""Time a full learner → engine weight sync against a plain state_dict copy of the same model.

Builds a random-init Qwen3 (hidden 1024, 8 layers; nothing downloaded), wraps it in the DeepSpeed
learner and an HFEngine, then times `engine.load_weights(learner.named_weights(bucket_mb))` and
`{k: v.clone() for k, v in state_dict().items()}` of the engine's (full, unpartitioned) copy of
the model. Last line: `RESULT sync_over_copy=<ratio>` (goal ≤ 2).

    python scripts/bench_weight_sync.py [--zero-stage 3] [--lora-r 0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from spiral.config.schema import SpiralConfig
from spiral.learner.learner import Learner
from spiral.models import resolve_model_path
from spiral.rollout.hf_engine import HFEngine


def build_model(out: Path, hidden: int, layers: int) -> Path:
    """A random-init Qwen3 of the given size with the built-in tokenizer, saved as an HF directory."""
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tiny = resolve_model_path("builtin:tiny")
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=3 * hidden,
                         num_hidden_layers=layers, num_attention_heads=hidden // 64, num_key_value_heads=hidden // 128,
                         head_dim=64, tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    Qwen3ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--zero-stage", type=int, default=2)
    parser.add_argument("--lora-r", type=int, default=0)
    parser.add_argument("--bucket-mb", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="spiral-bench-sync-"))
    try:
        path = str(build_model(workdir / "model", args.hidden, args.layers))
        cfg = SpiralConfig()
        cfg.model.dtype = "auto"
        cfg.trainer.zero_stage = args.zero_stage
        cfg.model.lora.r = args.lora_r
        learner = Learner(cfg, path)
        engine = HFEngine(path, dtype=cfg.model.dtype, device=learner.device)
        n_params = sum(t.numel() for _, t in learner.named_weights(args.bucket_mb))
        print(f"model: {n_params / 1e6:.1f}M parameters, dtype {learner.dtype}, device {learner.device}, "
              f"ZeRO {args.zero_stage}, LoRA r={args.lora_r}")

        def sync() -> None:
            engine.load_weights(learner.named_weights(args.bucket_mb))
            if learner.device.type == "cuda":
                torch.cuda.synchronize()

        def copy() -> None:
            _ = {k: v.clone() for k, v in engine.model.state_dict().items()}
            if learner.device.type == "cuda":
                torch.cuda.synchronize()

        sync()  # warm-up (and a check that every name is accepted)
        copy()
        t_sync = best_of(args.repeats, sync)
        t_copy = best_of(args.repeats, copy)
        print(f"sync {t_sync * 1e3:.1f} ms, state_dict copy {t_copy * 1e3:.1f} ms (best of {args.repeats})")
        print(f"RESULT sync_over_copy={t_sync / t_copy:.2f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark per-token log-prob scoring: spiral.kernels.token_logprobs against the naive full-vocabulary fp32
log_softmax and against the peers' own code where it is importable, on the same inputs.

Methods (the peers are skipped, with the reason printed, when their package cannot be imported or run here):
- naive: full [tokens, vocab] logits, fp32 log_softmax, gather (the reference every other method is checked against);
- rowloop: full logits, then one log_softmax per row in the logits' dtype: the pattern of TRL's
  `selective_log_softmax` for bf16, kept as a stand-in where trl is not importable;
- trl_selective: TRL's `trl.trainer.utils.selective_log_softmax` on full logits;
- trl_chunked: TRL's `trl.kernels.ChunkedLogProbFunction` (chunked like ours; what GRPOTrainer scores with in
  TRL 1.16), at GRPOTrainer's vocabulary tile of 32,768;
- liger_flce: Liger-Kernel's fused linear cross-entropy (`reduction="none"`, so the loss is -log-prob; Triton on
  a GPU only; no temperature argument, so the hidden states are divided by it first);
- ours (or ours@CHUNK for each --chunk-size): `token_logprobs`.

Each (vocab, method) runs in a fresh subprocess so that one method's freed memory cannot hide another's. Peak
extra memory is measured as:
- CUDA: torch.cuda.max_memory_allocated() minus memory allocated before the call;
- CPU: the kernel's peak-RSS high-water mark (VmHWM, reset by writing 5 to /proc/self/clear_refs)
  minus the RSS before the call. This sees every page torch touches. The workers run with a fixed glibc mmap
  threshold (MALLOC_MMAP_THRESHOLD_=131072) so that every freed buffer goes back to the kernel and the mark counts
  live tensors, not heap pages glibc keeps after a free (which made the figures depend on what ran before).
Time is wall-clock (after torch.cuda.synchronize on CUDA), the median of --repeats after a small warm-up.
The tables give each method's memory and time relative to ours (above 1: ours leads). The last line is
`RESULT memory_ratio=<naive/ours> time_ratio=<ours/naive> <peer>_lead=<peer/ours memory>,<peer/ours time> ...`
for the largest vocab, forward only.

    python scripts/bench_logprobs.py                      # CPU: 4096 tokens, hidden 1024, bf16
    python scripts/bench_logprobs.py --tokens 8192 --hidden 2560   # e.g. on a GPU
    python scripts/bench_logprobs.py --chunk-size 256 512 1024 2048 --vocab 151936   # ours at several chunks
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEERS = ("rowloop", "trl_selective", "trl_chunked", "liger_flce")
TRL_VOCAB_TILE = 32768  # GRPOTrainer's chunk width over the vocabulary (trl/trainer/utils.py, TRL 1.16)


def _naive(hidden, weight, targets, temperature):
    logits = hidden @ weight.t()
    log_probs = (logits.float() / temperature).log_softmax(dim=-1)
    return log_probs.gather(1, targets[:, None]).squeeze(1)


def _rowloop(hidden, weight, targets, temperature):
    import torch

    logits = hidden @ weight.t()
    rows = [(row / temperature).log_softmax(dim=-1)[target] for row, target in zip(logits, targets)]
    return torch.stack(rows).float()


def _trl_selective(hidden, weight, targets, temperature):
    from trl.trainer.utils import selective_log_softmax

    return selective_log_softmax(hidden @ weight.t(), targets, temperature=temperature).float()


def _trl_chunked(hidden, weight, targets, temperature):
    from trl.kernels import ChunkedLogProbFunction

    return ChunkedLogProbFunction.apply(hidden, weight, None, targets, temperature, TRL_VOCAB_TILE, None, 1.0, ())[0]


def _liger_flce(hidden, weight, targets, temperature):
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    scaled = hidden if temperature == 1.0 else hidden / temperature
    return -liger_fused_linear_cross_entropy(scaled, weight, targets, reduction="none").float()


def _ours(hidden, weight, targets, temperature, chunk_size):
    from spiral.kernels import token_logprobs

    return token_logprobs(hidden, weight, targets, temperature=temperature, chunk_size=chunk_size)[0]


def _unavailable(method: str, device: str) -> str | None:
    """Why `method` cannot run here (None when it can)."""
    try:
        if method.startswith("trl_"):
            import trl

            if method == "trl_selective":
                from trl.trainer.utils import selective_log_softmax  # noqa: F401
            else:
                from trl.kernels import ChunkedLogProbFunction  # noqa: F401
            del trl
        elif method == "liger_flce":
            from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy  # noqa: F401

            if device != "cuda":
                return "Liger's fused linear cross-entropy is a Triton kernel for GPUs"
    except ImportError as err:
        return f"not importable ({err})"
    return None


class _PeakMemory:
    """Peak extra memory of the enclosed block, in bytes (see the module docstring for the method)."""

    def __init__(self, device):
        self.device = device

    @staticmethod
    def _rss_kb(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"{field} not in /proc/self/status")

    def __enter__(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")
            self.base = self._rss_kb("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.peak = self._rss_kb("VmHWM") * 1024 - self.base


def _worker(args) -> None:
    """Measure one method on one vocab size; print a JSON line and save the log-probs."""
    import torch

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    gen = torch.Generator(device="cpu").manual_seed(0)
    hidden = torch.randn(args.tokens, args.hidden, generator=gen).to(device, dtype)
    weight = (torch.randn(args.vocab, args.hidden, generator=gen) / args.hidden**0.5).to(device, dtype)
    targets = torch.randint(0, args.vocab, (args.tokens,), generator=gen).to(device)
    name, _, chunk = args.method.partition("@")
    method = {"naive": _naive, "rowloop": _rowloop, "trl_selective": _trl_selective, "trl_chunked": _trl_chunked,
              "liger_flce": _liger_flce,
              "ours": lambda *a: _ours(*a, chunk_size=int(chunk))}[name]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def run(backward: bool):
        h = hidden.detach().requires_grad_(backward)
        w = weight.detach().requires_grad_(backward)
        out = method(h, w, targets, args.temperature)
        if backward:
            out.sum().backward()
        sync()
        return out.detach()

    result = {}
    for mode in ("forward", "forward+backward") if args.backward else ("forward",):
        backward = mode != "forward"
        try:
            # warm-up on a few tokens so one-time library setup is not timed
            small = slice(0, min(8, args.tokens))
            method(hidden[small].detach(), weight, targets[small], args.temperature)
            times, peak = [], 0
            for _ in range(args.repeats):
                with _PeakMemory(device) as mem:
                    start = time.perf_counter()
                    out = run(backward)
                    times.append(time.perf_counter() - start)
                peak = max(peak, mem.peak)
                if not backward:
                    torch.save(out.cpu(), args.save)
                del out
        except Exception as err:  # a peer's failure is reported in its row; ours or naive failing ends the run
            if name not in PEERS:
                raise
            result[mode] = {"error": f"{type(err).__name__}: {err}"}
            continue
        result[mode] = {"time_s": statistics.median(times), "peak_bytes": peak}
    print("JSON " + json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--vocab", type=int, nargs="+", default=[32000, 151936])
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--chunk-size", type=int, nargs="+", default=None,
                        help="token chunk(s) for ours (default: trainer.logprob_chunk's default)")
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=PEERS,
                        help="peer methods to try (default: all; each is skipped when it cannot run here)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-backward", dest="backward", action="store_false",
                        help="skip the forward+backward table")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--method", help=argparse.SUPPRESS)  # worker mode
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.method:
        args.vocab = args.vocab[0]
        _worker(args)
        return 0

    import torch

    from spiral.config.schema import TrainerConfig

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    chunks = args.chunk_size or [TrainerConfig().logprob_chunk]
    ours = [f"ours@{c}" for c in chunks]
    peers = []
    for peer in args.peers:
        reason = _unavailable(peer, args.device)
        if reason:
            print(f"skipped {peer}: {reason}")
        else:
            peers.append(peer)
    methods = ["naive", *peers, *ours]
    print(f"device={args.device} tokens={args.tokens} hidden={args.hidden} dtype={args.dtype} "
          f"temperature={args.temperature} repeats={args.repeats} torch={torch.__version__} methods={','.join(methods)}")
    results: dict[int, dict[str, dict]] = {}
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}  # see the module docstring
    with tempfile.TemporaryDirectory() as tmp:
        for vocab in args.vocab:
            outputs = {}
            for method in methods:
                save = str(Path(tmp) / f"{vocab}-{method}.pt")
                cmd = [sys.executable, __file__, "--method", method, "--save", save, "--vocab", str(vocab),
                       "--tokens", str(args.tokens), "--hidden", str(args.hidden), "--dtype", args.dtype,
                       "--temperature", str(args.temperature), "--repeats", str(args.repeats),
                       "--device", args.device]
                if not args.backward:
                    cmd.append("--no-backward")
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    print(proc.stdout + proc.stderr, file=sys.stderr)
                    return 1
                line = next(x for x in proc.stdout.splitlines() if x.startswith("JSON "))
                results.setdefault(vocab, {})[method] = json.loads(line[5:])
                if Path(save).exists():
                    outputs[method] = torch.load(save)
            for method in methods[1:]:
                if method in outputs:
                    diff = (outputs[method] - outputs["naive"]).abs().max().item()
                    print(f"vocab {vocab}: max |{method} - naive| log-prob = {diff:.2e}")

    reference = ours[0]
    modes = ("forward", "forward+backward") if args.backward else ("forward",)
    for mode in modes:
        print(f"\n{mode} (÷ {reference}: above 1, {reference} leads)")
        print(f"{'vocab':>8} {'method':>14} {'peak extra MiB':>15} {'time s':>8} {'memory ÷ ours':>14} {'time ÷ ours':>12}")
        for vocab, by_method in results.items():
            base = by_method[reference][mode]
            for method in methods:
                r = by_method[method][mode]
                if "error" in r:
                    print(f"{vocab:>8} {method:>14}  failed: {r['error'][:120]}")
                    continue
                print(f"{vocab:>8} {method:>14} {r['peak_bytes'] / 2**20:>15.1f} {r['time_s']:>8.3f} "
                      f"{r['peak_bytes'] / max(base['peak_bytes'], 1):>13.2f}x {r['time_s'] / base['time_s']:>11.2f}x")
    largest = results[max(results)]
    ours_fwd = largest[reference]["forward"]
    fields = [f"memory_ratio={largest['naive']['forward']['peak_bytes'] / max(ours_fwd['peak_bytes'], 1):.2f}",
              f"time_ratio={ours_fwd['time_s'] / largest['naive']['forward']['time_s']:.3f}"]
    for peer in peers:
        r = largest[peer]["forward"]
        if "error" not in r:
            fields.append(f"{peer}_lead={r['peak_bytes'] / max(ours_fwd['peak_bytes'], 1):.2f},"
                          f"{r['time_s'] / ours_fwd['time_s']:.2f}")
    print("RESULT " + " ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())

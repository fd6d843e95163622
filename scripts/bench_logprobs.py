"""Benchmark per-token log-prob scoring: naive full-vocab fp32 log_softmax, a TRL-style row loop, and
spiral.kernels.token_logprobs, on the same inputs, for several vocabulary sizes.

Each (vocab, method) runs in a fresh subprocess so that one method's freed memory cannot hide
another's. Peak extra memory is measured as:
- CUDA: torch.cuda.max_memory_allocated() minus memory allocated before the call;
- CPU: the kernel's peak-RSS high-water mark (VmHWM, reset by writing 5 to /proc/self/clear_refs)
  minus the RSS before the call. This sees every page torch touches.
Time is wall-clock (after torch.cuda.synchronize on CUDA), best of --repeats after a small warm-up.
The last line is `RESULT memory_ratio=<naive/ours> time_ratio=<ours/naive>` for the largest vocab,
forward only.

    python scripts/bench_logprobs.py                      # CPU: 4096 tokens, hidden 1024, bf16
    python scripts/bench_logprobs.py --tokens 8192 --hidden 2560   # e.g. on a GPU
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ("naive", "rowloop", "ours")


def _naive(hidden, weight, targets, temperature):
    logits = hidden @ weight.t()
    log_probs = (logits.float() / temperature).log_softmax(dim=-1)
    return log_probs.gather(1, targets[:, None]).squeeze(1)


def _rowloop(hidden, weight, targets, temperature):
    # TRL's selective_log_softmax pattern: full logits, then a logsumexp per row to avoid a second
    # full-size log_softmax buffer.
    import torch

    logits = hidden @ weight.t()
    rows = []
    for row, target in zip(logits, targets):
        z = row.float() / temperature
        rows.append(z[target] - torch.logsumexp(z, dim=-1))
    return torch.stack(rows)


def _ours(hidden, weight, targets, temperature, chunk_size):
    from spiral.kernels import token_logprobs

    return token_logprobs(hidden, weight, targets, temperature=temperature, chunk_size=chunk_size)[0]


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
    method = {"naive": _naive, "rowloop": _rowloop,
              "ours": lambda *a: _ours(*a, chunk_size=args.chunk_size)}[args.method]

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
        # warm-up on a few tokens so one-time library setup is not timed
        small = slice(0, min(8, args.tokens))
        method(hidden[small].detach(), weight, targets[small], args.temperature)
        best_time, peak = float("inf"), 0
        for _ in range(args.repeats):
            with _PeakMemory(device) as mem:
                start = time.perf_counter()
                out = run(backward)
                elapsed = time.perf_counter() - start
            best_time, peak = min(best_time, elapsed), max(peak, mem.peak)
            if not backward:
                torch.save(out.cpu(), args.save)
            del out
        result[mode] = {"time_s": best_time, "peak_bytes": peak}
    print("JSON " + json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--vocab", type=int, nargs="+", default=[32000, 151936])
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="token chunk for ours (default: 1024 on CUDA, 256 on CPU)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-backward", dest="backward", action="store_false",
                        help="skip the forward+backward table")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)  # worker mode
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.chunk_size is None:
        args.chunk_size = 1024 if args.device == "cuda" else 256
    if args.method:
        args.vocab = args.vocab[0]
        _worker(args)
        return 0

    import torch

    print(f"device={args.device} tokens={args.tokens} hidden={args.hidden} dtype={args.dtype} "
          f"temperature={args.temperature} chunk_size(ours)={args.chunk_size} repeats={args.repeats}")
    results: dict[int, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for vocab in args.vocab:
            outputs = {}
            for method in METHODS:
                save = str(Path(tmp) / f"{vocab}-{method}.pt")
                cmd = [sys.executable, __file__, "--method", method, "--save", save, "--vocab", str(vocab),
                       "--tokens", str(args.tokens), "--hidden", str(args.hidden), "--dtype", args.dtype,
                       "--temperature", str(args.temperature), "--chunk-size", str(args.chunk_size),
                       "--repeats", str(args.repeats), "--device", args.device]
                if not args.backward:
                    cmd.append("--no-backward")
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(proc.stdout + proc.stderr, file=sys.stderr)
                    return 1
                line = next(x for x in proc.stdout.splitlines() if x.startswith("JSON "))
                results.setdefault(vocab, {})[method] = json.loads(line[5:])
                outputs[method] = torch.load(save)
            for method in ("rowloop", "ours"):
                diff = (outputs[method] - outputs["naive"]).abs().max().item()
                print(f"vocab {vocab}: max |{method} - naive| log-prob = {diff:.2e}")

    modes = ("forward", "forward+backward") if args.backward else ("forward",)
    for mode in modes:
        print(f"\n{mode}")
        print(f"{'vocab':>8} {'method':>8} {'peak extra MiB':>15} {'time s':>8} {'mem vs naive':>13} {'time vs naive':>14}")
        for vocab, by_method in results.items():
            naive = by_method["naive"][mode]
            for method in METHODS:
                r = by_method[method][mode]
                print(f"{vocab:>8} {method:>8} {r['peak_bytes'] / 2**20:>15.1f} {r['time_s']:>8.3f} "
                      f"{naive['peak_bytes'] / max(r['peak_bytes'], 1):>12.1f}x {r['time_s'] / naive['time_s']:>13.2f}x")
    largest = results[max(results)]
    memory_ratio = largest["naive"]["forward"]["peak_bytes"] / max(largest["ours"]["forward"]["peak_bytes"], 1)
    time_ratio = largest["ours"]["forward"]["time_s"] / largest["naive"]["forward"]["time_s"]
    print(f"RESULT memory_ratio={memory_ratio:.2f} time_ratio={time_ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

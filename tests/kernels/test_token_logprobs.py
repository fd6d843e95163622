"""token_logprobs (chunked torch path) against the naive full-vocabulary computation, input checks,
and scoring real tiny Qwen3 models: plain, tied embeddings, peft-LoRA."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spiral.kernels import lm_head_weight, token_logprobs
from tests.kernels.helpers import check_against_naive, naive_token_logprobs

# (tokens, hidden, vocab, chunk): ragged last chunk; a single token; chunk larger than the input.
SHAPES = [(37, 16, 1000, 8), (1, 8, 333, 1024), (5, 24, 4099, 64)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("temperature", [0.6, 1.0, 1.7])
@pytest.mark.parametrize("with_entropy", [False, True], ids=["lp", "lp+entropy"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_torch_path_matches_naive(dtype, temperature, with_entropy, shape):
    check_against_naive(token_logprobs, dtype, temperature, with_entropy, shape, backend="torch")


def test_auto_backend_on_cpu_without_bias():
    check_against_naive(token_logprobs, torch.float32, 1.0, True, (20, 16, 700, 6), backend="auto", with_bias=False)


# Peak extra resident memory of one bf16 chunk's forward and of its backward, each in MiB, measured in a fresh
# process by the kernel's high-water mark (VmHWM, reset through /proc/self/clear_refs).
_PEAK_SCRIPT = """
from pathlib import Path
import torch
from spiral.kernels import token_logprobs

def rss_kb(field):
    return next(int(x.split()[1]) for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field))

def peak_mib(fn):
    Path("/proc/self/clear_refs").write_text("5")
    base = rss_kb("VmRSS:")
    result = fn()
    return result, (rss_kb("VmHWM:") - base) / 1024

gen = torch.Generator().manual_seed(0)
tokens, hidden, vocab = 256, 64, 65536
h = torch.randn(tokens, hidden, generator=gen).bfloat16().requires_grad_()
w = (torch.randn(vocab, hidden, generator=gen) / 8).bfloat16()
t = torch.randint(0, vocab, (tokens,), generator=gen)
run = lambda n: token_logprobs(h[:n], w, t[:n], backend="torch", chunk_size=tokens)[0].sum()
run(8).backward()  # one-time set-up outside the measurement
loss, forward = peak_mib(lambda: run(tokens))
_, backward = peak_mib(loss.backward)
print(forward, backward)
"""


@pytest.mark.slow  # ~90 s on 2 cores: bf16 matmuls without bf16 instructions
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures memory through Linux /proc")
def test_torch_path_holds_the_chunk_and_one_fp32_block():
    """A 256 x 65,536 bf16 chunk (32 MiB) needs one fp32 block of 64 rows (16 MiB) beside it: the log-softmax and its
    gradient are computed in fp32 a block of rows at a time, never over an fp32 copy of the whole chunk (measured: 48
    MiB forward and backward; 96 with the fp32 copy of the chunk that the previous version made)."""
    # A fixed mmap threshold makes glibc return every freed large buffer to the kernel, so the high-water mark counts
    # live tensors only, not heap pages the allocator keeps after a free.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    proc = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT], capture_output=True, text=True, timeout=1200,
                          cwd=Path(__file__).parents[2], env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    forward, backward = map(float, proc.stdout.split())
    bound = 32 + 16 + 16  # MiB: the chunk, one fp32 block, slack for per-token vectors and the allocator
    assert forward < bound and backward < bound, (forward, backward)


# Gradients only in fp32, where the reference's are representable; in bf16/fp16 they are rounded to the dtype and
# their agreement is test_torch_path_matches_naive's.
@pytest.mark.parametrize(("dtype", "backward"), [(torch.float32, False), (torch.bfloat16, False),
                                                 (torch.float16, False), (torch.float32, True)],
                         ids=["fp32", "bf16", "fp16", "fp32-gradients"])
def test_torch_path_is_exact_against_float64(dtype, backward):
    """Given the logits in the model's dtype, log-probs and entropy are those of a float64 log-softmax to fp32
    rounding (the entropy to that of its fp32 sum), across chunks and across the fp32 row blocks inside a chunk
    (65,536 columns: 64-row blocks; 150 tokens in chunks of 128). One-hot hidden rows make every logit a weight entry,
    exact in any dtype, so the reference sees the same logits whatever the GEMM's blocking. Gradients are checked in
    fp32, where the reference's are representable. (A log-softmax in bf16, as TRL's selective_log_softmax does for bf16 logits, is
    off by up to 0.06 nats at a 151,936-token vocabulary.)"""
    tokens, hidden_size, vocab, chunk, temperature = 150, 16, 65536, 128, 0.7
    gen = torch.Generator().manual_seed(3)
    hidden = torch.nn.functional.one_hot(torch.arange(tokens) % hidden_size, hidden_size).to(dtype).requires_grad_()
    weight = (torch.randn(vocab, hidden_size, generator=gen) * 3).to(dtype).requires_grad_()
    bias = torch.randn(vocab, generator=gen).requires_grad_()
    targets = torch.randint(0, vocab, (tokens,), generator=gen)
    lp, ent = token_logprobs(hidden, weight, targets, temperature=temperature, bias=bias, return_entropy=True,
                             backend="torch", chunk_size=chunk)

    inputs64 = [x.detach().double().requires_grad_() for x in (hidden, weight, bias)]
    log_p64 = torch.log_softmax((inputs64[0] @ inputs64[1].t() + inputs64[2]) / temperature, dim=-1)
    ref_lp, ref_ent = log_p64.gather(1, targets[:, None]).squeeze(1), -(log_p64.exp() * log_p64).sum(-1)
    torch.testing.assert_close(lp.double(), ref_lp, atol=2e-5, rtol=0)
    torch.testing.assert_close(ent.double(), ref_ent, atol=2e-5, rtol=3e-5)  # a sum over 65,536 fp32 terms
    if backward:
        grad_lp, grad_ent = torch.randn(tokens, generator=gen), torch.randn(tokens, generator=gen)
        grads = torch.autograd.grad((lp * grad_lp).sum() + (ent * grad_ent).sum(), [hidden, weight, bias])
        ref_grads = torch.autograd.grad((ref_lp * grad_lp.double()).sum() + (ref_ent * grad_ent.double()).sum(),
                                        inputs64)
        for g, ref in zip(grads, ref_grads):
            assert (g.double() - ref).abs().max() <= 1e-4 * ref.abs().max()  # fp32 GEMMs over 65,536 terms


def test_frozen_weight_gives_hidden_grad_only():
    hidden = torch.randn(6, 8, requires_grad=True)
    weight = torch.randn(50, 8)
    targets = torch.randint(0, 50, (6,))
    lp, _ = token_logprobs(hidden, weight, targets, chunk_size=4)
    (grad,) = torch.autograd.grad(lp.sum(), [hidden])
    ref, _ = naive_token_logprobs(hidden, weight, targets)
    (ref_grad,) = torch.autograd.grad(ref.sum(), [hidden])
    torch.testing.assert_close(grad, ref_grad, atol=1e-5, rtol=1e-5)


def test_empty_input():
    lp, ent = token_logprobs(torch.zeros(0, 8), torch.randn(10, 8), torch.zeros(0, dtype=torch.long),
                             return_entropy=True)
    assert lp.shape == (0,) and ent.shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"targets": torch.tensor([0, 10])}, r"targets must lie in \[0, 10\)"),
        ({"targets": torch.tensor([0, -1])}, r"targets must lie"),
        ({"targets": torch.tensor([0])}, "shape"),
        ({"weight": torch.randn(10, 5)}, "hidden size mismatch"),
        ({"weight": torch.randn(10, 4, dtype=torch.float64)}, "share a dtype"),
        ({"hidden": torch.randn(1, 2, 4)}, "flatten"),
        ({"bias": torch.randn(9)}, "bias must have shape"),
        ({"temperature": 0.0}, "temperature"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"backend": "cuda"}, "unknown backend"),
    ],
)
def test_bad_input_is_refused_clearly(kwargs, message):
    args = {"hidden": torch.randn(2, 4), "weight": torch.randn(10, 4), "targets": torch.tensor([1, 2])}
    args.update(kwargs)
    hidden, weight, targets = args.pop("hidden"), args.pop("weight"), args.pop("targets")
    with pytest.raises(ValueError, match=message):
        token_logprobs(hidden, weight, targets, **args)


def test_triton_backend_on_cpu_without_interpreter_is_refused(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        token_logprobs(torch.randn(2, 4), torch.randn(10, 4), torch.tensor([1, 2]), backend="triton")


# --- real tiny models -------------------------------------------------------------------------------


def _tiny_qwen3(tie: bool):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                         tie_word_embeddings=tie)
    torch.manual_seed(0)
    return Qwen3ForCausalLM(config)


def _batch():
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, 512, (2, 9), generator=gen)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, :3] = 0  # left padding
    return input_ids, attention_mask


def _model_logprobs(model, input_ids, attention_mask, temperature, use_kernel, hidden_from_base=False):
    """Log-probs of each next token at the real (unpadded) positions, via the logits or the kernel."""
    targets = input_ids[:, 1:]
    keep = attention_mask[:, 1:].bool() & attention_mask[:, :-1].bool()
    if not use_kernel:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
        log_probs = torch.log_softmax(logits.float() / temperature, dim=-1)
        return log_probs.gather(-1, targets[..., None]).squeeze(-1)[keep]
    if hidden_from_base:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        hidden = base.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    else:
        hidden = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states[-1]
    weight, bias = lm_head_weight(model)
    lp, _ = token_logprobs(hidden[:, :-1][keep], weight, targets[keep], temperature=temperature, bias=bias,
                           chunk_size=5)
    return lp


def _grads(model, loss):
    params = [p for p in model.parameters() if p.requires_grad]
    return dict(zip([n for n, p in model.named_parameters() if p.requires_grad], torch.autograd.grad(loss, params)))


def _check_model(model, hidden_from_base=False):
    input_ids, attention_mask = _batch()
    ref = _model_logprobs(model, input_ids, attention_mask, 0.7, use_kernel=False)
    ours = _model_logprobs(model, input_ids, attention_mask, 0.7, use_kernel=True, hidden_from_base=hidden_from_base)
    scored = int((attention_mask[:, 1:] & attention_mask[:, :-1]).sum())
    assert ours.shape == ref.shape == (scored,)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    weights = torch.linspace(-1, 1, ref.numel())
    ref_grads = _grads(model, (ref * weights).sum())
    our_grads = _grads(model, (ours * weights).sum())
    assert ref_grads.keys() == our_grads.keys() and ref_grads
    for name in ref_grads:
        torch.testing.assert_close(our_grads[name], ref_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    return ref_grads


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_plain_model_scoring_matches_model_logits(tie):
    model = _tiny_qwen3(tie)
    weight, bias = lm_head_weight(model)
    assert bias is None
    assert (weight is model.get_input_embeddings().weight) == tie
    grads = _check_model(model)
    # tied: the one embedding matrix gets both the lookup and the LM-head gradient
    assert ("lm_head.weight" in grads) != tie


@pytest.mark.parametrize("hidden_from_base", [False, True], ids=["output_hidden_states", "base_model"])
def test_lora_model_scoring_matches_model_logits(hidden_from_base):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_tiny_qwen3(tie=True),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    weight, _ = lm_head_weight(model)
    assert weight is model.get_base_model().model.embed_tokens.weight and not weight.requires_grad
    grads = _check_model(model, hidden_from_base=hidden_from_base)
    assert grads and all("lora_" in name for name in grads)


def test_lora_adapted_lm_head_is_refused():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_tiny_qwen3(tie=False), LoraConfig(r=4, target_modules=["q_proj", "lm_head"]))
    with pytest.raises(ValueError, match="adapter"):
        lm_head_weight(model)


def test_lm_head_in_modules_to_save_resolves_to_trainable_copy():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_tiny_qwen3(tie=False),
                           LoraConfig(r=4, target_modules=["q_proj"], modules_to_save=["lm_head"]))
    weight, _ = lm_head_weight(model)
    assert weight.requires_grad
    assert weight is model.get_base_model().lm_head.modules_to_save["default"].weight
    _check_model(model)

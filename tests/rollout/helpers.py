"""Helpers for the engine tests: chat prompts, reference log-probs by one transformers forward, rigged weights."""

from __future__ import annotations

import torch

TINY = "builtin:tiny"


def chat_prompt(tokenizer, text: str) -> list[int]:
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                             tokenize=False)
    return tokenizer.encode(rendered, add_special_tokens=False)


def reference_logprobs(model, prompt: list[int], completion: list[int], temperature: float = 1.0) -> torch.Tensor:
    """log_softmax(logits / T) of each completion token, by one unpadded transformers forward pass."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt + completion], device=model.device)).logits[0, len(prompt) - 1:-1].float()
    logprobs = torch.log_softmax(logits.cpu() / temperature, -1)
    return logprobs.gather(1, torch.tensor(completion)[:, None]).squeeze(1)


def eos_loving_weights(model, eos_id: int, scale: float = 0.1) -> tuple[dict[str, torch.Tensor], float]:
    """Weights under which, after any non-eos token, eos is the most likely next token, and its exact log-prob.

    Every token embeds to the all-`scale` vector u except eos (2u); attention and MLP outputs are zeroed, so the
    last hidden state is u, the final RMSNorm (weight 1) maps it to (nearly) the all-ones vector, and the tied output
    layer gives logit ~d*scale to every token and twice that to eos (d = hidden size).
    """
    weights = {k: v.detach().clone() for k, v in model.named_parameters()}
    vocab, hidden = weights["model.embed_tokens.weight"].shape
    embed = torch.full((vocab, hidden), scale)
    embed[eos_id] *= 2
    weights["model.embed_tokens.weight"] = embed
    weights["model.norm.weight"] = torch.ones(hidden)
    for name in weights:
        if name.endswith(("o_proj.weight", "down_proj.weight")):
            weights[name] = torch.zeros_like(weights[name])
    normed = scale / (scale**2 + model.config.rms_norm_eps) ** 0.5  # each component of RMSNorm(u)
    base, eos_logit = hidden * scale * normed, 2 * hidden * scale * normed
    lse = torch.logsumexp(torch.tensor([eos_logit] + [base] * (vocab - 1), dtype=torch.float64), 0)
    return weights, float(eos_logit - lse)

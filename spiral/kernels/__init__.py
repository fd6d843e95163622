"""Log-prob, entropy and KL scoring of scored tokens without full [tokens, vocabulary] fp32 logits."""

from spiral.kernels.lm_head import lm_head_weight
from spiral.kernels.logprobs import token_logprobs
from spiral.kernels.vocab_kl import vocab_kl

__all__ = ["lm_head_weight", "token_logprobs", "vocab_kl"]

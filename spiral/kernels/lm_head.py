"""Find the output-embedding (LM head) weight of a causal LM: plain, tied or peft-wrapped."""

from __future__ import annotations

from torch import Tensor, nn


def lm_head_weight(model: nn.Module) -> tuple[Tensor, Tensor | None]:
    """(weight [V, H], bias [V] or None) of the model's output embeddings.

    With tied embeddings this is the input-embedding parameter itself, so gradients from
    `token_logprobs` accumulate into it alongside the embedding-lookup gradients. A peft model
    forwards `get_output_embeddings` to its base model; a head in `modules_to_save` resolves to the
    active trainable copy. A LoRA-adapted head is refused: its `.weight` is the frozen base weight
    and scoring with it would silently drop the adapter.
    """
    get_output_embeddings = getattr(model, "get_output_embeddings", None)
    head = get_output_embeddings() if callable(get_output_embeddings) else None
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output embeddings (get_output_embeddings() gave None)")
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        BaseTunerLayer = ()  # noqa: N806 - without peft no module can be an adapter layer
    if isinstance(head, BaseTunerLayer):
        raise ValueError(
            "the LM head carries a peft adapter (lm_head in target_modules); token_logprobs would ignore "
            "the adapter. Leave lm_head out of target_modules, or list it in modules_to_save instead"
        )
    weight = getattr(head, "weight", None)
    if not isinstance(weight, Tensor) or weight.dim() != 2:
        raise ValueError(f"output embeddings {type(head).__name__} have no 2-D weight")
    bias = getattr(head, "bias", None)
    return weight, bias if isinstance(bias, Tensor) else None

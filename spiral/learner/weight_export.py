"""The policy's full weights as HF-named tensors, bucket by bucket: LoRA merged, ZeRO-3 partitions gathered.

One exporter for every consumer: the colocated engine's in-place reload, the dedicated layout's broadcast to
actor ranks, and the HF model directory of a checkpoint. Training weights are never modified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from torch import Tensor, nn

Bucket = list[tuple[str, Tensor]]


def _is_zero3_param(p: Tensor) -> bool:
    return hasattr(p, "ds_id")


def _nbytes(p: Tensor) -> int:
    """A parameter's full size (under ZeRO-3 the local tensor is an empty placeholder)."""
    return (p.ds_numel if _is_zero3_param(p) else p.numel()) * p.element_size()


def weight_buckets(model: nn.Module, bucket_mb: int, lora: bool = False) -> Iterator[Bucket]:
    """(HF parameter name, tensor) pairs of `model` (a transformers causal LM, peft-wrapped layers inside when
    `lora`) in model order, grouped into buckets of about `bucket_mb` MiB (a larger tensor is a bucket alone).

    Under ZeRO-3 each bucket's parameters are gathered together and the tensors are copies; every rank must
    iterate (the gathers are collective). Otherwise they are the live parameters (detached): copy them
    before the next optimizer step.
    """
    import deepspeed

    units = _weight_units(model, lora)
    zero3 = any(_is_zero3_param(p) for _, ps, _ in units for p in ps)
    limit = bucket_mb * 2**20
    bucket: list[tuple[str, list[Tensor], Callable[[], Tensor]]] = []
    size = 0
    for unit in units + [None]:
        unit_bytes = 0 if unit is None else sum(_nbytes(p) for p in unit[1])
        if bucket and (unit is None or size + unit_bytes > limit):
            if zero3:
                params = [p for _, ps, _ in bucket for p in ps]
                with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
                    ready = [(name, compute().clone()) for name, _, compute in bucket]
            else:
                ready = [(name, compute()) for name, _, compute in bucket]
            yield ready
            bucket, size = [], 0
        if unit is not None:
            bucket.append(unit)
            size += unit_bytes


def _weight_units(model: nn.Module, lora: bool) -> list[tuple[str, list[Tensor], Callable[[], Tensor]]]:
    """(HF name, parameters it needs, function producing the tensor) for every model weight."""
    units: list[tuple[str, list[Tensor], Callable[[], Tensor]]] = []
    lora_modules: dict[str, nn.Module] = {}
    if lora:
        from peft.tuners.lora import LoraLayer

        lora_modules = {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    handled: set[str] = set()
    for prefix, module in lora_modules.items():
        base = module.get_base_layer()
        adapters = [a for a in module.active_adapters if a in module.lora_A]
        needed = [base.weight] + [p for a in adapters for p in (module.lora_A[a].weight, module.lora_B[a].weight)]

        def merged(base: nn.Module = base, module: nn.Module = module, adapters: list[str] = adapters) -> Tensor:
            w = base.weight.detach()
            for a in adapters:
                # get_delta_weight returns a fresh tensor: add into it rather than allocating again.
                w = module.get_delta_weight(a).to(w.dtype).add_(w)
            return w

        units.append((f"{prefix}.weight", needed, merged))
        handled.add(f"{prefix}.base_layer.weight")
        if getattr(base, "bias", None) is not None:
            units.append((f"{prefix}.bias", [base.bias], partial(Tensor.detach, base.bias)))
            handled.add(f"{prefix}.base_layer.bias")
    for name, p in model.named_parameters():
        if name in handled or ".lora_" in name:
            continue
        units.append((name.replace(".base_layer.", "."), [p], partial(Tensor.detach, p)))
    return units

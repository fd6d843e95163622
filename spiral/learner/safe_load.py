"""Reading training state without running code from it.

A `torch.load` of a full pickle can run any command stored in the file, and DeepSpeed loads its
checkpoints that way (`weights_only=False` throughout deepspeed 0.19's checkpoint engines). Inside
`weights_only_loads`, every `torch.load` in the process, DeepSpeed's included, uses torch's
weights-only unpickler instead (`TORCH_FORCE_WEIGHTS_ONLY_LOAD`, read by `torch.load` at each call):
tensors, plain containers and the few DeepSpeed data classes listed below, nothing else. A file that
needs more is refused with a message saying how to load it anyway from a source you trust.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from spiral.errors import SpiralError

TRUST_ENV = "SPIRAL_TRUST_CHECKPOINT"
"""Set to 1 to load checkpoints with full pickles (only for checkpoints from a source you trust)."""

_FORCE_ENV = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"


class UnsafeCheckpointError(SpiralError):
    """A checkpoint file holds Python objects that only a full (code-running) unpickle could build."""


def trusted() -> bool:
    """Whether the user opted in to full unpickling with SPIRAL_TRUST_CHECKPOINT=1."""
    return os.environ.get(TRUST_ENV, "") == "1"


def _deepspeed_globals() -> list[type]:
    """The non-tensor objects in DeepSpeed's ZeRO optimizer state: the loss scaler, the stage enum and
    the parameter-slice addresses (`state_dict` in deepspeed/runtime/zero/stage_1_and_2.py and stage3.py).
    Each is rebuilt from plain fields; none runs code when unpickled."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


@contextmanager
def weights_only_loads(what: str | Path) -> Iterator[None]:
    """Every `torch.load` inside reads tensors and plain data only (unless SPIRAL_TRUST_CHECKPOINT=1);
    a file holding anything else raises `UnsafeCheckpointError` naming `what`."""
    if trusted():
        yield
        return
    previous = os.environ.get(_FORCE_ENV)
    os.environ[_FORCE_ENV] = "1"
    try:
        with torch.serialization.safe_globals(_deepspeed_globals()):
            yield
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"refusing to load {what}: {unpickling_reason(err)}. Loading such a pickle can run any code, so spiral reads "
            f"only tensors and plain data from checkpoints; if you trust whoever made this checkpoint, rerun "
            f"with {TRUST_ENV}=1 to load it in full"
        ) from None
    finally:
        if previous is None:
            os.environ.pop(_FORCE_ENV, None)
        else:
            os.environ[_FORCE_ENV] = previous


def pickled_model_message(what: str, err: pickle.UnpicklingError) -> str:
    """One line for a model file (`pytorch_model.bin`) that transformers' weights-only loading refused."""
    return (f"refusing to load {what}: {unpickling_reason(err)}; model weights are read as plain tensors only. "
            "If you trust its source, load it once with transformers and re-save it as safetensors "
            "(save_pretrained(..., safe_serialization=True))")


def unpickling_reason(err: pickle.UnpicklingError) -> str:
    """The line of torch's weights-only error that names what the file wanted to build."""
    text = str(err)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return f"it contains the Python object {found.group(1)}, which is not plain data"
    detail = re.search(r"WeightsUnpickler error: (.+)", text)
    return f"it is not plain data ({detail.group(1).strip() if detail else text.splitlines()[0]})"

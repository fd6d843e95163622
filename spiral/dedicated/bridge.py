"""The process group between learner rank 0 (bridge rank 0) and the actors (bridge rank 1 + actor index).

Samples travel as pickled messages, point to point, actor → learner. Weights travel learner → every actor
as one broadcast per bucket: a header (names, dtypes, shapes) and the bucket's bytes in one flat buffer
(gloo on CPU; on CUDA the buffers go over NCCL, the headers over gloo). Every wait is bounded by
`trainer.bridge_timeout_s`, and a peer that dies or stops answering becomes a `BridgeError` naming its rank.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from spiral.dedicated.roles import Roles
from spiral.errors import SpiralError

Bucket = list[tuple[str, torch.Tensor]]


class BridgeError(SpiralError):
    """A rank on the other side of the bridge died or timed out."""

    exit_code = 1


class Bridge:
    """One side's end of the bridge (learner rank 0 or an actor)."""

    def __init__(self, roles: Roles, timeout_s: float) -> None:
        self.roles = roles
        self.rank = 0 if not roles.is_actor else 1 + roles.actor_index
        self.size = 1 + roles.actors
        timeout = timedelta(seconds=timeout_s)
        # The job's rendezvous store (torchrun's agent hosts it), under a prefix of the bridge's own.
        store = dist.TCPStore(roles.master_addr, roles.master_port, is_master=False, timeout=timeout)
        self._objects = dist.ProcessGroupGloo(dist.PrefixStore("spiral-bridge/objects", store), self.rank, self.size,
                                              timeout)
        self._device = torch.device("cpu")
        self._tensors: Any = self._objects
        if torch.cuda.is_available():
            options = dist.ProcessGroupNCCL.Options()
            options._timeout = timeout
            self._tensors = dist.ProcessGroupNCCL(dist.PrefixStore("spiral-bridge/tensors", store), self.rank,
                                                  self.size, options)
            self._device = torch.device("cuda", torch.cuda.current_device())

    def close(self) -> None:
        """Shut the groups down while the interpreter is whole: left to its shutdown, gloo's worker threads can
        outlive it and abort the process (see `distributed._destroy_process_group`)."""
        for group in {id(g): g for g in (self._objects, self._tensors)}.values():
            group.shutdown()

    def _peer(self, bridge_rank: int) -> str:
        if bridge_rank == 0:
            return "learner rank 0"
        return f"actor {bridge_rank - 1} (rank {self.roles.actor_rank(bridge_rank - 1)})"

    def _wait(self, work: Any, what: str, peer: int | None) -> None:
        try:
            work.wait()
        except RuntimeError as err:  # gloo/NCCL report a dead peer or a timeout this way
            who = self._peer(peer) if peer is not None else f"one of {self._peer(0)}, actors 0-{self.size - 2}"
            raise BridgeError(
                f"{who} stopped answering while {what} ({err}); the job stops. The last checkpoint is intact: "
                "rerun to resume from it"
            ) from err

    # -- messages (actor → learner) ------------------------------------------------------------------

    def send(self, obj: Any, dst: int) -> None:
        """Send a picklable message to bridge rank `dst`."""
        data = torch.frombuffer(bytearray(pickle.dumps(obj)), dtype=torch.uint8)
        self._wait(self._objects.send([torch.tensor([data.numel()], dtype=torch.int64)], dst, 0), "sending", dst)
        self._wait(self._objects.send([data], dst, 0), "sending", dst)

    def recv(self, src: int) -> Any:
        """The next message from bridge rank `src`."""
        size = torch.zeros(1, dtype=torch.int64)
        self._wait(self._objects.recv([size], src, 0), "waiting for its message", src)
        data = torch.empty(int(size.item()), dtype=torch.uint8)
        self._wait(self._objects.recv([data], src, 0), "waiting for its message", src)
        return pickle.loads(data.numpy().tobytes())

    # -- weights (learner → every actor) --------------------------------------------------------------

    def _broadcast_object(self, obj: Any) -> Any:
        opts = dist.BroadcastOptions()
        opts.rootRank = 0
        if self.rank == 0:
            data = torch.frombuffer(bytearray(pickle.dumps(obj)), dtype=torch.uint8)
            size = torch.tensor([data.numel()], dtype=torch.int64)
        else:
            size = torch.zeros(1, dtype=torch.int64)
        self._wait(self._objects.broadcast([size], opts), "broadcasting weights", None if self.rank == 0 else 0)
        if self.rank != 0:
            data = torch.empty(int(size.item()), dtype=torch.uint8)
        self._wait(self._objects.broadcast([data], opts), "broadcasting weights", None if self.rank == 0 else 0)
        return pickle.loads(data.numpy().tobytes())

    def send_weights(self, header: dict[str, Any], buckets: Iterable[Bucket]) -> None:
        """Learner rank 0: broadcast `header` (the version and what else actors need), then each bucket."""
        self._broadcast_object(header)
        for bucket in buckets:
            self._broadcast_object([(name, t.dtype, tuple(t.shape)) for name, t in bucket])
            flat = torch.cat([t.detach().contiguous().reshape(-1).view(torch.uint8) for _, t in bucket])
            self._broadcast_flat(flat.to(self._device))
        self._broadcast_object(None)

    def _broadcast_flat(self, flat: torch.Tensor) -> None:
        opts = dist.BroadcastOptions()
        opts.rootRank = 0
        self._wait(self._tensors.broadcast([flat], opts), "broadcasting weights", None if self.rank == 0 else 0)

    def recv_weights(self) -> tuple[dict[str, Any], Iterator[tuple[str, torch.Tensor]]]:
        """Actor: the next broadcast's header and its weights, streamed bucket by bucket as the iterator is
        consumed (consume it whole before the next bridge call)."""
        header = self._broadcast_object(None)

        def stream() -> Iterator[tuple[str, torch.Tensor]]:
            while (meta := self._broadcast_object(None)) is not None:
                sizes = [torch.Size(shape).numel() * torch.empty(0, dtype=dtype).element_size()
                         for _, dtype, shape in meta]
                flat = torch.empty(sum(sizes), dtype=torch.uint8, device=self._device)
                self._broadcast_flat(flat)
                offset = 0
                for (name, dtype, shape), size in zip(meta, sizes):
                    # A copy: each tensor gets storage aligned for its dtype.
                    yield name, flat[offset: offset + size].clone().view(dtype).reshape(shape)
                    offset += size

        return header, stream()

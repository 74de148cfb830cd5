"""Running under torchrun: which rank this process is, and the few collectives we need.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them this is one process of
one, and every function here is a no-op. The process group uses gloo on CPU and
nccl on CUDA.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from emo_toolkit.runtime.errors import RankZeroFailed

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


ONE_PROCESS = Ranks()


def ranks_from_env() -> Ranks:
    env = os.environ
    return Ranks(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)),
                 int(env.get("LOCAL_RANK", 0)))


def init(device: str = "cpu") -> Ranks:
    """Join torchrun's process group (once); returns this process's ranks."""
    ranks = ranks_from_env()
    if ranks.distributed and not dist.is_initialized():
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")
    return ranks


def local_device(device: str, ranks: Ranks) -> str:
    """Each rank on a node takes its own GPU: cuda -> cuda:LOCAL_RANK."""
    if device == "cuda" and ranks.distributed:
        return f"cuda:{ranks.local_rank}"
    return device


def shard(items: Sequence[T], ranks: Ranks) -> list[T]:
    """This rank's share: every world_size-th item, so no two ranks take the same one."""
    return list(items[ranks.rank::ranks.world_size])


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()


def gather(obj: Any, ranks: Ranks) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not ranks.distributed:
        return [obj]
    out: list[Any] = [None] * ranks.world_size
    dist.all_gather_object(out, obj)
    return out


class _SumAcrossProcesses(torch.autograd.Function):
    """all_reduce(SUM) that gradients flow through: the gradient of each process's input
    is the sum of every process's output gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.contiguous().clone()
        dist.all_reduce(out)
        return out


def sum_across(x: torch.Tensor) -> torch.Tensor:
    """`x` summed over all processes (differentiable); a process group must exist."""
    return _SumAcrossProcesses.apply(x)


def on_main(fn: Callable[[], T], ranks: Ranks) -> T:
    """Run `fn` on rank 0 alone and hand its result to every rank. If it raises, rank 0
    raises that error and the others raise RankZeroFailed, instead of waiting forever."""
    if not ranks.distributed:
        return fn()
    box: list[Any] = [None]
    if ranks.is_main:
        try:
            box[0] = (True, fn())
        except Exception as e:
            dist.broadcast_object_list([(False, f"{type(e).__name__}: {e}")], src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise RankZeroFailed(f"rank 0 stopped: {value}")
    return value


def finish(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()

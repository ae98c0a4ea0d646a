"""Multi-GPU / multi-node training with ``torch.distributed`` (launched by ``torchrun``).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; each process trains on its share of every
global batch (see ``Trainer.local_indices``) and DDP averages the gradients, so the result
equals a single-process run with the same total batch up to floating-point noise.
"""
from __future__ import annotations

import os

from .trainer import Distributed


def distributed_from_env(device: str = "auto") -> Distributed:
    """Join the process group torchrun prepared; a plain single process when there is none."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    import torch
    import torch.distributed as tdist
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
    return Distributed(rank, world, local)


def finish_distributed(dist: Distributed) -> None:
    if dist.active:
        import torch.distributed as tdist
        if tdist.is_initialized():
            tdist.destroy_process_group()

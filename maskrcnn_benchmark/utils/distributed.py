"""Join the process group started by torchrun (or the old ``torch.distributed.launch``)."""
from __future__ import annotations

import datetime
import logging
import os
from typing import Optional, Tuple

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


def init_distributed(args_local_rank: Optional[int] = None, device_type: Optional[str] = None,
                     timeout_s: Optional[float] = None) -> Tuple[bool, int, torch.device]:
    """Return ``(distributed, local_rank, device)`` and initialise the process group if needed.

    ``WORLD_SIZE`` > 1 in the environment means distributed. The local rank comes
    from ``LOCAL_RANK`` (torchrun), else from ``--local_rank``/``--local-rank``
    (``args_local_rank``), else 0. ``device_type`` is "cuda" or "cpu" (default:
    cuda when available); CUDA processes use NCCL and one GPU each, CPU processes
    use gloo. ``timeout_s`` bounds the rendezvous and every collective of the group (torch's
    default when None): a collective that waits longer for a dead or hung rank raises instead.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if "LOCAL_RANK" in os.environ:
        local_rank = int(os.environ["LOCAL_RANK"])
    else:
        local_rank = args_local_rank if args_local_rank is not None else 0
    if device_type is None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    device_type = torch.device(device_type).type
    if device_type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("MODEL.DEVICE asks for cuda but CUDA is not available; use MODEL.DEVICE cpu")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    elif device_type == "cpu":
        device = torch.device("cpu")
    else:
        raise ValueError(f"Unsupported device type {device_type!r}: use cuda or cpu")
    distributed = world_size > 1
    if distributed and not dist.is_initialized():
        timeout = None if timeout_s is None else datetime.timedelta(seconds=timeout_s)
        if device_type == "cuda":
            dist.init_process_group(backend="nccl", init_method="env://", device_id=device, timeout=timeout)
            dist.barrier(device_ids=[local_rank])
        else:
            dist.init_process_group(backend="gloo", init_method="env://", timeout=timeout)
            dist.barrier()
        logger.info("Joined process group: rank %d of %d (%s, local rank %d)", dist.get_rank(), world_size,
                    dist.get_backend(), local_rank)
    return distributed, local_rank, device

"""Process-group helpers that also work when torch.distributed is not initialised."""
from typing import Any

import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes; a no-op for a single process."""
    if get_world_size() > 1:
        dist.barrier()


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process (``obj`` itself for a single process)."""
    if get_world_size() == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]

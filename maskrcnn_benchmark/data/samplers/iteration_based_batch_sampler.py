"""Turn an epoch-based batch sampler into a fixed number of iterations."""
from __future__ import annotations

from typing import Iterator, List, Protocol

from torch.utils.data import Sampler


class _BatchSampler(Protocol):
    def __iter__(self) -> Iterator[List[int]]: ...

    def __len__(self) -> int: ...


class IterationBasedBatchSampler(Sampler[List[int]]):
    """Yield batches for iterations ``start_iter .. num_iterations - 1``.

    Training is measured in iterations (SOLVER.MAX_ITER), not epochs, so the
    wrapped batch sampler is re-iterated as often as needed. Before each pass
    the inner sampler's ``set_epoch`` (when it has one) receives the global
    iteration at which that pass starts, as in the benchmark, so an
    uninterrupted run draws exactly the benchmark's sequence of shuffles.

    Resuming: the pass boundaries of the uninterrupted run are replayed from
    iteration 0 (whole passes are skipped by their ``len``, the pass holding
    ``start_iter`` is iterated and its leading batches dropped). A run resumed
    at ``start_iter`` therefore yields exactly the tail of the uninterrupted
    run. The benchmark instead reseeds with ``start_iter`` itself, which gives
    the same batches only when ``start_iter`` is a pass boundary.
    """

    def __init__(self, batch_sampler: _BatchSampler, num_iterations: int, start_iter: int = 0) -> None:
        if not 0 <= start_iter <= num_iterations:
            raise ValueError(f"start_iter {start_iter} is outside [0, {num_iterations}]")
        self.batch_sampler = batch_sampler
        self.num_iterations = num_iterations
        self.start_iter = start_iter

    def _set_epoch(self, iteration: int) -> None:
        sampler = getattr(self.batch_sampler, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(iteration)

    def __iter__(self) -> Iterator[List[int]]:
        iteration = 0
        while iteration < self.num_iterations:
            self._set_epoch(iteration)
            pass_length = len(self.batch_sampler)
            if pass_length == 0:
                raise RuntimeError("the wrapped batch sampler yields no batches")
            if iteration + pass_length <= self.start_iter:
                iteration += pass_length
                continue
            for batch in self.batch_sampler:
                if iteration >= self.num_iterations:
                    return
                if iteration >= self.start_iter:
                    yield batch
                iteration += 1

    def __len__(self) -> int:
        """The full run length ``num_iterations``, as in the benchmark.

        Trainers read ``max_iter = len(data_loader)``; when resuming, only
        ``num_iterations - start_iter`` batches are actually yielded.
        """
        return self.num_iterations

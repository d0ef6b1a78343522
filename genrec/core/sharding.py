"""This process's share of a job split over the processes of ``accelerate launch``.

One process (a plain run) does everything. Under ``accelerate launch --multi_gpu --num_processes N``
(on a machine without GPUs too: the processes then talk over gloo) process r does the pieces
r, r + N, r + 2N, ... and ``barrier`` waits for all of them, as training already runs.
"""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Shard:
    rank: int = 0
    world: int = 1
    barrier: Callable[[], None] = field(default=lambda: None, repr=False)
    device: str | None = None  # the process's device under accelerate (None: wherever the model is)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mine(self, count: int) -> range:
        """The pieces 0..count-1 this process does."""
        return range(self.rank, count, self.world)


def is_main_process() -> bool:
    """Whether this process reports and writes shared files: the only one, or rank 0 of
    ``accelerate launch`` (its RANK variable; the one place genrec reads it)."""
    return os.environ.get("RANK", "0") == "0"


def world_size() -> int:
    """How many processes the launch started (``accelerate launch``'s WORLD_SIZE; 1 without one)."""
    return int(os.environ.get("WORLD_SIZE") or "1")


def current_shard() -> Shard:
    """The shard of this process: the whole job unless launched as several processes."""
    if world_size() <= 1:
        return Shard()
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return Shard(state.process_index, state.num_processes, state.wait_for_everyone, str(state.device))


def release_process_group() -> None:
    """Tear down torch.distributed's default group, if this process has one, after freeing what
    still holds it. A DDP wrapper sits in a reference cycle, so its reducer (which owns a handle on
    the group) is freed by the garbage collector at an arbitrary later moment; if that moment comes
    after ``destroy_process_group``, the gloo group's destructor joins its worker threads from inside
    the collector and can block forever. Collecting first frees every wrapper while the group is
    still registered; the group then goes last, with nothing left using it."""
    if "torch.distributed" not in sys.modules:  # never imported: no group to release
        return
    import torch.distributed as dist

    gc.collect()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

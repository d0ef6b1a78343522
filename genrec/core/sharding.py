"""This process's share of a job split over the processes of ``accelerate launch``.

One process (a plain run) does everything. Under ``accelerate launch --multi_gpu --num_processes N``
(on a machine without GPUs too: the processes then talk over gloo) process r does the pieces
r, r + N, r + 2N, ... and ``barrier`` waits for all of them, as training already runs.
"""

from __future__ import annotations

import os
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


def current_shard() -> Shard:
    """The shard of this process: the whole job unless launched as several processes."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Shard()
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return Shard(state.process_index, state.num_processes, state.wait_for_everyone, str(state.device))

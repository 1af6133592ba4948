"""An endless, seeded, stateless sampler of dataset indices, so training resumes on the exact next image."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for one epoch's permutation, from a hash of (seed, epoch).

    A hash rather than `seed + epoch * prime`: no two (seed, epoch) pairs of a run share a permutation, and
    sha256 gives the same value on every platform and Python version (unlike the built-in `hash`).
    """
    digest = hashlib.sha256(f"cips3d-sampler:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class InfiniteSampler(Sampler[int]):
    """Yields dataset indices forever; a DataLoader `sampler`.

    Positions p = 0, 1, 2, ... count every index drawn by all ranks together. Position p is item
    p % size of epoch p // size, and epoch e is `torch.randperm(size)` drawn from a generator seeded with
    `epoch_seed(seed, e)` (the identity when `shuffle` is False). Each epoch therefore visits every index
    exactly once. Rank r of `world_size` yields positions start + r, start + r + world_size, ..., so the
    ranks split every batch without overlap.

    The sampler keeps no state between draws: everything follows from the position. To resume training
    exactly, pass `start` = the number of positions consumed so far across all ranks (images seen, e.g.
    steps * batch size per rank * world_size); images the DataLoader had prefetched but the trainer never
    used are drawn again, as they should be. The permutations come from `torch.randperm`, so a resume is
    exact as long as the PyTorch version, and hence its randperm algorithm, is unchanged.

    Args:
        size: number of dataset items (with xflip, the doubled length).
        seed: seed of the shuffle.
        shuffle: permute each epoch; if False, yield 0, 1, ..., size - 1 over and over.
        start: first global position (0 for a new run).
        rank: this process's rank in [0, world_size).
        world_size: number of processes sharing the positions.
    """

    def __init__(
        self,
        size: int,
        seed: int = 0,
        shuffle: bool = True,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if size < 1:
            raise ValueError(f"InfiniteSampler needs a dataset of at least 1 item, got size {size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank {rank} of world_size {world_size}")
        if start < 0:
            raise ValueError(f"start must be a position >= 0, got {start}")
        super().__init__()
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.start = start
        self.rank = rank
        self.world_size = world_size

    def permutation(self, epoch: int) -> torch.Tensor:
        """int64 [size]: the order in which epoch `epoch` visits the indices."""
        if not self.shuffle:
            return torch.arange(self.size)
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        return torch.randperm(self.size, generator=generator)

    def index_at(self, position: int) -> int:
        """The dataset index at global position `position` (any rank). Costs one permutation, O(size)."""
        if position < 0:
            raise ValueError(f"position must be >= 0, got {position}")
        epoch, offset = divmod(position, self.size)
        return int(self.permutation(epoch)[offset])

    def __iter__(self) -> Iterator[int]:
        # The current epoch's permutation lives in this generator frame, not on the sampler, so two
        # iterators of one sampler never interfere and the sampler stays a pure description.
        position = self.start + self.rank
        epoch, order = -1, []
        while True:
            pos_epoch, offset = divmod(position, self.size)
            if pos_epoch != epoch:
                epoch, order = pos_epoch, self.permutation(pos_epoch).tolist()
            yield order[offset]
            position += self.world_size

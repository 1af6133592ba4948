"""InfiniteSampler: deterministic, a permutation per epoch, exact resume, disjoint ranks."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import DataLoader

from cips3d.data.sampler import InfiniteSampler, epoch_seed


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_the_same_seed_gives_the_same_sequence_and_another_seed_another():
    first = take(InfiniteSampler(50, seed=3), 200)
    assert first == take(InfiniteSampler(50, seed=3), 200)
    assert first != take(InfiniteSampler(50, seed=4), 200)
    assert first[:50] != list(range(50))


def test_every_epoch_visits_every_index_once_in_a_new_order():
    size = 17
    sequence = take(InfiniteSampler(size, seed=0), 5 * size)
    epochs = [sequence[e * size : (e + 1) * size] for e in range(5)]
    for epoch in epochs:
        assert sorted(epoch) == list(range(size))
    assert len({tuple(epoch) for epoch in epochs}) == 5


def test_epoch_e_is_randperm_seeded_by_the_hash_of_seed_and_epoch():
    assert epoch_seed(0, 0) == epoch_seed(0, 0) and 0 <= epoch_seed(0, 0) < 2**63
    assert epoch_seed(1, 0) != epoch_seed(0, 1)  # no seed + epoch collision
    sampler = InfiniteSampler(11, seed=5)
    expected = torch.randperm(11, generator=torch.Generator().manual_seed(epoch_seed(5, 2)))
    assert take(InfiniteSampler(11, seed=5, start=22), 11) == expected.tolist()
    assert torch.equal(sampler.permutation(2), expected)


def test_epoch_seeds_are_pinned_so_old_runs_resume():
    # sha256 of "cips3d-sampler:0:0" and ":1:7": changing the hash would silently break old resumes.
    assert epoch_seed(0, 0) == 2666879756357018033
    assert epoch_seed(1, 7) == 8299708783505725657


@pytest.mark.parametrize("start", [1, 9, 10, 23, 57])
def test_resuming_at_start_continues_the_sequence_exactly(start):
    full = take(InfiniteSampler(10, seed=7), 100)
    assert take(InfiniteSampler(10, seed=7, start=start), 100 - start) == full[start:]


def test_index_at_agrees_with_iteration():
    sampler = InfiniteSampler(13, seed=2)
    sequence = take(sampler, 40)
    assert [sampler.index_at(p) for p in range(40)] == sequence
    assert take(sampler, 40) == sequence  # iterating twice: the sampler kept no state


def test_ranks_split_the_positions_without_overlap():
    size, world = 12, 3
    full = take(InfiniteSampler(size, seed=1, start=5), 3 * size)
    for rank in range(world):  # together the ranks draw each global position exactly once
        sampler = InfiniteSampler(size, seed=1, start=5, rank=rank, world_size=world)
        assert take(sampler, size) == full[rank::world]
    per_rank = [
        take(InfiniteSampler(size, seed=1, rank=r, world_size=world), size // world) for r in range(world)
    ]
    assert sorted(itertools.chain(*per_rank)) == list(range(size))  # one epoch, shared without overlap


def test_without_shuffle_the_indices_go_in_order():
    assert take(InfiniteSampler(4, shuffle=False, start=2), 7) == [2, 3, 0, 1, 2, 3, 0]


def test_it_drives_a_dataloader():
    data = torch.arange(100, 120)
    loader = DataLoader(data, batch_size=4, sampler=InfiniteSampler(20, seed=9))
    batches = list(itertools.islice(iter(loader), 5))
    assert torch.equal(torch.cat(batches), data[take(InfiniteSampler(20, seed=9), 20)])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 0},
        {"size": 5, "rank": 2, "world_size": 2},
        {"size": 5, "world_size": 0},
        {"size": 5, "start": -1},
    ],
)
def test_impossible_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError):
        InfiniteSampler(**kwargs)

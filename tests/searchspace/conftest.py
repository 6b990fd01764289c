"""Shared builders for the searchspace tests: tiny configs and padded / unpadded pair batches."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from searchspace import SupernetConfig


@dataclass
class PairBatch:
    """One sentence-pair batch, unpadded (T = longest real sentence) and padded (T + extra).

    Padding positions hold random token ids in both versions (different ones), so any leak of
    padding into real tokens changes the result.
    """

    ids_a: torch.Tensor
    mask_a: torch.Tensor
    ids_b: torch.Tensor
    mask_b: torch.Tensor
    padded_ids_a: torch.Tensor
    padded_mask_a: torch.Tensor
    padded_ids_b: torch.Tensor
    padded_mask_b: torch.Tensor

    def unpadded(self) -> tuple[torch.Tensor, ...]:
        return self.ids_a, self.mask_a, self.ids_b, self.mask_b

    def padded(self) -> tuple[torch.Tensor, ...]:
        return self.padded_ids_a, self.padded_mask_a, self.padded_ids_b, self.padded_mask_b


def lengths_to_mask(lengths: list[int], width: int) -> torch.Tensor:
    return (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).float()


def make_pair_batch(
    vocab_size: int,
    lengths_a: list[int],
    lengths_b: list[int],
    *,
    extra: int = 4,
    seed: int = 0,
) -> PairBatch:
    g = torch.Generator().manual_seed(seed)
    batch = len(lengths_a)
    width = max(max(lengths_a), max(lengths_b))
    ids_a = torch.randint(1, vocab_size, (batch, width), generator=g)
    ids_b = torch.randint(1, vocab_size, (batch, width), generator=g)
    mask_a = lengths_to_mask(lengths_a, width)
    mask_b = lengths_to_mask(lengths_b, width)
    padded_width = width + extra
    pad_mask_a = lengths_to_mask(lengths_a, padded_width)
    pad_mask_b = lengths_to_mask(lengths_b, padded_width)
    # Different garbage ids everywhere the mask is 0, the same ids on real tokens.
    pad_a = torch.randint(1, vocab_size, (batch, padded_width), generator=g)
    pad_b = torch.randint(1, vocab_size, (batch, padded_width), generator=g)
    pad_a[:, :width] = torch.where(mask_a.bool(), ids_a, pad_a[:, :width])
    pad_b[:, :width] = torch.where(mask_b.bool(), ids_b, pad_b[:, :width])
    assert not torch.equal(pad_a[:, :width], ids_a), "padding garbage should differ"
    return PairBatch(ids_a, mask_a, ids_b, mask_b, pad_a, pad_mask_a, pad_b, pad_mask_b)


@pytest.fixture
def tiny_config() -> SupernetConfig:
    return SupernetConfig(
        vocab_size=50,
        max_positions=32,
        hidden_size=8,
        max_cells=3,
        num_labels=3,
        dropout=0.1,
    )


@pytest.fixture
def pair_batch() -> PairBatch:
    # Sentence a and b have different real lengths in every row (and b is longer in some rows).
    return make_pair_batch(50, [6, 4, 2], [3, 6, 5], extra=4, seed=1)


@pytest.fixture
def pair_batch_factory():
    return make_pair_batch

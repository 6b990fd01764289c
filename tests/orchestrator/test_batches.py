"""Batches: a single-sentence batch hands the student one sentence, a pair batch two."""

from __future__ import annotations

import json

import pytest
import torch

from orchestrator.tasks.batches import COLUMNS, DistillationSet, batch_loader, collate, trim_padding
from searchspace import DerivedStudent, Genotype, SupernetConfig

EDGES = [
    (2, 0, "std_conv_3"), (2, 1, "identity"), (3, 0, "avg_pool_3"),
    (3, 2, "dil_conv_3"), (4, 2, "max_pool_3"), (4, 3, "std_conv_5"),
]  # fmt: skip
GENOTYPE = {
    "format": 1,
    "num_cells": 2,
    "nodes_per_cell": 3,
    "edges": [{"target": t, "source": s, "op": op} for t, s, op in EDGES],
}


def _row(ids_a: list[int], ids_b: list[int], label: int = 0):
    mask = lambda ids: torch.tensor([int(i != 0) for i in ids])  # noqa: E731
    return (
        torch.tensor(ids_a), mask(ids_a), torch.tensor(ids_b), mask(ids_b), torch.tensor(label),
        torch.zeros(3, 2), torch.zeros(2),
    )  # fmt: skip


def test_a_single_sentence_batch_passes_one_sentence_through_trimming():
    first, second = [2, 7, 8, 3, 0, 0], [2, 9, 3, 0, 0, 0]
    rows = [_row(first, list(first)), _row(second, list(second))]
    batch = trim_padding(collate(rows, b_copies_a=True))
    ids_a, mask_a, ids_b, mask_b = batch.student_inputs()
    assert ids_b is ids_a and mask_b is mask_a
    assert ids_a.shape == (2, 4)


def test_a_pair_batch_keeps_two_sentences():
    rows = [_row([2, 7, 3, 0], [2, 8, 8, 3]), _row([2, 9, 3, 0], [2, 9, 3, 0])]
    ids_a, mask_a, ids_b, mask_b = trim_padding(collate(rows, b_copies_a=False)).student_inputs()
    assert ids_b is not ids_a
    assert ids_b.tolist() == [[2, 8, 8, 3], [2, 9, 3, 0]]


def test_a_pair_batch_of_repeated_sentences_is_still_two_sentences():
    """The task decides, not the content: every pair repeating one sentence stays a pair."""
    rows = [_row([2, 7, 3, 0], [2, 7, 3, 0]), _row([2, 9, 3, 0], [2, 9, 3, 0])]
    ids_a, mask_a, ids_b, mask_b = trim_padding(collate(rows, b_copies_a=False)).student_inputs()
    assert ids_b is not ids_a and mask_b is not mask_a
    assert torch.equal(ids_a, ids_b)


@pytest.mark.parametrize("copies", [False, True])
def test_the_loader_batches_a_set_as_the_set_says_through_a_subset_too(copies):
    """The set is built knowing its layout (the pipeline joins a single-sentence task's rows with
    ``b_copies_a=True``); every loader of it, or of a Subset of it, batches it that way."""
    rows = [_row([2, 7, 3, 0], [2, 7, 3, 0]), _row([2, 9, 3, 0], [2, 9, 3, 0])]
    columns = dict(zip(COLUMNS, (torch.stack(c) for c in zip(*rows))))
    dataset = DistillationSet(b_copies_a=copies, **columns)
    for data in (dataset, torch.utils.data.Subset(dataset, [0, 1])):
        (batch,) = batch_loader(data, batch_size=2, shuffle=False, seed=0)
        assert (batch.input_ids_b is batch.input_ids_a) is copies
    # A set built without saying (the BERT-style control's joint encoding) keeps slot b its own.
    (batch,) = batch_loader(DistillationSet(**columns), batch_size=2, shuffle=False, seed=0)
    assert batch.input_ids_b is not batch.input_ids_a


@pytest.mark.parametrize("encoding", ["joint", "siamese"])
def test_one_encoding_of_a_single_sentence_gives_the_two_encodings_outputs(encoding):
    """Sharing changes the work, not the function: in eval mode a student gives the same
    logits for (a, copy of a) and (a, a). Single-sentence tasks run joint-encoded."""
    torch.manual_seed(0)
    config = SupernetConfig(vocab_size=30, hidden_size=16, max_cells=2, pair_encoding=encoding)
    student = DerivedStudent(config, Genotype.from_json(json.dumps(GENOTYPE))).eval()
    ids = torch.randint(1, 30, (3, 7))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    with torch.inference_mode():
        twice = student(ids, mask, ids.clone(), mask.clone())
        once = student(ids, mask, ids, mask)
    torch.testing.assert_close(once, twice)

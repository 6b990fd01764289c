"""Shapes and padding masks: every op, both cells, the supernet and the derived student give the
same result on real tokens whatever the padding holds, and zeros at padding positions."""

from __future__ import annotations

import pytest
import torch

from searchspace import AdaBertSupernet, DerivedStudent, Edge, Genotype, SupernetConfig
from searchspace.cells import DerivedCell, SearchCell
from searchspace.embeddings import StudentEmbedding
from searchspace.primitives import PRIMITIVES, build_op

ATOL = 1e-6
HIDDEN = 8


def _mask(lengths: list[int], width: int) -> torch.Tensor:
    return (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).float()


def _states(lengths: list[int], width: int, extra: int, seed: int):
    """(x, mask, x_padded, mask_padded): same values on real tokens, different garbage elsewhere."""
    g = torch.Generator().manual_seed(seed)
    batch = len(lengths)
    mask = _mask(lengths, width)
    padded_mask = _mask(lengths, width + extra)
    x = torch.randn(batch, width, HIDDEN, generator=g)
    garbage = 50.0 * torch.randn(batch, width, HIDDEN, generator=g) + 7.0
    x = torch.where(mask.bool()[..., None], x, garbage)
    padded = 50.0 * torch.randn(batch, width + extra, HIDDEN, generator=g) - 3.0
    padded[:, :width] = torch.where(mask.bool()[..., None], x, padded[:, :width])
    return x, mask, padded, padded_mask


def _assert_same_on_real_tokens(out, mask, padded_out, padded_mask):
    width = out.shape[1]
    real = mask.bool()
    torch.testing.assert_close(padded_out[:, :width][real], out[real], atol=ATOL, rtol=0)
    assert torch.all(out[~real] == 0)
    assert torch.all(padded_out[~padded_mask.bool()] == 0)


@pytest.mark.parametrize("name", PRIMITIVES)
def test_op_preserves_shape(name):
    torch.manual_seed(0)
    op = build_op(name, HIDDEN)
    x = torch.randn(3, 7, HIDDEN)
    out = op(x, torch.ones(3, 7))
    assert out.shape == x.shape
    if name != "zero":
        assert out.abs().sum() > 0


@pytest.mark.parametrize("name", PRIMITIVES)
def test_op_padding_does_not_leak(name):
    torch.manual_seed(0)
    op = build_op(name, HIDDEN)
    x, mask, padded, padded_mask = _states([7, 4, 1, 5], 7, extra=5, seed=3)
    out = op(x, mask)
    padded_out = op(padded, padded_mask)
    assert out.shape == x.shape and padded_out.shape == padded.shape
    _assert_same_on_real_tokens(out, mask, padded_out, padded_mask)
    assert torch.isfinite(padded_out).all()


def test_max_pool_never_selects_padding():
    # A negative real token next to a huge padding value: the max must stay the real value.
    op = build_op("max_pool_3", 1)
    x = torch.tensor([[[-2.0], [-1.0], [100.0]]])
    out = op(x, torch.tensor([[1.0, 1.0, 0.0]]))
    assert out.flatten().tolist() == [-1.0, -1.0, 0.0]


def test_avg_pool_averages_real_tokens_only():
    op = build_op("avg_pool_3", 1)
    x = torch.tensor([[[3.0], [6.0], [100.0], [9.0]]])
    out = op(x, torch.tensor([[1.0, 1.0, 0.0, 0.0]]))
    # Window of token 0 = {pad, 3, 6}, token 1 = {3, 6, pad}: both averages of real tokens only.
    assert out.flatten().tolist() == [4.5, 4.5, 0.0, 0.0]


# ---------------------------------------------------------------------------------------------
# Cells


def _cell_inputs(seed: int):
    # Input a and b with different lengths per row; b is the longer one in some rows.
    s0, m0, p0, pm0 = _states([6, 3, 2], 6, extra=4, seed=seed)
    s1, m1, p1, pm1 = _states([2, 6, 5], 6, extra=4, seed=seed + 1)
    return (s0, m0, s1, m1), (p0, pm0, p1, pm1)


def _config(**overrides) -> SupernetConfig:
    values = dict(vocab_size=50, max_positions=32, hidden_size=HIDDEN, max_cells=3, num_labels=3)
    values.update(overrides)
    return SupernetConfig(**values)


ALL_OPS_GENOTYPE = Genotype(
    (
        Edge(2, 0, "std_conv_3"),
        Edge(2, 1, "dil_conv_5"),
        Edge(3, 1, "max_pool_3"),
        Edge(3, 2, "std_conv_7"),
        Edge(4, 0, "avg_pool_3"),
        Edge(4, 3, "identity"),
    ),
    num_cells=2,
    nodes_per_cell=3,
)


@pytest.mark.parametrize("soft", [True, False])
def test_search_cell_padding_does_not_leak(soft):
    torch.manual_seed(0)
    config = _config()
    cell = SearchCell(config)
    if soft:
        weights = torch.softmax(torch.randn(config.num_edges, len(config.primitives)), dim=-1)
    else:
        weights, _ = ALL_OPS_GENOTYPE.to_arch_weights(config)
    unpadded, padded = _cell_inputs(seed=4)
    out, mask = cell(*unpadded, weights)
    padded_out, padded_mask = cell(*padded, weights)
    assert out.shape == unpadded[0].shape
    assert torch.equal(mask, torch.maximum(unpadded[1], unpadded[3]))
    assert torch.equal(padded_mask, torch.maximum(padded[1], padded[3]))
    _assert_same_on_real_tokens(out, mask, padded_out, padded_mask)


def test_derived_cell_padding_does_not_leak():
    torch.manual_seed(0)
    cell = DerivedCell(_config(), ALL_OPS_GENOTYPE)
    unpadded, padded = _cell_inputs(seed=8)
    out, mask = cell(*unpadded)
    padded_out, padded_mask = cell(*padded)
    assert out.shape == unpadded[0].shape
    _assert_same_on_real_tokens(out, mask, padded_out, padded_mask)


def test_search_cell_with_one_hot_weights_equals_derived_cell():
    torch.manual_seed(0)
    config = _config()
    search = SearchCell(config)
    derived = DerivedCell(config, ALL_OPS_GENOTYPE)
    with torch.no_grad():
        derived.output_logits.copy_(search.output_logits)
        for edge in ALL_OPS_GENOTYPE.edges:
            key = f"n{edge.target}<-n{edge.source}"
            derived.edges[key].load_state_dict(search.edges[key].ops[edge.op].state_dict())
    weights, _ = ALL_OPS_GENOTYPE.to_arch_weights(config)
    unpadded, _ = _cell_inputs(seed=2)
    torch.testing.assert_close(search(*unpadded, weights)[0], derived(*unpadded)[0])


# ---------------------------------------------------------------------------------------------
# Whole networks


@pytest.mark.parametrize("teacher_embedding_size", [0, 12])
def test_embedding_zero_at_padding_and_independent_of_it(teacher_embedding_size, pair_batch):
    torch.manual_seed(0)
    embedding = StudentEmbedding(_config(teacher_embedding_size=teacher_embedding_size)).eval()
    out = embedding(pair_batch.ids_a, pair_batch.mask_a)
    padded = embedding(pair_batch.padded_ids_a, pair_batch.padded_mask_a)
    assert out.shape == (*pair_batch.ids_a.shape, HIDDEN)
    _assert_same_on_real_tokens(out, pair_batch.mask_a, padded, pair_batch.padded_mask_a)


@pytest.mark.parametrize("mixed_op_mode", ["all", "sampled"])
def test_supernet_logits_independent_of_padding(mixed_op_mode, pair_batch):
    torch.manual_seed(0)
    config = _config(mixed_op_mode=mixed_op_mode)
    model = AdaBertSupernet(config).eval()
    edge_weights, depth_weights = ALL_OPS_GENOTYPE.to_arch_weights(config)
    out = model(*pair_batch.unpadded(), edge_weights=edge_weights, depth_weights=depth_weights)
    padded = model(*pair_batch.padded(), edge_weights=edge_weights, depth_weights=depth_weights)
    # Constant one-hot weights: only the genotype's cells run.
    assert out.logits_per_depth.shape == (ALL_OPS_GENOTYPE.num_cells, 3, config.num_labels)
    torch.testing.assert_close(padded.logits_per_depth, out.logits_per_depth, atol=ATOL, rtol=0)


def test_supernet_soft_weights_logits_independent_of_padding(pair_batch):
    torch.manual_seed(0)
    config = _config()
    model = AdaBertSupernet(config).eval()
    edge_weights, depth_weights = model.sample_arch(1.0, hard=False, noise=False)
    out = model(*pair_batch.unpadded(), edge_weights=edge_weights, depth_weights=depth_weights)
    padded = model(*pair_batch.padded(), edge_weights=edge_weights, depth_weights=depth_weights)
    torch.testing.assert_close(padded.logits_per_depth, out.logits_per_depth, atol=ATOL, rtol=0)


@pytest.mark.parametrize("head_per_depth", [True, False])
def test_derived_student_logits_independent_of_padding(head_per_depth, pair_batch):
    torch.manual_seed(0)
    student = DerivedStudent(_config(head_per_depth=head_per_depth), ALL_OPS_GENOTYPE).eval()
    logits = student(*pair_batch.unpadded())
    padded = student(*pair_batch.padded())
    assert logits.shape == (3, 3)
    torch.testing.assert_close(padded, logits, atol=ATOL, rtol=0)


def test_padding_test_detects_a_leak(pair_batch):
    """Control: the same comparison fails when padding is (wrongly) marked as real."""
    torch.manual_seed(0)
    student = DerivedStudent(_config(), ALL_OPS_GENOTYPE).eval()
    ids_a, mask_a, ids_b, mask_b = pair_batch.padded()
    leaky = student(ids_a, torch.ones_like(mask_a), ids_b, mask_b)
    assert not torch.allclose(leaky, student(*pair_batch.unpadded()), atol=ATOL)


def test_single_sentence_fed_twice(pair_batch):
    torch.manual_seed(0)
    student = DerivedStudent(_config(), ALL_OPS_GENOTYPE).eval()
    ids, mask = pair_batch.ids_a, pair_batch.mask_a
    pids, pmask = pair_batch.padded_ids_a, pair_batch.padded_mask_a
    torch.testing.assert_close(
        student(pids, pmask, pids, pmask), student(ids, mask, ids, mask), atol=ATOL, rtol=0
    )

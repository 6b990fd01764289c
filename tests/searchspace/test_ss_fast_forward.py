"""The eval-mode forward (searchspace.fast_forward) computes the training forward's function.

Reference: the same student in train mode with dropout 0, which runs the straightforward
per-edge code of DerivedCell/AttentiveHead. Genotypes are drawn at random over every primitive,
inner-node sources, repeated ops on one input and K = 1 .. 3, on pair batches whose sentences
have different lengths and garbage ids under the padding.
"""

from __future__ import annotations

import random

import pytest
import torch

from searchspace import DerivedStudent, Edge, Genotype, SupernetConfig
from searchspace.genotype import edge_list
from searchspace.primitives import PRIMITIVES


def _random_genotype(rng: random.Random, nodes: int, cells: int) -> Genotype:
    edges = []
    for target in range(2, 2 + nodes):
        sources = [s for s, t in edge_list(nodes) if t == target]
        for source in rng.sample(sources, k=min(2, len(sources))):
            edges.append(Edge(target, source, rng.choice(PRIMITIVES)))
    return Genotype(tuple(edges), cells, nodes)


def _reference(student: DerivedStudent, *inputs) -> torch.Tensor:
    student.train()
    try:
        with torch.no_grad():
            return student(*inputs)
    finally:
        student.eval()


@pytest.mark.parametrize("pair_encoding", ["siamese", "joint"])
@pytest.mark.parametrize("seed", range(40))
def test_eval_forward_equals_the_training_forward_without_dropout(
    seed, pair_encoding, pair_batch_factory
):
    rng = random.Random(seed)
    config = SupernetConfig(
        vocab_size=50,
        max_positions=32,
        hidden_size=8,
        max_cells=3,
        num_labels=3,
        dropout=0.0,
        pair_encoding=pair_encoding,
    )
    genotype = _random_genotype(rng, 3, rng.randint(1, 3))
    torch.manual_seed(seed)
    student = DerivedStudent(config, genotype).eval()
    batch = pair_batch_factory(50, [6, 4, 2], [3, 6, 5], extra=3, seed=seed)
    ids = torch.randint(1, 50, (2, 5), generator=torch.Generator().manual_seed(seed))
    full = (ids, torch.ones(2, 5), ids.flip(1), torch.ones(2, 5))  # no padding anywhere
    single = batch.padded()[:2] * 2  # one sentence as the same tensors twice
    for inputs in (batch.unpadded(), batch.padded(), full, single):
        with torch.inference_mode():
            fast = student(*inputs)
        torch.testing.assert_close(fast, _reference(student, *inputs), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pair_encoding", ["siamese", "joint"])
def test_one_sentence_given_twice_is_embedded_once_with_the_same_result(
    pair_encoding, pair_batch_factory
):
    config = SupernetConfig(
        vocab_size=50,
        max_positions=32,
        hidden_size=8,
        max_cells=2,
        nodes_per_cell=2,
        dropout=0.0,
        pair_encoding=pair_encoding,
    )
    genotype = Genotype(
        (Edge(2, 0, "avg_pool_3"), Edge(2, 1, "avg_pool_3"), Edge(3, 1, "std_conv_3")), 2, 2
    )
    student = DerivedStudent(config, genotype).eval()
    batch = pair_batch_factory(50, [5, 3], [5, 3], extra=2, seed=4)
    ids, mask = batch.padded_ids_a, batch.padded_mask_a
    calls = []
    student.embedding.register_forward_hook(lambda *args: calls.append(1))
    with torch.inference_mode():
        shared = student(ids, mask, ids, mask)
        assert len(calls) == 1
        copied = student(ids, mask, ids.clone(), mask.clone())
        # A siamese pair is embedded in one call (a's and b's rows stacked).
        assert len(calls) == (2 if pair_encoding == "siamese" else 3)
    torch.testing.assert_close(shared, copied, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(shared, _reference(student, ids, mask, ids, mask))


@pytest.mark.parametrize("pair_encoding", ["siamese", "joint"])
def test_identical_parameter_free_edges_run_once(monkeypatch, pair_encoding):
    """n2 and n3 both pool n0 and n1: two avg-pool kernels per cell, not four (one when n0 and
    n1 are the same sentence, as in the siamese encoding)."""
    config = SupernetConfig(
        vocab_size=50,
        max_positions=32,
        hidden_size=8,
        max_cells=1,
        nodes_per_cell=2,
        pair_encoding=pair_encoding,
    )
    genotype = Genotype(
        (
            Edge(2, 0, "avg_pool_3"),
            Edge(2, 1, "avg_pool_3"),
            Edge(3, 0, "avg_pool_3"),
            Edge(3, 1, "avg_pool_3"),
        ),
        1,
        2,
    )
    student = DerivedStudent(config, genotype).eval()
    ids = torch.randint(1, 50, (2, 7))
    mask = torch.ones(2, 7)
    pools = []
    original = torch.nn.functional.avg_pool1d

    def counting(*args, **kwargs):
        pools.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "avg_pool1d", counting)
    with torch.inference_mode():
        student(ids, mask, ids.clone(), mask.clone())
    # One pool per distinct input (n0, n1) and one window count per mask object (two here):
    # 4 kernels, where the per-edge code runs a pool and a count on each of 4 edges (8).
    # Siamese: n0 and n1 are one tensor of a's and b's rows with one mask: 2 kernels.
    assert len(pools) == (2 if pair_encoding == "siamese" else 4)
    pools.clear()
    student.train()
    student(ids, mask, ids.clone(), mask.clone())
    assert len(pools) == 8


def test_cached_softmax_weights_follow_parameter_updates(pair_batch_factory):
    """The eval path caches each cell's softmax weights as floats: an optimiser step (in place)
    or a load_state_dict must be seen by the next eval forward."""
    config = SupernetConfig(
        vocab_size=50, max_positions=32, hidden_size=8, max_cells=2, num_labels=2, dropout=0.0
    )
    genotype = Genotype(
        (Edge(2, 0, "identity"), Edge(2, 1, "avg_pool_3"), Edge(3, 2, "avg_pool_3"),
         Edge(4, 0, "avg_pool_3"), Edge(4, 3, "identity")),
        2, 3,
    )  # fmt: skip
    student = DerivedStudent(config, genotype).eval()
    inputs = pair_batch_factory(50, [5, 3], [4, 6], extra=2, seed=9).padded()
    with torch.inference_mode():
        before = student(*inputs)
    with torch.no_grad():
        for cell in student.cells:
            cell.output_logits.add_(torch.tensor([3.0, -2.0, 0.5]))
        student.head.layer_logits["2"].mul_(-40.0)
    with torch.inference_mode():
        after = student(*inputs)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, _reference(student, *inputs), rtol=1e-5, atol=1e-6)
    fresh = DerivedStudent(config, genotype).eval()
    fresh.load_state_dict(student.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(fresh(*inputs), after, rtol=1e-5, atol=1e-6)


def test_cached_convolution_kernels_follow_parameter_updates(pair_batch_factory):
    """The eval path keeps each convolution's kernel flattened for its matrix product: an
    in-place update or a load_state_dict must be seen by the next eval forward."""
    config = SupernetConfig(
        vocab_size=50, max_positions=32, hidden_size=8, max_cells=2, num_labels=2, dropout=0.0
    )
    genotype = Genotype(
        (Edge(2, 0, "dil_conv_3"), Edge(2, 1, "std_conv_5"), Edge(3, 2, "std_conv_3"),
         Edge(4, 0, "dil_conv_3"), Edge(4, 3, "identity")),
        2, 3,
    )  # fmt: skip
    # n0's two dil_conv_3 share one product, their kernels and biases copied into it.
    student = DerivedStudent(config, genotype).eval()
    inputs = pair_batch_factory(50, [5, 3], [4, 6], extra=2, seed=9).padded()
    with torch.inference_mode():
        before = student(*inputs)
    with torch.no_grad():
        for name, param in student.named_parameters():
            if name.endswith("conv.weight"):
                param.mul_(-2.0)
    with torch.inference_mode():
        after = student(*inputs)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, _reference(student, *inputs), rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # the biases alone
        for name, param in student.named_parameters():
            if name.endswith("conv.bias"):
                param.copy_(torch.randn_like(param))
    with torch.inference_mode():
        after = student(*inputs)
    torch.testing.assert_close(after, _reference(student, *inputs), rtol=1e-5, atol=1e-6)
    other = DerivedStudent(config, genotype).eval()
    with torch.inference_mode():
        other(*inputs)  # fills its own caches with its own kernels
    other.load_state_dict(student.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(other(*inputs), after, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pair_encoding", ["siamese", "joint"])
def test_convolutions_of_one_state_share_a_product_per_shape(
    monkeypatch, pair_encoding, pair_batch_factory
):
    """n0 feeds two std_conv_3 edges and a dil_conv_5, n1 a std_conv_3 and n2 a dil_conv_3:
    four products per cell (n0's two std_conv_3 side by side), not five, and the function of
    the per-edge code on padded and unpadded batches."""
    config = SupernetConfig(
        vocab_size=50, max_positions=32, hidden_size=8, max_cells=2, num_labels=2, dropout=0.0,
        pair_encoding=pair_encoding,
    )  # fmt: skip
    genotype = Genotype(
        (Edge(2, 0, "std_conv_3"), Edge(2, 1, "std_conv_3"), Edge(3, 0, "std_conv_3"),
         Edge(3, 2, "dil_conv_3"), Edge(4, 0, "dil_conv_5"), Edge(4, 3, "identity")),
        2, 3,
    )  # fmt: skip
    torch.manual_seed(3)
    student = DerivedStudent(config, genotype).eval()
    batch = pair_batch_factory(50, [6, 4, 2], [3, 6, 5], extra=3, seed=3)
    for inputs in (batch.padded(), batch.unpadded()):
        with torch.inference_mode():
            fast = student(*inputs)
        torch.testing.assert_close(fast, _reference(student, *inputs), rtol=1e-5, atol=1e-6)
    products = []
    original = torch.addmm

    def counting(*args, **kwargs):
        products.append(args[2].shape[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "addmm", counting)
    with torch.inference_mode():
        student(*batch.padded())
    # Per cell: n0's std_conv_3 pair (16 columns), its dil_conv_5, n1's and n2's (8 each).
    assert sorted(products) == sorted([2 * 8, 8, 8, 8] * 2)


LINEAR = ("identity", "avg_pool_3", "zero")


def _linear_student(seed: int, pair_encoding: str, hidden: int = 8) -> DerivedStudent:
    rng = random.Random(seed)
    edges = []
    for target in range(2, 5):
        sources = [s for s, t in edge_list(3) if t == target]
        for source in rng.sample(sources, k=2):
            edges.append(Edge(target, source, rng.choice(LINEAR)))
    config = SupernetConfig(vocab_size=50, max_positions=32, hidden_size=hidden, max_cells=3,
                            num_labels=3, dropout=0.0, pair_encoding=pair_encoding)  # fmt: skip
    torch.manual_seed(seed)
    genotype = Genotype(tuple(edges), rng.randint(1, 3), 3)
    return DerivedStudent(config, genotype).eval()


@pytest.mark.parametrize("pair_encoding", ["siamese", "joint"])
@pytest.mark.parametrize("seed", range(20))
def test_a_linear_student_folds_to_token_weights_with_the_same_function(
    seed, pair_encoding, pair_batch_factory
):
    """Cells of identity / average pooling / zero only: the eval forward is the embedding times
    per-mask token weights, and equals the training forward on padded and unpadded batches,
    single sentences and pairs (joint pairs take the unfolded path)."""
    from searchspace.fast_forward import is_linear

    student = _linear_student(seed, pair_encoding)
    assert is_linear(student)
    batch = pair_batch_factory(50, [6, 4, 2], [3, 6, 5], extra=3, seed=seed)
    single = batch.padded()[:2] * 2
    for inputs in (batch.unpadded(), batch.padded(), single):
        with torch.inference_mode():
            fast = student(*inputs)
        torch.testing.assert_close(fast, _reference(student, *inputs), rtol=1e-5, atol=1e-6)
    assert student.__dict__.get("_token_weights")  # single sentences fold in both encodings


def test_token_weights_are_kept_per_mask_and_follow_weight_updates(pair_batch_factory):
    student = _linear_student(3, "joint")
    batch = pair_batch_factory(50, [6, 4, 2], [3, 6, 5], extra=3, seed=3)
    single = batch.padded()[:2] * 2
    other = batch.padded()[2:] * 2  # sentence b's lengths: another mask
    with torch.inference_mode():
        first = student(*single)
        student(*single)
        assert len(student.__dict__["_token_weights"]) == 1  # the same mask: reused
        student(*other)
        assert len(student.__dict__["_token_weights"]) == 2
    with torch.no_grad():
        student.cells[0].output_logits.add_(torch.tensor([2.0, -1.0, 0.5]))
        student.head.layer_logits[str(student.genotype.num_cells)].mul_(-1.5)
    with torch.inference_mode():
        changed = student(*single)
    assert not torch.allclose(first, changed)
    torch.testing.assert_close(changed, _reference(student, *single), rtol=1e-5, atol=1e-6)


def test_a_student_with_a_convolution_or_max_pool_is_not_folded():
    from searchspace.fast_forward import is_linear

    for op in ("std_conv_3", "dil_conv_5", "max_pool_3"):
        edges = (Edge(2, 0, "identity"), Edge(2, 1, op), Edge(3, 2, "avg_pool_3"),
                 Edge(3, 0, "zero"), Edge(4, 3, "identity"), Edge(4, 1, "identity"))  # fmt: skip
        config = SupernetConfig(vocab_size=50, max_positions=32, hidden_size=8, dropout=0.0)
        assert not is_linear(DerivedStudent(config, Genotype(edges, 2, 3)))

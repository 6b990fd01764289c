"""Cost accounting: per-op params/FLOPs vs the built modules and torch's FLOP counter, and the
expected cost under one-hot architecture weights vs the counted derived student."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from searchspace import DerivedStudent, Edge, Genotype, SupernetConfig, derive_genotype
from searchspace.costs import cell_passes, expected_cost, op_cost, op_cost_table
from searchspace.primitives import CONV_SHAPES, PARAMETER_FREE, PRIMITIVES, build_op

POOLS = ("avg_pool_3", "max_pool_3")


def _counted_flops(module, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        module(*args)
    return counter.get_total_flops()


@pytest.mark.parametrize("hidden", [8, 128])
@pytest.mark.parametrize("name", PRIMITIVES)
def test_op_params_equal_built_module(name, hidden):
    op = build_op(name, hidden)
    counted = sum(p.numel() for p in op.parameters())
    assert op_cost(name, hidden, 16).params == counted
    if name in PARAMETER_FREE:
        assert counted == 0
    else:
        assert counted > 0


@pytest.mark.parametrize("name", PRIMITIVES)
def test_op_flops_match_torch_flop_counter(name):
    hidden, seq_len = 8, 11
    op = build_op(name, hidden)
    x = torch.randn(1, seq_len, hidden)
    mask = torch.ones(1, seq_len)
    counted = _counted_flops(op, x, mask)
    ours = op_cost(name, hidden, seq_len).flops
    if name in CONV_SHAPES:
        kernel, _ = CONV_SHAPES[name]
        assert counted == ours == 2 * kernel * hidden * hidden * seq_len
    elif name in POOLS:
        # Our convention: a window of 3 costs 3 FLOPs per output element; torch counts nothing.
        assert counted == 0
        assert ours == 3 * hidden * seq_len
    else:
        assert counted == ours == 0


def test_op_cost_hand_values_at_width_128():
    h, length = 128, 128
    expected = {
        "std_conv_3": (3 * h * h + h, 2 * 3 * h * h * length),
        "std_conv_5": (5 * h * h + h, 2 * 5 * h * h * length),
        "std_conv_7": (7 * h * h + h, 2 * 7 * h * h * length),
        "dil_conv_3": (49280, 12582912),
        "dil_conv_5": (82048, 20971520),
        "dil_conv_7": (114816, 29360128),
        "avg_pool_3": (0, 49152),
        "max_pool_3": (0, 49152),
        "identity": (0, 0),
        "zero": (0, 0),
    }
    for name, (params, flops) in expected.items():
        cost = op_cost(name, h, length)
        assert (cost.params, cost.flops) == (params, flops), name
    config = SupernetConfig(hidden_size=h)
    params, flops = op_cost_table(config, length)
    assert params.tolist() == [expected[n][0] for n in config.primitives]
    assert flops.tolist() == [expected[n][1] for n in config.primitives]


def test_op_cost_unknown_name_raises():
    with pytest.raises(ValueError, match="conv9"):
        op_cost("conv9", 8, 8)


# ---------------------------------------------------------------------------------------------
# Expected cost under one-hot weights == the derived student's counted parameters / FLOPs


def _random_genotype(config: SupernetConfig, seed: int, num_cells: int, exclude_zero: bool):
    g = torch.Generator().manual_seed(seed)
    edge_logits = torch.randn(config.num_edges, len(config.primitives), generator=g) * 2
    depth_logits = torch.zeros(config.max_cells)
    depth_logits[num_cells - 1] = 1.0
    return derive_genotype(edge_logits, depth_logits, config, exclude_zero=exclude_zero)


def _genotypes(config: SupernetConfig) -> list[Genotype]:
    genotypes = [
        _random_genotype(config, seed, k, exclude_zero)
        for seed, k, exclude_zero in [(0, 1, True), (1, 2, True), (2, 4, False), (3, 3, True)]
    ]
    # Only parameter-free ops (and a dropped edge on node 3).
    genotypes.append(
        Genotype(
            (
                Edge(2, 0, "identity"),
                Edge(2, 1, "max_pool_3"),
                Edge(3, 2, "avg_pool_3"),
                Edge(4, 0, "zero"),
                Edge(4, 3, "identity"),
            ),
            num_cells=2,
            nodes_per_cell=3,
        )
    )
    # Every op once, max depth.
    genotypes.append(
        Genotype(
            (
                Edge(2, 0, "std_conv_3"),
                Edge(2, 1, "std_conv_5"),
                Edge(3, 0, "std_conv_7"),
                Edge(3, 1, "dil_conv_3"),
                Edge(3, 2, "dil_conv_5"),
                Edge(4, 0, "dil_conv_7"),
                Edge(4, 1, "avg_pool_3"),
                Edge(4, 2, "max_pool_3"),
                Edge(4, 3, "identity"),
            ),
            num_cells=config.max_cells,
            nodes_per_cell=3,
        )
    )
    return genotypes


@pytest.mark.parametrize("pair_encoding", ["siamese", "joint"])
@pytest.mark.parametrize("head_per_depth", [True, False])
def test_expected_cost_one_hot_equals_derived_student(head_per_depth, pair_encoding):
    config = SupernetConfig(
        vocab_size=40,
        max_positions=20,
        hidden_size=12,
        max_cells=4,
        num_labels=3,
        head_per_depth=head_per_depth,
        pair_encoding=pair_encoding,
    )
    seq_len = 9
    genotypes = _genotypes(config)
    assert len({g.num_cells for g in genotypes}) >= 3  # different K
    assert any(all(e.op in PARAMETER_FREE for e in g.edges) for g in genotypes)
    seen_params = set()
    for genotype in genotypes:
        edge_weights, depth_weights = genotype.to_arch_weights(config)
        params, flops = expected_cost(
            config, edge_weights.double(), depth_weights.double(), seq_len
        )
        student = DerivedStudent(config, genotype)
        counted = sum(p.numel() for p in student.parameters())
        assert student.num_parameters() == counted
        assert params.item() == counted, genotype.summary()
        assert flops.item() == student.flops(seq_len), genotype.summary()
        seen_params.add(counted)
    assert len(seen_params) == len(genotypes)  # the genotypes really differ in size


def test_expected_cost_teacher_width_config_counts_low_dim_student():
    # The supernet factorises a teacher-width table; the derived student stores cell-width ones.
    config = SupernetConfig(
        vocab_size=30, max_positions=16, hidden_size=8, max_cells=3, teacher_embedding_size=20
    )
    genotype = _random_genotype(config, 5, 2, True)
    edge_weights, depth_weights = genotype.to_arch_weights(config)
    params, _ = expected_cost(config, edge_weights, depth_weights, 10)
    assert params.item() == DerivedStudent(config, genotype).num_parameters()


def test_expected_cost_is_linear_in_soft_weights():
    config = SupernetConfig(vocab_size=30, max_positions=16, hidden_size=8, max_cells=3)
    a = _random_genotype(config, 0, 1, True)
    b = _random_genotype(config, 1, 3, True)
    ea, da = a.to_arch_weights(config)
    eb, db = b.to_arch_weights(config)
    pa, fa = expected_cost(config, ea.double(), da.double(), 10)
    pb, fb = expected_cost(config, eb.double(), db.double(), 10)
    # Mixing depth alone is linear (edges fixed).
    pm, fm = expected_cost(config, ea.double(), (0.25 * da + 0.75 * db).double(), 10)
    pab, fab = expected_cost(config, ea.double(), db.double(), 10)
    torch.testing.assert_close(pm, 0.25 * pa + 0.75 * pab)
    torch.testing.assert_close(fm, 0.25 * fa + 0.75 * fab)
    assert pb.item() != pa.item()


def _pooling_flops(genotype: Genotype, hidden: int, seq_len: int) -> int:
    pools = sum(1 for e in genotype.edges if e.op in POOLS)
    return genotype.num_cells * pools * 3 * hidden * seq_len


@pytest.mark.parametrize("pair_encoding", ["siamese", "joint"])
def test_flop_counter_on_derived_student_equals_ours_minus_pooling(pair_encoding):
    # A pair example: under "siamese" the cells run on both sentences (2 rows per example).
    config = SupernetConfig(
        vocab_size=40,
        max_positions=20,
        hidden_size=12,
        max_cells=4,
        num_labels=3,
        pair_encoding=pair_encoding,
    )
    seq_len = 9
    checked_pools = False
    for genotype in _genotypes(config):
        student = DerivedStudent(config, genotype).eval()
        ids = torch.randint(1, config.vocab_size, (1, seq_len))
        mask = torch.ones(1, seq_len)
        counted = _counted_flops(student, ids, mask, ids.flip(1), mask)
        pooling = cell_passes(config) * _pooling_flops(genotype, config.hidden_size, seq_len)
        checked_pools = checked_pools or pooling > 0
        assert counted == student.flops(seq_len) - pooling, genotype.summary()
    assert checked_pools


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_genotype_cost_equals_the_built_student(seed):
    from searchspace.costs import genotype_cost

    config = SupernetConfig(vocab_size=60, max_positions=24, hidden_size=12, max_cells=4)
    g = torch.Generator().manual_seed(seed)
    genotype = derive_genotype(
        torch.randn(config.num_edges, len(config.primitives), generator=g),
        torch.randn(config.max_cells, generator=g),
        config,
    )
    student = DerivedStudent(config, genotype)
    cost = genotype_cost(config, genotype, seq_len=20)
    assert cost.params == student.num_parameters()
    assert cost.flops == student.flops(20)

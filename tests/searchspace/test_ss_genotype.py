"""Genotype: JSON round trip, stable hash, validation, safe parsing, derivation, one-hot export."""

from __future__ import annotations

import builtins
import hashlib
import json
import re

import pytest
import torch

from searchspace import Edge, Genotype, SupernetConfig, derive_genotype
from searchspace.genotype import edge_list

GENOTYPE = Genotype(
    (
        Edge(2, 0, "std_conv_3"),
        Edge(2, 1, "identity"),
        Edge(3, 0, "dil_conv_5"),
        Edge(3, 2, "max_pool_3"),
        Edge(4, 1, "avg_pool_3"),
        Edge(4, 3, "std_conv_7"),
    ),
    num_cells=3,
    nodes_per_cell=3,
)


def test_json_round_trip():
    text = GENOTYPE.to_json()
    back = Genotype.from_json(text)
    assert back == GENOTYPE
    assert back.hash == GENOTYPE.hash
    assert back.to_json() == text
    assert json.loads(text)["num_cells"] == 3


def test_edge_order_does_not_change_identity():
    shuffled = Genotype(tuple(reversed(GENOTYPE.edges)), 3, 3)
    assert shuffled == GENOTYPE
    assert shuffled.hash == GENOTYPE.hash


def test_hash_is_stable():
    # Format freeze: the literal was computed once from this genotype. If it changes, every
    # stored genotype id (run folders, caches) changes too, so change it only on purpose.
    assert GENOTYPE.hash == "efbd6df9c9"
    # The same value from the documented recipe: sha256 of the canonical compact JSON, 10 hex.
    canonical = (
        '{"edges":['
        '{"op":"std_conv_3","source":0,"target":2},'
        '{"op":"identity","source":1,"target":2},'
        '{"op":"dil_conv_5","source":0,"target":3},'
        '{"op":"max_pool_3","source":2,"target":3},'
        '{"op":"avg_pool_3","source":1,"target":4},'
        '{"op":"std_conv_7","source":3,"target":4}'
        '],"format":1,"nodes_per_cell":3,"num_cells":3}'
    )
    assert GENOTYPE.hash == hashlib.sha256(canonical.encode()).hexdigest()[:10]


def test_hash_differs_for_different_genotypes():
    other_k = Genotype(GENOTYPE.edges, 4, 3)
    other_op = Genotype((*GENOTYPE.edges[:-1], Edge(4, 3, "std_conv_5")), 3, 3)
    assert len({GENOTYPE.hash, other_k.hash, other_op.hash}) == 3


def test_summary_is_one_line_with_k():
    summary = GENOTYPE.summary()
    assert "\n" not in summary
    assert "K=3" in summary
    assert summary == (
        "K=3 | n2: std_conv_3(n0) + identity(n1) | n3: dil_conv_5(n0) + max_pool_3(n2) | "
        "n4: avg_pool_3(n1) + std_conv_7(n3)"
    )


def test_a_summary_line_reads_back_as_the_same_genotype():
    assert Genotype.from_summary(GENOTYPE.summary()) == GENOTYPE
    sparse = Genotype((Edge(3, 0, "identity"),), num_cells=1, nodes_per_cell=2)
    assert sparse.summary() == "K=1 | n2: none | n3: identity(n0)"
    assert Genotype.from_summary(sparse.summary()) == sparse


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("n2: identity(n0)", "starts 'K=<cells>"),
        ("K=2", "starts 'K=<cells>"),
        ("K=2 | n3: identity(n0)", "expected node n2"),
        ("K=2 | n2: identity[n0]", "op(nSOURCE)"),
        ("K=2 | n2: warp_9(n0)", "known primitive"),
        ("K=2 | n2: identity(n5)", "earlier node"),
        ("K=0 | n2: identity(n0)", "num_cells"),
    ],
)
def test_a_malformed_summary_line_is_a_value_error_naming_the_part(line, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        Genotype.from_summary(line)


@pytest.mark.parametrize(
    ("edges", "num_cells", "nodes", "needle"),
    [
        ((Edge(2, 0, "conv9"),), 1, 3, "conv9"),
        ((Edge(2, 2, "identity"),), 1, 3, "edge"),  # self loop
        ((Edge(3, 4, "identity"),), 1, 3, "edge"),  # source after target
        ((Edge(5, 0, "identity"),), 1, 3, "edge"),  # target beyond the inner nodes
        ((Edge(1, 0, "identity"),), 1, 3, "edge"),  # target is an input node
        ((Edge(2, 0, "identity"), Edge(2, 0, "std_conv_3")), 1, 3, "twice"),
        ((Edge(2, 0, "identity"),), 0, 3, "num_cells"),
        ((Edge(2, 0, "identity"),), -2, 3, "num_cells"),
        ((), 1, 0, "nodes_per_cell"),
    ],
)
def test_invalid_genotypes_raise(edges, num_cells, nodes, needle):
    with pytest.raises(ValueError, match=needle):
        Genotype(edges, num_cells, nodes)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch {marker}')",
        '{"format": 1, "num_cells": "__import__(\'os\').system(\'touch {marker}\')", '
        '"nodes_per_cell": 3, "edges": []}',
        '{"format": 1, "num_cells": 1, "nodes_per_cell": 3, '
        '"edges": [{"target": 2, "source": 0, "op": "exec(\'open(\\"{marker}\\", \\"w\\")\')"}]}',
        '{"format": 1, "num_cells": 1, "nodes_per_cell": 3, "edges": "x"}',
        '{"format": 2, "num_cells": 1, "nodes_per_cell": 3, "edges": []}',
        '{"num_cells": 1, "nodes_per_cell": 3, "edges": []}',
        '{"format": 1, "nodes_per_cell": 3, "edges": []}',
        "[1, 2, 3]",
        "",
    ],
)
def test_from_json_rejects_bad_or_malicious_text_without_evaluating(text, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError("eval/exec must never be used to parse a genotype")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    with pytest.raises(ValueError):  # json.JSONDecodeError is a ValueError
        Genotype.from_json(text.replace("{marker}", str(marker)))
    assert not calls
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# derive_genotype


def _hand_logits(config: SupernetConfig) -> torch.Tensor:
    names = list(config.primitives)
    rows = {pair: row for row, pair in enumerate(edge_list(3))}
    logits = torch.zeros(config.num_edges, len(names))

    def put(source, target, op, value):
        logits[rows[(source, target)], names.index(op)] = value

    put(0, 2, "std_conv_3", 2.0)
    put(1, 2, "zero", 5.0)
    put(1, 2, "identity", 1.0)
    put(0, 3, "max_pool_3", 4.0)
    put(1, 3, "dil_conv_5", 1.0)
    put(2, 3, "std_conv_7", 3.0)
    put(0, 4, "avg_pool_3", 0.5)
    put(1, 4, "std_conv_5", 2.5)
    put(2, 4, "identity", 3.5)
    put(3, 4, "zero", 6.0)
    put(3, 4, "dil_conv_3", 0.2)
    return logits


def test_derive_genotype_hand_case_excluding_zero():
    config = SupernetConfig()
    depth = torch.tensor([0.1, 0.3, 2.0, -1.0, 0.0, 0.0, 0.0, 0.0])
    genotype = derive_genotype(_hand_logits(config), depth, config, exclude_zero=True)
    assert genotype.num_cells == 3
    assert genotype.edge_ops() == {
        (0, 2): "std_conv_3",
        (1, 2): "identity",  # zero is the argmax but excluded: best non-zero op
        (0, 3): "max_pool_3",
        (2, 3): "std_conv_7",
        (2, 4): "identity",
        (1, 4): "std_conv_5",
    }


def test_derive_genotype_hand_case_including_zero():
    config = SupernetConfig()
    depth = torch.tensor([3.0, 0.3, 2.0, -1.0, 0.0, 0.0, 0.0, 0.0])
    genotype = derive_genotype(_hand_logits(config), depth, config, exclude_zero=False)
    assert genotype.num_cells == 1
    # (1,2) and (3,4) are kept (zero makes them the strongest) but recorded as dropped.
    assert genotype.edge_ops() == {
        (0, 2): "std_conv_3",
        (0, 3): "max_pool_3",
        (2, 3): "std_conv_7",
        (2, 4): "identity",
    }


def test_derive_genotype_one_edge_per_node():
    config = SupernetConfig(edges_per_node=1)
    genotype = derive_genotype(_hand_logits(config), torch.zeros(8), config)
    assert genotype.edge_ops() == {(0, 2): "std_conv_3", (0, 3): "max_pool_3", (2, 4): "identity"}
    assert genotype.num_cells == 1  # all-equal depth logits: the first wins


@pytest.mark.parametrize("edges_per_node", [1, 2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_derive_genotype_keeps_edges_per_node_and_excludes_zero(edges_per_node, seed):
    config = SupernetConfig(edges_per_node=edges_per_node, nodes_per_cell=3, max_cells=5)
    g = torch.Generator().manual_seed(seed)
    edge_logits = torch.randn(config.num_edges, len(config.primitives), generator=g) * 3
    edge_logits[:, config.primitives.index("zero")] += 4.0  # zero would win everywhere
    depth_logits = torch.randn(config.max_cells, generator=g)
    genotype = derive_genotype(edge_logits, depth_logits, config, exclude_zero=True)
    for target in range(2, 5):
        incoming = [e for e in genotype.edges if e.target == target]
        assert len(incoming) == min(edges_per_node, target)
    assert all(e.op != "zero" for e in genotype.edges)
    assert genotype.num_cells == int(depth_logits.argmax()) + 1
    # Including zero, the heavily favoured zero op drops edges.
    with_zero = derive_genotype(edge_logits, depth_logits, config, exclude_zero=False)
    assert len(with_zero.edges) < len(genotype.edges)


# ---------------------------------------------------------------------------------------------
# to_arch_weights


def test_to_arch_weights_is_one_hot_and_dropped_edges_select_zero():
    config = SupernetConfig(max_cells=4)
    edges, depth = GENOTYPE.to_arch_weights(config)
    assert edges.shape == (9, 10)
    assert torch.equal(edges.sum(-1), torch.ones(9))
    assert depth.tolist() == [0.0, 0.0, 1.0, 0.0]
    ops = GENOTYPE.edge_ops()
    for row, pair in enumerate(edge_list(3)):
        assert config.primitives[int(edges[row].argmax())] == ops.get(pair, "zero")


def test_to_arch_weights_rejects_mismatched_config():
    with pytest.raises(ValueError, match="cells"):
        GENOTYPE.to_arch_weights(SupernetConfig(max_cells=2))
    with pytest.raises(ValueError, match="nodes"):
        GENOTYPE.to_arch_weights(SupernetConfig(nodes_per_cell=2))

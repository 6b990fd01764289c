"""Whether the search decided: the entropy share of α and the undecided flag (known answers)."""

from __future__ import annotations

import math

import pytest
import torch

from orchestrator.method.search import (
    UNDECIDED_ENTROPY_SHARE,
    arch_entropy,
    entropy_share,
    undecided_check,
)
from searchspace import SupernetConfig
from searchspace.supernet import AdaBertSupernet


def test_entropy_share_known_values():
    assert entropy_share(math.log(10), 10) == pytest.approx(1.0)
    # p = (0.75, 0.25): H = -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.562335; / ln 2 = 0.811278.
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert entropy_share(h, 2) == pytest.approx(0.811278, abs=1e-6)
    assert entropy_share(0.0, 10) == 0.0
    assert entropy_share(0.0, 1) == 0.0  # one choice: nothing to decide, no division by log 1


def test_a_fresh_supernet_is_undecided_and_a_peaked_one_is_not():
    torch.manual_seed(0)
    supernet = AdaBertSupernet(SupernetConfig(vocab_size=30, hidden_size=16, max_cells=2))
    ops = supernet.edge_logits.shape[-1]
    edge_h, _ = arch_entropy(supernet)
    assert entropy_share(edge_h, ops) > UNDECIDED_ENTROPY_SHARE  # initialised near uniform
    with torch.no_grad():
        supernet.edge_logits.zero_()
        supernet.edge_logits[..., 0] = 5.0  # p0 = e^5 / (e^5 + ops - 1)
    p0 = math.exp(5) / (math.exp(5) + ops - 1)
    rest = (1 - p0) / (ops - 1)
    expected = -(p0 * math.log(p0) + (ops - 1) * rest * math.log(rest)) / math.log(ops)
    edge_h, _ = arch_entropy(supernet)
    assert entropy_share(edge_h, ops) == pytest.approx(expected, rel=1e-5)
    assert expected < UNDECIDED_ENTROPY_SHARE


def test_undecided_check_reads_the_epoch_the_genotype_came_from():
    history = [
        {"epoch": 1.0, "arch/entropy_share": 0.999},
        {"epoch": 2.0, "arch/entropy_share": 0.90},
        {"epoch": 3.0, "arch/entropy_share": 0.995},
    ]
    assert undecided_check(history, 2) == {
        "search/entropy_share": 0.90,
        "search/undecided": 0.0,
    }
    assert undecided_check(history, 3)["search/undecided"] == 1.0
    # A history written before the share was recorded: no claim either way.
    assert undecided_check([{"epoch": 1.0, "arch/entropy": 2.3}], 1) == {}

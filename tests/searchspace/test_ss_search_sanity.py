"""Sanity check with a known answer: a large efficiency weight drives the joint search to a tiny,
parameter-free student; without it the search keeps parametrised (convolutional) edges."""

from __future__ import annotations

import pytest
import torch

from losses import AdaBertObjective, LossConfig
from searchspace import AdaBertSupernet, Genotype, SupernetConfig, TemperatureSchedule
from searchspace.costs import expected_cost
from searchspace.primitives import PARAMETER_FREE

STEPS = 80
BATCH = 8
SEQ = 8
NUM_TEACHER_LAYERS = 4

# nodes_per_cell=2 (5 edges instead of 9) keeps each run around 5 s on 2 CPU cores.
CONFIG = SupernetConfig(
    vocab_size=50,
    max_positions=16,
    hidden_size=16,
    max_cells=4,
    nodes_per_cell=2,
    num_labels=2,
    dropout=0.0,
    mixed_op_mode="all",
)


def _toy_batch(g: torch.Generator):
    a = torch.randint(1, CONFIG.vocab_size, (BATCH, SEQ), generator=g)
    b = torch.randint(1, CONFIG.vocab_size, (BATCH, SEQ), generator=g)
    mask = torch.ones(BATCH, SEQ)
    # Label: does sentence a hold more "low" tokens than sentence b?
    labels = ((a < 25).sum(1) > (b < 25).sum(1)).long()
    # Synthetic teacher: confident and right, at every layer.
    teacher = 3.0 * torch.nn.functional.one_hot(labels, 2).float() - 1.5
    probes = teacher[:, None, :].expand(BATCH, NUM_TEACHER_LAYERS + 1, 2)
    return (a, mask, b, mask), labels, teacher, probes


def _search(efficiency_weight: float, seed: int = 0) -> Genotype:
    torch.manual_seed(seed)
    model = AdaBertSupernet(CONFIG)
    objective = AdaBertObjective(
        LossConfig(kd_weight=0.5, efficiency_weight=efficiency_weight), CONFIG, seq_len=SEQ
    )
    weight_opt = torch.optim.Adam(model.weight_parameters(), lr=1e-2)
    arch_opt = torch.optim.Adam(model.arch_parameters(), lr=0.1)
    schedule = TemperatureSchedule(total_epochs=STEPS)
    g = torch.Generator().manual_seed(seed)
    for step in range(STEPS):
        inputs, labels, teacher, probes = _toy_batch(g)
        edge_weights, depth_weights = model.sample_arch(schedule(step), generator=g)
        out = model(*inputs, edge_weights=edge_weights, depth_weights=depth_weights)
        terms = objective(out, labels, teacher_probe_logits=probes, teacher_logits=teacher)
        weight_opt.zero_grad()
        arch_opt.zero_grad()
        terms.total.backward()
        weight_opt.step()
        arch_opt.step()
    return model.genotype()


@pytest.fixture(scope="module")
def searched() -> dict[float, Genotype]:
    return {}


def _genotype(searched: dict[float, Genotype], beta: float) -> Genotype:
    if beta not in searched:
        searched[beta] = _search(beta)
    return searched[beta]


def _params(genotype: Genotype) -> float:
    edges, depth = genotype.to_arch_weights(CONFIG)
    return expected_cost(CONFIG, edges.double(), depth.double(), SEQ)[0].item()


@pytest.mark.slow
def test_large_efficiency_weight_gives_parameter_free_shallow_student(searched):
    genotype = _genotype(searched, 50.0)
    assert all(e.op in PARAMETER_FREE for e in genotype.edges), genotype.summary()
    assert genotype.num_cells <= 2, genotype.summary()


@pytest.mark.slow
def test_zero_efficiency_weight_keeps_parametrised_ops(searched):
    genotype = _genotype(searched, 0.0)
    has_conv = any(e.op not in PARAMETER_FREE for e in genotype.edges)
    assert has_conv or genotype.num_cells > 2, genotype.summary()
    assert has_conv, genotype.summary()


@pytest.mark.slow
def test_efficiency_weight_shrinks_expected_parameters(searched):
    small, large = _genotype(searched, 50.0), _genotype(searched, 0.0)
    assert _params(small) < _params(large)

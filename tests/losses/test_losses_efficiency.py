"""Efficiency loss: normalised op costs and (K̂ / K_max) · reduce_edges(Σ_o y_o c_o), by hand."""

from __future__ import annotations

import math

import pytest
import torch

from losses import AdaBertObjective, LossConfig, efficiency_loss, op_cost_vector
from searchspace import AdaBertSupernet, SupernetConfig
from searchspace.costs import expected_cost, op_cost_table

H = L = 128
# Hand values from the cost formulas at width 128, length 128:
# conv k: params k*H*H + H, FLOPs 2*k*H*H*L; pools: 0 params, 3*H*L FLOPs; identity/zero: 0.
P = {k: k * H * H + H for k in (3, 5, 7)}  # 49280, 82048, 114816
F = {k: 2 * k * H * H * L for k in (3, 5, 7)}  # 12582912, 20971520, 29360128
POOL_FLOPS = 3 * H * L  # 49152


def _hand_max_costs() -> list[float]:
    conv = {k: 0.5 * (P[k] / P[7] + F[k] / F[7]) for k in (3, 5, 7)}
    pool = 0.5 * (0 / P[7] + POOL_FLOPS / F[7])
    return [conv[3], conv[5], conv[7], conv[3], conv[5], conv[7], pool, pool, 0.0, 0.0]


def test_hand_cost_literals():
    assert (P[3], P[5], P[7]) == (49280, 82048, 114816)
    assert (F[3], F[5], F[7]) == (12582912, 20971520, 29360128)
    costs = _hand_max_costs()
    assert costs[2] == 1.0
    assert costs[0] == pytest.approx(0.5 * (49280 / 114816 + 3 / 7))
    assert costs[6] == pytest.approx(3 / 3584)  # 0.5 * 49152 / 29360128


def test_op_cost_vector_max_for_the_ten_primitives():
    config = SupernetConfig(hidden_size=H)
    params, flops = op_cost_table(config, L)
    costs = op_cost_vector(params, flops, normalizer="max", primitives=config.primitives)
    assert config.primitives == (
        "std_conv_3", "std_conv_5", "std_conv_7", "dil_conv_3", "dil_conv_5", "dil_conv_7",
        "avg_pool_3", "max_pool_3", "identity", "zero",
    )  # fmt: skip
    assert costs.tolist() == pytest.approx(_hand_max_costs(), rel=1e-12)


def test_op_cost_vector_max_from_hand_tensors():
    params = torch.tensor([10.0, 0.0, 40.0])
    flops = torch.tensor([100.0, 50.0, 0.0])
    costs = op_cost_vector(params, flops, normalizer="max", primitives=("a", "b", "c"))
    assert costs.tolist() == pytest.approx([0.5 * (0.25 + 1.0), 0.5 * 0.5, 0.5 * 1.0])
    # All-zero costs do not divide by zero.
    zero = op_cost_vector(torch.zeros(2), torch.zeros(2), normalizer="max", primitives=("a", "b"))
    assert zero.tolist() == [0.0, 0.0]


def test_op_cost_vector_pt_normaliser():
    config = SupernetConfig(hidden_size=H)
    params, flops = op_cost_table(config, L)
    costs = op_cost_vector(params, flops, normalizer="pt", primitives=config.primitives)
    # [A-PT]: identity and zero get size = FLOPs = 1 before softmax(params/1e5), softmax(F/1e7).
    p = [float(x) for x in params]
    f = [float(x) for x in flops]
    p[8] = p[9] = f[8] = f[9] = 1.0
    zp = sum(math.exp(x / 1e5) for x in p)
    zf = sum(math.exp(x / 1e7) for x in f)
    expected = [0.5 * (math.exp(a / 1e5) / zp + math.exp(b / 1e7) / zf) for a, b in zip(p, f)]
    assert costs.tolist() == pytest.approx(expected, rel=1e-9)
    assert costs.sum().item() == pytest.approx(1.0)


def test_op_cost_vector_softmax_normaliser():
    config = SupernetConfig(hidden_size=H)
    params, flops = op_cost_table(config, L)
    costs = op_cost_vector(params, flops, normalizer="softmax", primitives=config.primitives)
    m = _hand_max_costs()
    z = sum(math.exp(x) for x in m)
    assert costs.tolist() == pytest.approx([math.exp(x) / z for x in m], rel=1e-12)
    assert costs.sum().item() == pytest.approx(1.0)
    # The dearest op (std conv 7, m = 1) costs e times the free ones (m = 0): bounded spread.
    assert (costs[2] / costs[9]).item() == pytest.approx(math.e)


def test_op_cost_vector_unknown_normaliser():
    with pytest.raises(ValueError, match="normalizer"):
        op_cost_vector(torch.ones(2), torch.ones(2), normalizer="mean", primitives=("a", "b"))


EDGE_WEIGHTS = torch.tensor(
    [[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.5]], dtype=torch.float64
)
DEPTH_WEIGHTS = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
COSTS = torch.tensor([1.0, 0.5, 0.1, 0.0], dtype=torch.float64)


def test_efficiency_loss_mean_hand_value():
    # Per edge Σ_o y c: 0.25*(1.6) = 0.4, 1.0, 0.5*0.5 = 0.25 -> mean 0.55.
    # K̂ = 0.1*1 + 0.2*2 + 0.3*3 + 0.4*4 = 3.0 -> factor 3/4.
    got = efficiency_loss(EDGE_WEIGHTS, DEPTH_WEIGHTS, COSTS, reduction="mean")
    assert got.item() == pytest.approx(0.75 * 0.55)


def test_efficiency_loss_sum_hand_value():
    got = efficiency_loss(EDGE_WEIGHTS, DEPTH_WEIGHTS, COSTS, reduction="sum")
    assert got.item() == pytest.approx(0.75 * 1.65)


def test_efficiency_loss_one_hot_depth_and_gradients():
    edges = EDGE_WEIGHTS.clone().requires_grad_(True)
    depth = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    loss = efficiency_loss(edges, depth, COSTS, reduction="mean")
    assert loss.item() == pytest.approx(0.5 * 0.55)  # K = 2 of K_max = 4
    loss.backward()
    # d/dy_{e,o} = (K̂/K_max) * c_o / num_edges; d/dy_K[k] = k / K_max * 0.55.
    torch.testing.assert_close(edges.grad, (0.5 * COSTS / 3).expand(3, 4))
    torch.testing.assert_close(
        depth.grad, torch.tensor([0.25, 0.5, 0.75, 1.0], dtype=torch.float64) * 0.55
    )


def test_efficiency_loss_unknown_reduction():
    with pytest.raises(ValueError, match="reduction"):
        efficiency_loss(EDGE_WEIGHTS, DEPTH_WEIGHTS, COSTS, reduction="max")


# ---------------------------------------------------------------------------------------------
# AdaBertObjective puts the terms together as documented


@pytest.mark.parametrize(
    "loss_config",
    [
        LossConfig(),
        LossConfig(
            kd_weight=0.3,
            efficiency_weight=10.0,
            final_kd_share=0.0,
            layer_weighting="uniform",
            layer_mapping="kmax",
            edge_reduction="sum",
            kd_temperature=2.0,
        ),
    ],
)
def test_objective_combines_terms(loss_config):
    torch.manual_seed(0)
    config = SupernetConfig(vocab_size=30, max_positions=16, hidden_size=8, max_cells=3)
    model = AdaBertSupernet(config)
    edge_weights, depth_weights = model.sample_arch(1.0, generator=torch.Generator().manual_seed(0))
    ids = torch.randint(1, 30, (4, 5))
    mask = torch.ones(4, 5)
    out = model(
        ids, mask, ids.flip(1), mask, edge_weights=edge_weights, depth_weights=depth_weights
    )
    labels = torch.tensor([0, 1, 1, 0])
    probes = torch.randn(4, 5, 2)
    teacher = torch.randn(4, 2)
    objective = AdaBertObjective(loss_config, config, seq_len=5)
    terms = objective(out, labels, teacher_probe_logits=probes, teacher_logits=teacher)

    g, b = loss_config.kd_weight, loss_config.efficiency_weight
    torch.testing.assert_close(
        terms.total, (1 - g) * terms.ce + g * terms.kd + b * terms.efficiency
    )
    k = int(depth_weights.argmax())
    ce_k = torch.nn.functional.cross_entropy(out.logits_per_depth[k], labels)
    torch.testing.assert_close(terms.ce, ce_k)
    params, flops = expected_cost(config, edge_weights.double(), depth_weights.double(), 5)
    assert terms.expected_params.item() == pytest.approx(params.item())
    assert terms.expected_flops.item() == pytest.approx(flops.item())
    op_params, op_flops = op_cost_table(config, 5)
    costs = op_cost_vector(
        op_params,
        op_flops,
        normalizer=loss_config.efficiency_normalizer,
        primitives=config.primitives,
    )
    expected_e = efficiency_loss(
        edge_weights.double(), depth_weights.double(), costs, reduction=loss_config.edge_reduction
    )
    assert terms.efficiency.item() == pytest.approx(expected_e.item(), rel=1e-5)
    assert set(terms.as_floats()) == {
        "total",
        "ce",
        "kd",
        "efficiency",
        "expected_params",
        "expected_flops",
    }

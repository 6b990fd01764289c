"""Collapse guards against parameter-free ops: the derive-time cap (P-DARTS), the β warm-up ramp
(ours) and dropout on parameter-free op outputs during the search (P-DARTS, ours for all)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from losses import AdaBertObjective, LossConfig
from losses.objective import LossTerms
from orchestrator.config import SearchSection, build_config, load_config
from orchestrator.errors import UserInputError
from orchestrator.method import search as search_module
from orchestrator.method.search import SearchPhase, efficiency_ramp
from orchestrator.tasks.batches import Batch
from searchspace import SupernetConfig, derive_genotype
from searchspace.cells import MixedOp
from searchspace.genotype import edge_list
from searchspace.primitives import PARAMETER_FREE
from searchspace.supernet import AdaBertSupernet, SupernetOutput

# ---------------------------------------------------------------------------------------------
# derive cap: at most M parameter-free edges in the derived cell

# (source, target) -> (parameter-free argmax op, its logit, best parametrised op, its logit).
# Other ops have logit 0. The gap between the two decides which edges are converted first.
ALL_FREE = {
    (0, 2): ("identity", 3.0, "std_conv_5", 2.9),
    (1, 2): ("avg_pool_3", 3.0, "dil_conv_3", 1.0),
    (0, 3): ("max_pool_3", 3.0, "std_conv_7", 2.95),
    (1, 3): ("identity", 1.0, "std_conv_3", 0.5),  # weak: not kept
    (2, 3): ("identity", 3.0, "dil_conv_7", 0.5),
    (0, 4): ("avg_pool_3", 3.0, "dil_conv_5", 2.8),
    (1, 4): ("max_pool_3", 0.5, "std_conv_3", 0.2),  # weak: not kept
    (2, 4): ("max_pool_3", 0.5, "std_conv_3", 0.2),  # weak: not kept
    (3, 4): ("identity", 3.0, "std_conv_3", 2.0),
}
KEPT = {(0, 2), (1, 2), (0, 3), (2, 3), (0, 4), (3, 4)}


def _all_free_logits(config: SupernetConfig) -> torch.Tensor:
    names = list(config.primitives)
    logits = torch.zeros(config.num_edges, len(names))
    for row, pair in enumerate(edge_list(config.nodes_per_cell)):
        free, free_logit, param, param_logit = ALL_FREE[pair]
        logits[row, names.index(free)] = free_logit
        logits[row, names.index(param)] = param_logit
    return logits


def _derive(max_param_free=None, **kwargs):
    config = SupernetConfig(**kwargs)
    depth = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    return derive_genotype(
        _all_free_logits(config), depth, config, max_param_free=max_param_free
    ).edge_ops()


def test_uncapped_derivation_keeps_every_parameter_free_argmax():
    ops = _derive()
    assert ops == {pair: ALL_FREE[pair][0] for pair in KEPT}
    assert _derive(None) == ops


def test_cap_two_converts_the_edges_losing_least_probability_to_their_best_parametrised_op():
    # Probability lost by converting (softmax over 10 ops, the rest at logit 0): (0, 3) 0.021,
    # (0, 2) 0.041, (0, 4) 0.082, (3, 4) 0.358, (1, 2) 0.564, (2, 3) 0.620. Six free edges,
    # cap 2: the four cheapest are converted.
    ops = _derive(2)
    assert ops == {
        (0, 3): "std_conv_7",
        (0, 2): "std_conv_5",
        (0, 4): "dil_conv_5",
        (3, 4): "std_conv_3",
        (1, 2): "avg_pool_3",
        (2, 3): "identity",
    }
    assert sum(op in PARAMETER_FREE for op in ops.values()) == 2
    # The same choice recomputed from the probabilities.
    probs = torch.softmax(_all_free_logits(SupernetConfig()), dim=-1)
    rows = {pair: row for row, pair in enumerate(edge_list(3))}
    names = list(SupernetConfig().primitives)

    def lost(pair):
        free, _, param, _ = ALL_FREE[pair]
        return float(probs[rows[pair], names.index(free)] - probs[rows[pair], names.index(param)])

    cheapest = set(sorted(KEPT, key=lost)[:4])
    assert {pair for pair, op in ops.items() if op not in PARAMETER_FREE} == cheapest


def test_cap_keeps_the_derived_edges_and_the_depth():
    config = SupernetConfig()
    depth = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    capped = derive_genotype(_all_free_logits(config), depth, config, max_param_free=0)
    assert set(capped.edge_ops()) == KEPT
    assert all(op not in PARAMETER_FREE for op in capped.edge_ops().values())
    assert capped.edge_ops() == {pair: ALL_FREE[pair][2] for pair in KEPT}
    assert capped.num_cells == 2


@pytest.mark.parametrize("cap", [6, 7, 100])
def test_cap_at_or_above_the_count_changes_nothing(cap):
    assert _derive(cap) == _derive(None)


def test_cap_without_parametrised_primitives_leaves_the_genotype():
    config = SupernetConfig(primitives=("avg_pool_3", "max_pool_3", "identity", "zero"))
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(config.num_edges, 4, generator=g)
    depth = torch.zeros(config.max_cells)
    uncapped = derive_genotype(logits, depth, config)
    assert derive_genotype(logits, depth, config, max_param_free=0) == uncapped


def test_cap_counts_only_kept_ops_not_dropped_zero_edges():
    # With zero included, (1, 2) is kept as a zero edge (dropped from the genotype); only the
    # remaining free edges count against the cap.
    config = SupernetConfig()
    logits = _all_free_logits(config)
    row = edge_list(3).index((1, 2))
    logits[row, config.primitives.index("zero")] = 9.0
    depth = torch.zeros(config.max_cells)
    uncapped = derive_genotype(logits, depth, config, exclude_zero=False)
    assert (1, 2) not in uncapped.edge_ops()
    free = sum(op in PARAMETER_FREE for op in uncapped.edge_ops().values())
    assert free == 5
    assert derive_genotype(logits, depth, config, exclude_zero=False, max_param_free=5) == uncapped
    capped = derive_genotype(logits, depth, config, exclude_zero=False, max_param_free=4)
    assert capped.edge_ops() == {**uncapped.edge_ops(), (0, 3): "std_conv_7"}


def test_supernet_genotype_passes_the_cap_and_rejects_a_negative_one():
    torch.manual_seed(0)
    model = AdaBertSupernet(SupernetConfig(vocab_size=30, max_positions=16, hidden_size=8))
    with torch.no_grad():
        model.edge_logits.copy_(_all_free_logits(model.config))
    assert model.genotype(max_param_free=2).edge_ops() == _derive(2)
    assert model.genotype().edge_ops() == _derive(None)
    with pytest.raises(ValueError, match="max_param_free"):
        model.genotype(max_param_free=-1)


# ---------------------------------------------------------------------------------------------
# β warm-up ramp


def test_efficiency_ramp_known_schedule():
    # 100 steps, α learns from step 20, ramp over 0.2 * 100 = 20 steps.
    def ramp(step):
        return efficiency_ramp(step, total_steps=100, warmup_steps=20, ramp_fraction=0.2)

    assert [ramp(s) for s in (0, 10, 20)] == [0.0, 0.0, 0.0]
    assert ramp(25) == pytest.approx(0.25)
    assert ramp(30) == pytest.approx(0.5)
    assert [ramp(s) for s in (40, 41, 99)] == [1.0, 1.0, 1.0]
    # No ramp: the full β at every step, warm-up or not.
    assert all(
        efficiency_ramp(s, total_steps=100, warmup_steps=20, ramp_fraction=0.0) == 1.0
        for s in (0, 20, 99)
    )


def _output(config: SupernetConfig, seed: int = 0) -> SupernetOutput:
    g = torch.Generator().manual_seed(seed)
    edges = torch.softmax(torch.randn(config.num_edges, len(config.primitives), generator=g), -1)
    depth = torch.softmax(torch.randn(config.max_cells, generator=g), -1)
    logits = torch.randn(config.max_cells, 4, 2, generator=g)
    return SupernetOutput(logits, edges.requires_grad_(), depth.requires_grad_())


def test_objective_efficiency_term_scales_exactly_by_the_multiplier():
    config = SupernetConfig(vocab_size=30, max_positions=16, hidden_size=8, max_cells=3)
    loss_config = LossConfig(efficiency_weight=4.0)
    objective = AdaBertObjective(loss_config, config, seq_len=5)
    out = _output(config)
    labels = torch.tensor([0, 1, 1, 0])
    knowledge = {
        "teacher_probe_logits": torch.randn(4, 5, 2, generator=torch.Generator().manual_seed(1)),
        "teacher_logits": torch.randn(4, 2, generator=torch.Generator().manual_seed(2)),
    }
    default = objective(out, labels, **knowledge)
    assert torch.equal(
        objective(out, labels, **knowledge, efficiency_scale=1.0).total, default.total
    )
    g, b = loss_config.kd_weight, loss_config.efficiency_weight
    for scale in (0.0, 0.5, 0.25):
        terms = objective(out, labels, **knowledge, efficiency_scale=scale)
        assert torch.equal(terms.efficiency, default.efficiency)  # the term itself is unscaled
        assert torch.equal(
            terms.total, (1 - g) * terms.ce + g * terms.kd + b * scale * terms.efficiency
        )
        # The gradient reaching α through E scales the same way.
        (grad,) = torch.autograd.grad(terms.total, out.edge_weights)
        (full,) = torch.autograd.grad(default.total, out.edge_weights, retain_graph=True)
        torch.testing.assert_close(grad, scale * full)
    zero = objective(out, labels, **knowledge, efficiency_scale=0.0)
    assert torch.equal(zero.total, (1 - g) * zero.ce + g * zero.kd)


def _tiny_phase(cfg: SearchSection, batches: int = 10) -> SearchPhase:
    torch.manual_seed(0)
    config = SupernetConfig(vocab_size=30, max_positions=16, hidden_size=8, max_cells=2)
    supernet = AdaBertSupernet(config)
    objective = AdaBertObjective(LossConfig(), config, seq_len=5)
    loader = DataLoader(TensorDataset(torch.arange(batches)), batch_size=1)
    return SearchPhase(
        supernet,
        objective,
        None,
        train_loader=loader,
        dev_loader=loader,
        arch_loader=None,
        cfg=cfg,
        primary_metric="dev/accuracy",
        seed=0,
        progress=False,
    )


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
def test_search_phase_ramps_beta_over_steps_after_the_warm_up(monkeypatch):
    # 10 epochs of 10 steps; α learns from epoch 3 (step 20); β reaches full after 20 steps.
    cfg = SearchSection(epochs=10, arch_warmup_fraction=0.2, efficiency_ramp_fraction=0.2)
    phase = _tiny_phase(cfg)
    assert phase.efficiency_scale(0) == 0.0
    assert phase.efficiency_scale(20) == 0.0
    assert phase.efficiency_scale(30) == pytest.approx(0.5)
    assert phase.efficiency_scale(40) == 1.0

    seen: list[float] = []

    def fake_train_epoch(loader, step, *, limit, desc, progress):
        for _ in range(len(loader)):
            step(None)
        return {}, len(loader)

    def record(batch, *, temperature, update_arch, scale):
        seen.append(scale)
        return {}

    monkeypatch.setattr(search_module, "train_epoch", fake_train_epoch)
    monkeypatch.setattr(search_module, "evaluate", lambda *a, **k: {"dev/accuracy": 0.5})
    monkeypatch.setattr(phase, "joint_step", record)
    for _ in range(5):
        phase.run_epoch()
    assert seen[:21] == [0.0] * 21
    assert seen[30] == pytest.approx(0.5)
    assert seen[40:] == [1.0] * 10
    assert seen == [phase.efficiency_scale(s) for s in range(50)]
    # A phase restored at epoch 3 continues the same ramp (the step comes from the epoch).
    seen.clear()
    other = _tiny_phase(cfg)
    other.epoch = 3
    monkeypatch.setattr(other, "joint_step", record)
    other.run_epoch()
    assert seen == [phase.efficiency_scale(s) for s in range(30, 40)]


def test_search_phase_max_steps_per_epoch_sets_the_step_count():
    cfg = SearchSection(
        epochs=4, arch_warmup_fraction=0.25, efficiency_ramp_fraction=0.5, max_steps_per_epoch=3
    )
    phase = _tiny_phase(cfg)  # 4 epochs x 3 steps = 12; α from step 3; ramp over 6 steps
    assert [phase.efficiency_scale(s) for s in (3, 6, 9, 11)] == [0.0, 0.5, 1.0, 1.0]


# ---------------------------------------------------------------------------------------------
# dropout on parameter-free op outputs


def _mixed(mode: str = "all", **kwargs) -> MixedOp:
    config = SupernetConfig(hidden_size=8, mixed_op_mode=mode, **kwargs)
    torch.manual_seed(0)
    return MixedOp(config)


def _one_hot(op: MixedOp, name: str) -> torch.Tensor:
    weights = torch.zeros(len(op.ops))
    weights[list(op.ops).index(name)] = 1.0
    return weights


def _inputs(batch: int = 2000):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(batch, 5, 8, generator=g) + 3.0  # no exact zeros among real values
    return x, torch.ones(batch, 5)


@pytest.mark.parametrize("mode", ["all", "sampled"])
def test_identity_edge_drops_about_half_the_examples_and_rescales_the_rest(mode):
    op, (x, mask) = _mixed(mode), _inputs()
    op.train()
    torch.manual_seed(1)
    out = op(x, mask, _one_hot(op, "identity"), param_free_dropout=0.5)
    dropped = (out == 0).flatten(1).all(1)
    kept = ~dropped
    assert 0.45 < float(dropped.float().mean()) < 0.55
    assert torch.equal(out[kept], x[kept] / (1 - 0.5))
    assert torch.equal(out[dropped], torch.zeros_like(x[dropped]))
    # The masks come from the global torch RNG: the same seed, the same masks.
    torch.manual_seed(1)
    assert torch.equal(op(x, mask, _one_hot(op, "identity"), param_free_dropout=0.5), out)


@pytest.mark.parametrize("mode", ["all", "sampled"])
@pytest.mark.parametrize("name", ["avg_pool_3", "max_pool_3"])
def test_pooling_edges_are_dropped_too(mode, name):
    op, (x, mask) = _mixed(mode), _inputs(400)
    op.train()
    reference = op.ops[name](x, mask)
    out = op(x, mask, _one_hot(op, name), param_free_dropout=0.25)
    dropped = (out == 0).flatten(1).all(1)
    assert 0 < int(dropped.sum()) < 400
    assert torch.equal(out[~dropped], reference[~dropped] / (1 - 0.25))


@pytest.mark.parametrize("mode", ["all", "sampled"])
@pytest.mark.parametrize("name", ["std_conv_3", "dil_conv_5"])
def test_parametrised_ops_are_never_dropped(mode, name):
    op, (x, mask) = _mixed(mode), _inputs(400)
    op.train()
    out = op(x, mask, _one_hot(op, name), param_free_dropout=0.5)
    assert torch.equal(out, op.ops[name](x, mask))


def _soft_weights(op: MixedOp) -> torch.Tensor:
    return torch.softmax(torch.randn(len(op.ops), generator=torch.Generator().manual_seed(5)), 0)


def _old_mixture(op: MixedOp, x, mask, weights) -> torch.Tensor:
    total = torch.zeros_like(x)
    for w, child in zip(weights, op.ops.values()):
        total = total + w * child(x, mask)
    return total


@pytest.mark.parametrize("mode", ["all", "sampled"])
def test_eval_mode_and_zero_probability_give_exactly_the_old_output(mode):
    op, (x, mask) = _mixed(mode), _inputs(64)
    weights = _soft_weights(op)
    if mode == "all":
        old = _old_mixture(op, x, mask, weights)
    else:
        index = int(weights.argmax())
        old = weights[index] * list(op.ops.values())[index](x, mask)
    op.eval()
    assert torch.equal(op(x, mask, weights, param_free_dropout=0.5), old)
    op.train()
    assert torch.equal(op(x, mask, weights, param_free_dropout=0.0), old)
    assert torch.equal(op(x, mask, weights), old)
    state = torch.get_rng_state()
    op(x, mask, weights, param_free_dropout=0.0)
    assert torch.equal(torch.get_rng_state(), state)  # p = 0 draws no random numbers


def test_mixture_drops_only_its_parameter_free_terms():
    op, (x, mask) = _mixed("all"), _inputs(400)
    op.train()
    weights = _soft_weights(op)
    torch.manual_seed(0)
    out = op(x, mask, weights, param_free_dropout=0.999999)  # every free op almost surely dropped
    parametrised = torch.zeros_like(x)
    for w, (name, child) in zip(weights, op.ops.items()):
        if name not in PARAMETER_FREE:
            parametrised = parametrised + w * child(x, mask)
    torch.testing.assert_close(out, parametrised)


def test_supernet_dropout_is_set_by_the_search_and_off_in_eval():
    config = SupernetConfig(vocab_size=30, max_positions=16, hidden_size=8, max_cells=2, dropout=0)
    cfg = SearchSection(epochs=2, param_free_dropout=0.3)
    phase = _tiny_phase(cfg)
    assert phase.supernet.param_free_dropout == 0.3
    assert AdaBertSupernet(config).param_free_dropout == 0.0  # default: off

    torch.manual_seed(0)
    model = AdaBertSupernet(config)
    edges, depth = model.sample_arch(1.0, hard=False, noise=False)
    ids = torch.randint(1, 30, (6, 5), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(6, 5)

    def forward():
        return model(ids, mask, ids.flip(1), mask, edge_weights=edges, depth_weights=depth)

    model.train()
    plain = forward().logits_per_depth
    model.param_free_dropout = 0.5
    assert not torch.equal(forward().logits_per_depth, plain)
    model.eval()
    evaluated = forward().logits_per_depth
    model.param_free_dropout = 0.0
    assert torch.equal(forward().logits_per_depth, evaluated)
    model.train()
    assert torch.equal(forward().logits_per_depth, plain)


# ---------------------------------------------------------------------------------------------
# all-ops warm-up: every op trains on every warm-up step


def _op_grads(supernet: AdaBertSupernet) -> dict[str, bool]:
    """Whether each parametrised op of cell 0's first edge got a non-zero weight gradient."""
    edge = supernet.cells[0].edges["n2<-n0"]
    return {
        name: any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in op.parameters())
        for name, op in edge.ops.items()
        if any(True for _ in op.parameters())
    }


def _warmup_loss(all_ops: bool) -> AdaBertSupernet:
    torch.manual_seed(0)
    config = SupernetConfig(
        vocab_size=30, max_positions=16, hidden_size=8, max_cells=3, mixed_op_mode="sampled"
    )
    supernet = AdaBertSupernet(config)
    objective = AdaBertObjective(LossConfig(), config, seq_len=5)
    ids = torch.randint(1, 30, (4, 5), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(4, 5)
    batch = Batch(
        ids, mask, ids, mask, torch.tensor([0, 1, 0, 1]), torch.zeros(4, 4, 2), torch.zeros(4, 2)
    )
    calls: list[int] = []
    forward = supernet.forward

    def spy(*args, **kwargs):
        out = forward(*args, **kwargs)
        calls.append(out.logits_per_depth.shape[0])
        return out

    supernet.forward = spy
    terms = search_module.sampled_loss(
        supernet, objective, batch, 1.0, torch.Generator().manual_seed(2), all_ops=all_ops
    )
    terms.total.backward()
    supernet.depths_run = calls
    return supernet


def test_all_ops_warm_up_trains_every_op_and_every_depth_then_sampling_resumes():
    warm = _warmup_loss(all_ops=True)
    assert all(_op_grads(warm).values()), _op_grads(warm)
    assert warm.depths_run == [3]  # every depth's head, though the config samples one depth
    assert {m.mode for m in warm.modules() if isinstance(m, MixedOp)} == {"sampled"}  # restored
    sampled = _warmup_loss(all_ops=False)
    assert sum(_op_grads(sampled).values()) <= 1  # a hard sample trains one op, if any
    assert sampled.depths_run[0] <= 3


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
def test_search_phase_runs_all_ops_only_in_the_warm_up(monkeypatch):
    cfg = SearchSection(epochs=4, arch_warmup_fraction=0.5, warmup_all_ops=True)
    phase = _tiny_phase(cfg, batches=2)
    seen: list[bool] = []

    def fake_train_epoch(loader, step, *, limit, desc, progress):
        for _ in range(len(loader)):
            step(None)
        return {}, len(loader)

    def fake_loss(supernet, objective, batch, temperature, generator, scale=1.0, *, all_ops):
        seen.append(all_ops)
        return LossTerms(*(torch.zeros((), requires_grad=True),) * 6)

    monkeypatch.setattr(search_module, "train_epoch", fake_train_epoch)
    monkeypatch.setattr(search_module, "evaluate", lambda *a, **k: {"dev/accuracy": 0.5})
    monkeypatch.setattr(search_module, "sampled_loss", fake_loss)
    monkeypatch.setattr(search_module, "optimiser_step", lambda *a, **k: None)
    for _ in range(4):
        phase.run_epoch()
    assert seen == [True] * 4 + [False] * 4  # 2 warm-up epochs of 2 steps, then 2 searching
    off = _tiny_phase(SearchSection(epochs=4, arch_warmup_fraction=0.5), batches=2)
    seen.clear()
    for _ in range(4):
        off.run_epoch()
    assert seen == [False] * 8


# ---------------------------------------------------------------------------------------------
# settings


def test_defaults():
    cfg = SearchSection()
    assert cfg.max_param_free_edges is None
    assert cfg.efficiency_ramp_fraction == 0.0
    assert cfg.param_free_dropout == 0.0
    assert (
        load_config(None, ["search.max_param_free_edges=none"]).search.max_param_free_edges is None
    )
    loaded = load_config(
        None,
        [
            "search.max_param_free_edges=0",
            "search.efficiency_ramp_fraction=0.3",
            "search.param_free_dropout=0.5",
        ],
    ).search
    assert (loaded.max_param_free_edges, loaded.efficiency_ramp_fraction) == (0, 0.3)
    assert loaded.param_free_dropout == 0.5


@pytest.mark.parametrize(
    "name, value",
    [
        ("max_param_free_edges", -1),
        ("efficiency_ramp_fraction", -0.1),
        ("efficiency_ramp_fraction", 1.0),
        ("efficiency_ramp_fraction", float("nan")),
        ("param_free_dropout", -0.1),
        ("param_free_dropout", 1.0),
    ],
)
def test_invalid_values_name_the_field(name, value):
    with pytest.raises(ValueError, match=f"search.{name}"):
        SearchSection(**{name: value})
    with pytest.raises(UserInputError, match=f"search.{name}"):
        build_config({"search": {name: value}})


@pytest.mark.parametrize(
    "name, value", [("max_param_free_edges", 1.5), ("param_free_dropout", "x")]
)
def test_wrong_types_name_the_field(name, value):
    with pytest.raises(UserInputError, match=f"search.{name}"):
        build_config({"search": {name: value}})


# ---------------------------------------------------------------------------------------------
# resume: the dropout masks (global RNG) and the β ramp (step from the epoch) continue exactly


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["all", "sampled"])
def test_a_restored_search_with_the_guards_on_finishes_exactly_like_an_uninterrupted_one(
    tiny_teacher_dir, demo_data_dir, tmp_path, mode
):
    from orchestrator.method.pipeline import TrialRunner, prepare_task, run_one_task

    cfg = load_config(
        None,
        [
            "data.max_seq_length=16",
            "data.batch_size=16",
            "data.augment_copies=0",
            "teacher.epochs=1",
            "teacher.batch_size=16",
            "teacher.probe_epochs=1",
            "supernet.hidden_size=16",
            "supernet.max_cells=2",
            f'supernet.mixed_op_mode="{mode}"',
            "search.epochs=3",
            "search.arch_warmup_fraction=0.34",
            "search.efficiency_ramp_fraction=0.5",
            "search.param_free_dropout=0.3",
            "search.max_param_free_edges=1",
            "retrain.epochs=1",
            "run.measure_latency=false",
            "run.progress_bar=false",
            'task.name="mrpc"',
            f'task.data_dir="{demo_data_dir / "MRPC"}"',
            f'teacher.name_or_path="{tiny_teacher_dir}"',
            f'run.cache_dir="{tmp_path / "cache"}"',
        ],
    )
    prepared = prepare_task(cfg)
    whole = run_one_task(cfg, prepared)
    assert sum(op in PARAMETER_FREE for op in whole.genotype.edge_ops().values()) <= 1

    first = TrialRunner(cfg, prepared)
    epochs = first.epochs()
    for _ in range(2):  # into the ramp, one epoch before the search ends
        next(epochs)
    path = tmp_path / "state.pt"
    torch.save(first.state_dict(), path)
    del first, epochs
    torch.manual_seed(1234)  # a new process has another global RNG state
    second = TrialRunner(cfg, prepared)
    second.load_state_dict(torch.load(path, weights_only=True))
    resumed = run_one_task(cfg, prepared, runner=second)

    assert resumed.genotype == whole.genotype
    assert resumed.metrics == whole.metrics
    assert resumed.history == whole.history

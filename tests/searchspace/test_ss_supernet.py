"""Supernet parameter groups, gradient flow, weight inheritance and teacher-embedding init."""

from __future__ import annotations

import pytest
import torch

from losses import AdaBertObjective, LossConfig
from searchspace import AdaBertSupernet, DerivedStudent, Edge, Genotype, SupernetConfig

SEQ = 6
NUM_TEACHER_LAYERS = 4


def _config(**overrides) -> SupernetConfig:
    values = dict(vocab_size=50, max_positions=32, hidden_size=8, max_cells=3, num_labels=3)
    values.update(overrides)
    return SupernetConfig(**values)


def _loss(
    model: AdaBertSupernet, pair_batch, edge_weights, depth_weights, efficiency_weight=4.0
) -> torch.Tensor:
    config = model.config
    out = model(*pair_batch.unpadded(), edge_weights=edge_weights, depth_weights=depth_weights)
    g = torch.Generator().manual_seed(0)
    batch = pair_batch.ids_a.shape[0]
    labels = torch.tensor([0, 2, 1])[:batch]
    objective = AdaBertObjective(
        LossConfig(efficiency_weight=efficiency_weight), config, seq_len=pair_batch.ids_a.shape[1]
    )
    terms = objective(
        out,
        labels,
        teacher_probe_logits=torch.randn(
            batch, NUM_TEACHER_LAYERS + 1, config.num_labels, generator=g
        ),
        teacher_logits=torch.randn(batch, config.num_labels, generator=g),
    )
    for name in ("ce", "kd", "efficiency"):
        assert getattr(terms, name).item() > 0, name
    return terms.total


def test_parameter_groups_are_disjoint_and_cover_everything():
    model = AdaBertSupernet(_config())
    arch = {id(p) for p in model.arch_parameters()}
    weights = {id(p) for p in model.weight_parameters()}
    everything = {id(p) for p in model.parameters()}
    assert arch and weights
    assert not arch & weights
    assert arch | weights == everything
    assert len(model.weight_parameters()) == len(weights)  # no duplicates
    assert {p.shape for p in model.arch_parameters()} == {
        torch.Size([model.config.num_edges, len(model.config.primitives)]),
        torch.Size([model.config.max_cells]),
    }


def test_arch_parameters_are_registered():
    model = AdaBertSupernet(_config())
    state = model.state_dict()
    named = dict(model.named_parameters())
    for param in model.arch_parameters():
        names = [n for n, p in named.items() if p is param]
        assert len(names) == 1
        assert names[0] in state
        assert torch.equal(state[names[0]], param.detach())


def test_gradients_reach_both_groups_with_soft_weights(pair_batch):
    torch.manual_seed(0)
    model = AdaBertSupernet(_config())
    edge_weights, depth_weights = model.sample_arch(
        1.0, hard=False, generator=torch.Generator().manual_seed(1)
    )
    _loss(model, pair_batch, edge_weights, depth_weights).backward()
    for param in model.arch_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0
    for name, param in model.named_parameters():
        if name in ("edge_logits", "depth_logits"):
            continue
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


# With efficiency_weight 0 the edge logits can only get a gradient through the network itself.
@pytest.mark.parametrize("efficiency_weight", [4.0, 0.0])
def test_gradients_reach_both_groups_with_hard_sample(pair_batch, efficiency_weight):
    torch.manual_seed(0)
    model = AdaBertSupernet(_config())
    edge_weights, depth_weights = model.sample_arch(0.5, generator=torch.Generator().manual_seed(2))
    _loss(model, pair_batch, edge_weights, depth_weights, efficiency_weight).backward()
    # Straight-through: every edge logit gets a gradient, not only the selected entries.
    assert model.edge_logits.grad is not None
    assert torch.all(model.edge_logits.grad.abs().sum(-1) > 0)
    assert model.depth_logits.grad is not None
    assert model.depth_logits.grad.abs().sum() > 0
    assert model.embedding.word_embeddings.weight.grad.abs().sum() > 0
    # The op selected on edge n2<-n0 of cell 0 is trained.
    name = model.config.primitives[int(edge_weights[0].argmax())]
    selected = list(model.cells[0].edges["n2<-n0"].ops[name].parameters())
    assert all(p.grad.abs().sum() > 0 for p in selected)


def test_all_mode_with_a_hard_sample_trains_only_the_sampled_ops_weights(pair_batch):
    """ "all" runs every op for α's gradient, but the forward weights of a hard sample are
    one-hot, so an unsampled op's weights get no gradient (README, the collapse section)."""
    torch.manual_seed(0)
    model = AdaBertSupernet(_config(mixed_op_mode="all"))
    edge_weights, depth_weights = model.sample_arch(0.5, generator=torch.Generator().manual_seed(2))
    _loss(model, pair_batch, edge_weights, depth_weights).backward()
    picked = model.config.primitives[int(edge_weights[0].argmax())]
    for name, op in model.cells[0].edges["n2<-n0"].ops.items():
        grads = [p.grad for p in op.parameters()]
        if name == picked:
            assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), name
        else:
            assert all(g is None or torch.all(g == 0) for g in grads), name
    assert torch.all(model.edge_logits.grad[0] != 0)  # yet every op's logit learns


@pytest.mark.parametrize("efficiency_weight", [4.0, 0.0])
def test_sampled_mode_gives_gradients_to_arch_params(pair_batch, efficiency_weight):
    torch.manual_seed(0)
    model = AdaBertSupernet(_config(mixed_op_mode="sampled"))
    edge_weights, depth_weights = model.sample_arch(0.5, generator=torch.Generator().manual_seed(3))
    _loss(model, pair_batch, edge_weights, depth_weights, efficiency_weight).backward()
    assert model.edge_logits.grad is not None
    row_grads = model.edge_logits.grad.abs().sum(-1)
    selected_zero = edge_weights.argmax(-1) == model.config.primitives.index("zero")
    assert selected_zero.any() and not selected_zero.all()  # this seed covers both cases
    # Every edge whose sampled op has an output gets a gradient through the network.
    assert torch.all(row_grads[~selected_zero] > 0)
    # GDAS-style property: an edge that sampled "zero" outputs 0 whatever its weight, so only
    # the efficiency loss can move its logits.
    if efficiency_weight == 0:
        assert torch.all(row_grads[selected_zero] == 0)
    else:
        assert torch.all(row_grads[selected_zero] > 0)
    assert model.depth_logits.grad is not None
    assert model.depth_logits.grad.abs().sum() > 0


def test_sampled_mode_runs_only_the_selected_op(pair_batch):
    torch.manual_seed(0)
    config = _config(mixed_op_mode="sampled")
    model = AdaBertSupernet(config)
    edge_weights, depth_weights = model.sample_arch(0.5, generator=torch.Generator().manual_seed(4))
    _loss(model, pair_batch, edge_weights, depth_weights).backward()
    row = 0
    chosen = config.primitives[int(edge_weights[row].argmax())]
    for name, op in model.cells[0].edges["n2<-n0"].ops.items():
        for param in op.parameters():
            if name == chosen:
                assert param.grad is not None and param.grad.abs().sum() > 0
            else:
                assert param.grad is None or param.grad.abs().sum() == 0


GENOTYPES = [
    Genotype(
        (
            Edge(2, 0, "std_conv_3"),
            Edge(2, 1, "dil_conv_7"),
            Edge(3, 0, "avg_pool_3"),
            Edge(3, 2, "std_conv_5"),
            Edge(4, 1, "max_pool_3"),
            Edge(4, 3, "identity"),
        ),
        num_cells=2,
        nodes_per_cell=3,
    ),
    Genotype(
        (Edge(2, 1, "dil_conv_3"), Edge(3, 2, "identity"), Edge(4, 0, "std_conv_7")),
        num_cells=3,
        nodes_per_cell=3,
    ),
    Genotype((Edge(2, 0, "max_pool_3"),), num_cells=1, nodes_per_cell=3),
]


@pytest.mark.parametrize("genotype", GENOTYPES, ids=lambda g: f"K{g.num_cells}")
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"head_per_depth": False},
        {"teacher_embedding_size": 12},
        {"pair_encoding": "joint"},
        {"pair_encoding": "joint", "head_per_depth": False},
    ],
    ids=["per_depth_head", "shared_head", "factorised", "joint", "joint_shared_head"],
)
def test_derived_student_inherits_supernet_weights(genotype, overrides, pair_batch):
    torch.manual_seed(0)
    config = _config(**overrides)
    teacher = (
        {"teacher_word_embeddings": torch.randn(50, 12)}
        if "teacher_embedding_size" in overrides
        else {}
    )
    model = AdaBertSupernet(config, **teacher)
    with torch.no_grad():  # move every weight away from its init so inheritance is visible
        for param in model.weight_parameters():
            param.add_(0.3 * torch.randn_like(param))
    model.eval()
    edge_weights, depth_weights = genotype.to_arch_weights(config)
    out = model(*pair_batch.unpadded(), edge_weights=edge_weights, depth_weights=depth_weights)
    expected = out.logits_per_depth[genotype.num_cells - 1]

    student = DerivedStudent.from_supernet(model, genotype).eval()
    torch.testing.assert_close(student(*pair_batch.unpadded()), expected, atol=1e-5, rtol=1e-5)
    # A fresh student (no inheritance) gives different logits: the comparison has teeth.
    fresh = DerivedStudent(config, genotype).eval()
    assert not torch.allclose(fresh(*pair_batch.unpadded()), expected, atol=1e-3)


def test_teacher_word_embeddings_accepted_for_factorised_config():
    config = _config(teacher_embedding_size=24)
    table = torch.randn(50, 24)
    positions = torch.randn(40, 24)
    model = AdaBertSupernet(
        config, teacher_word_embeddings=table, teacher_position_embeddings=positions
    )
    assert torch.equal(model.embedding.word_embeddings.weight.detach(), table)
    assert torch.equal(model.embedding.position_embeddings.weight.detach(), positions[:32])
    word, position = model.embedding.low_dim_tables()
    assert word.shape == (50, 8) and position.shape == (32, 8)
    out = model(
        torch.randint(0, 50, (2, 5)),
        torch.ones(2, 5),
        torch.randint(0, 50, (2, 5)),
        torch.ones(2, 5),
        edge_weights=GENOTYPES[0].to_arch_weights(config)[0],
        depth_weights=GENOTYPES[0].to_arch_weights(config)[1],
    )
    assert out.logits_per_depth.shape == (GENOTYPES[0].num_cells, 2, 3)


@pytest.mark.parametrize("shape", [(50, 23), (49, 24), (50,), (50, 24, 1)])
def test_teacher_word_embeddings_wrong_shape_raise(shape):
    config = _config(teacher_embedding_size=24)
    with pytest.raises(ValueError, match="teacher word embeddings"):
        AdaBertSupernet(config, teacher_word_embeddings=torch.randn(*shape))


def test_teacher_position_embeddings_too_short_raise():
    config = _config(teacher_embedding_size=24)
    with pytest.raises(ValueError, match="position"):
        AdaBertSupernet(config, teacher_position_embeddings=torch.randn(10, 24))


def test_genotype_of_supernet_follows_its_logits():
    config = _config()
    model = AdaBertSupernet(config)
    with torch.no_grad():
        model.edge_logits.zero_()
        model.edge_logits[:, config.primitives.index("std_conv_5")] = 3.0
        model.depth_logits.zero_()
        model.depth_logits[1] = 2.0
    genotype = model.genotype()
    assert genotype.num_cells == 2
    assert {e.op for e in genotype.edges} == {"std_conv_5"}
    assert len(genotype.edges) == 2 * config.nodes_per_cell


def _full_mixture(self, x, mask, weights):
    """Reference MixedOp: every op under autograd, Σ_o w_o · o(x)."""
    return sum(w * op(x, mask) for w, op in zip(weights, self.ops.values()))


def test_hard_sample_gradients_equal_the_full_mixture(pair_batch, monkeypatch):
    """Unselected ops run without autograd; every gradient must match the plain mixture."""
    from searchspace.cells import MixedOp

    def gradients(model):
        torch.manual_seed(3)
        edge_weights, depth_weights = model.sample_arch(
            0.7, generator=torch.Generator().manual_seed(5)
        )
        model.zero_grad(set_to_none=True)
        _loss(model, pair_batch, edge_weights, depth_weights).backward()
        return {
            name: (p.grad if p.grad is not None else torch.zeros_like(p))
            for name, p in model.named_parameters()
        }

    torch.manual_seed(0)
    model = AdaBertSupernet(_config())
    model.eval()  # dropout off: both passes must see the same network
    fast = gradients(model)
    monkeypatch.setattr(MixedOp, "forward", _full_mixture)
    reference = gradients(model)
    assert fast.keys() == reference.keys()
    assert any(reference[name].abs().sum() > 0 for name in ("edge_logits", "depth_logits"))
    for name in reference:
        torch.testing.assert_close(fast[name], reference[name], rtol=1e-5, atol=1e-7, msg=name)


def test_cells_past_the_needed_depth_are_skipped_exactly(pair_batch):
    """ "all" with learning depth weights runs every cell; "sampled" and constant weights run
    up to the selected K, and the rows they compute equal the full computation's."""
    torch.manual_seed(0)
    full_model = AdaBertSupernet(_config()).eval()
    edge_weights, depth_weights = full_model.sample_arch(
        0.5, generator=torch.Generator().manual_seed(4)
    )
    k = int(depth_weights.argmax()) + 1
    full = full_model(
        *pair_batch.unpadded(), edge_weights=edge_weights, depth_weights=depth_weights
    )
    assert full.logits_per_depth.shape[0] == full_model.config.max_cells
    constant = full_model(
        *pair_batch.unpadded(),
        edge_weights=edge_weights.detach(),
        depth_weights=depth_weights.detach(),
    )
    assert constant.logits_per_depth.shape[0] == k
    torch.testing.assert_close(constant.logits_per_depth, full.logits_per_depth[:k].detach())
    sampled_model = AdaBertSupernet(_config(mixed_op_mode="sampled")).eval()
    sampled_model.load_state_dict(full_model.state_dict())
    sampled = sampled_model(
        *pair_batch.unpadded(), edge_weights=edge_weights, depth_weights=depth_weights
    )
    assert sampled.logits_per_depth.shape[0] == k
    torch.testing.assert_close(sampled.logits_per_depth, full.logits_per_depth[:k])
    # Only the computed depths feed the depth logits' gradient in "sampled" mode.
    sampled.logits_per_depth.sum().backward()
    assert (
        sampled_model.depth_logits.grad is None
        or torch.isfinite(sampled_model.depth_logits.grad).all()
    )

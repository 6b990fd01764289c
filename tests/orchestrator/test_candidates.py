"""Derive-time candidates ranked on dev (``search.candidate_param_free_caps``): which genotypes
are candidates, which one is kept, and the config's checks. The runner's part (retraining each
candidate, resuming between them) is in test_pipeline.py."""

from __future__ import annotations

import dataclasses
import types

import pytest
import torch

from orchestrator.config import SearchSection, load_config
from orchestrator.errors import UserInputError
from orchestrator.method.candidates import CandidateRanking, candidate_genotypes, deepest_within
from orchestrator.method.retrain import RetrainResult
from searchspace import SupernetConfig
from searchspace.genotype import Edge, Genotype
from searchspace.primitives import PARAMETER_FREE
from searchspace.supernet import AdaBertSupernet

SEQ = 16


def _supernet() -> AdaBertSupernet:
    """α whose argmax is parameter-free on every edge, a convolution close behind on each."""
    torch.manual_seed(0)
    model = AdaBertSupernet(SupernetConfig(vocab_size=30, max_positions=16, hidden_size=8))
    names = list(model.config.primitives)
    free = [n for n in names if n in PARAMETER_FREE and n != "zero"]
    with torch.no_grad():
        model.edge_logits.zero_()
        for row in range(model.config.num_edges):
            model.edge_logits[row, names.index(free[row % len(free)])] = 3.0 + 0.1 * row
            model.edge_logits[row, names.index("std_conv_3")] = 2.5 + 0.05 * row
    return model


def _free_edges(genotype: Genotype) -> int:
    return sum(op in PARAMETER_FREE for op in genotype.edge_ops().values())


def test_candidates_are_the_searched_genotype_then_one_per_cap_without_duplicates():
    """The hand-made α keeps six parameter-free edges: cap 4 converts two, cap 0 all six, and
    cap 9 (or a repeated cap) derives the searched genotype or an earlier candidate again."""
    model = _supernet()
    searched = model.genotype()
    assert _free_edges(searched) == 6
    cfg = SearchSection(candidate_param_free_caps=(4, 9, 0, 4))
    found = candidate_genotypes(searched, model, cfg, SEQ)
    assert found == [searched, model.genotype(max_param_free=4), model.genotype(max_param_free=0)]
    assert [_free_edges(g) for g in found] == [6, 4, 0]
    assert found[0] is searched
    assert len({g.num_cells for g in found}) == 1  # the cap changes ops, never the depth


def test_no_caps_means_the_searched_genotype_alone():
    model = _supernet()
    searched = model.genotype(max_param_free=2)
    assert candidate_genotypes(searched, model, SearchSection(), SEQ) == [searched]


def test_candidates_keep_exclude_zero_from_the_search_config():
    model = _supernet()
    with torch.no_grad():
        model.edge_logits[:2, list(model.config.primitives).index("zero")] = 10.0
    cfg = SearchSection(exclude_zero=False, candidate_param_free_caps=(0,))
    searched = model.genotype(exclude_zero=False)
    found = candidate_genotypes(searched, model, cfg, SEQ)
    capped = model.genotype(exclude_zero=False, max_param_free=0)
    assert found == [searched, capped] and capped != model.genotype(max_param_free=0)


def _cell_flops(genotype: Genotype, hidden: int) -> int:
    """One cell by hand: 2·k·h²·T per convolution, 3·h·T per pooling, nothing for identity."""
    kernels = {"std_conv_3": 3, "dil_conv_3": 3, "std_conv_5": 5}
    total = 0
    for op in genotype.edge_ops().values():
        if op in kernels:
            total += 2 * kernels[op] * hidden * hidden * SEQ
        elif op in ("avg_pool_3", "max_pool_3"):
            total += 3 * hidden * SEQ
    return total


def test_the_flops_bound_keeps_the_deepest_stack_of_the_same_cell_that_fits():
    config = SupernetConfig(
        vocab_size=30, max_positions=16, hidden_size=8, pair_encoding="joint"
    )  # one sentence: the cells run once per example
    conv = Genotype(
        (Edge(2, 0, "std_conv_3"), Edge(2, 1, "std_conv_5"), Edge(3, 0, "avg_pool_3"),
         Edge(3, 2, "identity"), Edge(4, 1, "dil_conv_3"), Edge(4, 3, "max_pool_3")),
        num_cells=4, nodes_per_cell=3,
    )  # fmt: skip
    cell = _cell_flops(conv, 8)
    assert cell == 2 * 11 * 64 * SEQ + 2 * 3 * 8 * SEQ  # 22,528 + 768
    head = 2 * 8 * 2  # the output linear on the 8-wide pooled features, 2 labels
    # Between two and three cells' worth: two cells fit, the cell itself is unchanged.
    cut = deepest_within(conv, config, 2 * cell + head + 0.5 * cell, SEQ)
    assert cut.num_cells == 2 and cut.edges == conv.edges
    assert deepest_within(conv, config, 4 * cell + head, SEQ) == conv  # exactly at the bound
    assert deepest_within(conv, config, 4 * cell + head - 1, SEQ).num_cells == 3
    assert deepest_within(conv, config, cell + head - 1, SEQ) is None


def test_the_flops_bound_cuts_or_drops_candidates_and_never_leaves_none():
    model = _supernet()
    searched = model.genotype()  # all parameter-free: a few thousand FLOPs
    conv = model.genotype(max_param_free=0)
    depth, cell = searched.num_cells, _cell_flops(conv, 8)
    assert _cell_flops(searched, 8) < cell // 10
    # The hand-made supernet is siamese: the cells run once per sentence, and the head reads
    # [u, v, |u - v|, u * v] (2 · 32 · 2 FLOPs). Two cells fit, three do not.
    two_cells = 2 * 2 * cell + 128
    bound = two_cells + cell
    cfg = SearchSection(candidate_param_free_caps=(0,), max_student_flops=bound)
    found = candidate_genotypes(searched, model, cfg, SEQ)
    assert found == [searched, dataclasses.replace(conv, num_cells=2)] and depth > 2
    # Below one convolutional cell: the convolutional candidate is dropped.
    cfg = SearchSection(candidate_param_free_caps=(0,), max_student_flops=2 * cell)
    assert candidate_genotypes(searched, model, cfg, SEQ) == [searched]
    # Below everything: the cheapest single cell stands in, so the trial still has a student.
    cfg = SearchSection(candidate_param_free_caps=(0,), max_student_flops=1)
    assert candidate_genotypes(searched, model, cfg, SEQ) == [
        dataclasses.replace(searched, num_cells=1)
    ]


def test_the_flops_bound_must_be_positive_when_set():
    assert load_config(None, ["search.max_student_flops=2e7"]).search.max_student_flops == 2e7
    assert load_config(None, ["search.max_student_flops=none"]).search.max_student_flops is None
    for bad in ("0", "-1", '"many"'):
        with pytest.raises(UserInputError, match="search.max_student_flops"):
            load_config(None, [f"search.max_student_flops={bad}"])


def _genotype(op: str) -> Genotype:
    return Genotype((Edge(2, 0, op), Edge(2, 1, op)), num_cells=1, nodes_per_cell=1)


def _retrain(f1: float, *, degenerate: bool = False, marker: float = 0.0):
    """What ``record`` reads of a finished RetrainPhase: its result and its best epoch's
    weights."""
    metrics = {"dev/f1": f1, "dev/degenerate": float(degenerate), "dev/one_class": 0.0}
    student = torch.nn.Linear(1, 1)
    with torch.no_grad():
        student.weight.fill_(marker)
    result = RetrainResult(best_epoch=2, dev_metrics=metrics, history=[{"epoch": 1.0}])
    best = {"state": {k: v.clone() for k, v in student.state_dict().items()}}
    return types.SimpleNamespace(result=lambda: result, student=student, best=best)


def test_ranking_keeps_the_best_dev_score_and_a_learnt_student_over_a_constant_one():
    """MRPC-like: candidate 1 scores highest but predicts a constant; candidate 2 wins."""
    ranking = CandidateRanking([_genotype(op) for op in ("identity", "std_conv_3", "dil_conv_3")],
                               "dev/f1")  # fmt: skip
    ranking.record(_retrain(0.70, marker=0.0))
    assert (ranking.index, ranking.done, ranking.best["index"]) == (1, False, 0)
    ranking.record(_retrain(0.81, degenerate=True, marker=1.0))
    assert ranking.best["index"] == 0
    ranking.record(_retrain(0.75, marker=2.0))
    assert ranking.done and ranking.index == 2
    best = ranking.best
    assert best["index"] == 2 and best["metrics"]["dev/f1"] == 0.75 and best["epoch"] == 2
    assert Genotype.from_dict(best["genotype"]) == _genotype("dil_conv_3")
    assert float(best["student"]["weight"]) == 2.0
    assert [s["dev/f1"] for s in ranking.scores] == [0.70, 0.81, 0.75]
    assert ranking.scores[1]["genotype"] == _genotype("std_conv_3").summary()
    with pytest.raises(RuntimeError, match="every candidate"):
        ranking.record(_retrain(0.9))


def test_ranking_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    ranking = CandidateRanking([_genotype("identity"), _genotype("std_conv_3")], "dev/f1")
    ranking.record(_retrain(0.7, marker=3.0))
    path = tmp_path / "state.pt"
    torch.save(ranking.state_dict(), path)
    restored = CandidateRanking([_genotype("identity")], "dev/f1")
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert restored.candidates == ranking.candidates and restored.index == 1
    assert restored.current == _genotype("std_conv_3") and not restored.done
    assert float(restored.best["student"]["weight"]) == 3.0 and restored.scores == ranking.scores


def test_ranking_needs_a_candidate():
    with pytest.raises(ValueError, match="at least one"):
        CandidateRanking([], "dev/f1")


def test_caps_setting_reads_a_list_and_rejects_anything_else():
    cfg = load_config(None, ["search.candidate_param_free_caps=[2, 0]"])
    assert cfg.search.candidate_param_free_caps == (2, 0)
    assert load_config(None, []).search.candidate_param_free_caps == ()
    with pytest.raises(UserInputError, match="candidate_param_free_caps must be a list"):
        load_config(None, ["search.candidate_param_free_caps=2"])
    with pytest.raises(UserInputError, match=r"candidate_param_free_caps must be a list of"):
        load_config(None, ["search.candidate_param_free_caps=[2, -1]"])
    with pytest.raises(UserInputError, match="candidate_param_free_caps must be an integer"):
        load_config(None, ['search.candidate_param_free_caps=["two"]'])

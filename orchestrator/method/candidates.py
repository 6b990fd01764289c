"""Derive-time candidates ranked on dev (``search.candidate_param_free_caps``).

The argmax of α is one reading of the search. The collapse study (README, "The collapse") found
that the share of parameter-free edges it keeps is the reading that matters most, and that the
best share differs by task: capping it helped SST-2 and hurt MRPC. So the search derives one
genotype per cap from the same α, every distinct one is retrained the same way, and the dev
score decides, as it already decides the search epoch ([A-ET] find_best_search).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from orchestrator.config import SearchSection
from orchestrator.method.retrain import RetrainPhase
from orchestrator.tasks.evaluation import selection_key
from searchspace.config import SupernetConfig
from searchspace.costs import genotype_cost
from searchspace.genotype import Genotype
from searchspace.supernet import AdaBertSupernet


def deepest_within(
    genotype: Genotype, config: SupernetConfig, max_flops: float, seq_len: int
) -> Genotype | None:
    """The genotype with the most of its cells (at most its own K) whose FLOPs per example fit
    ``max_flops``; None when a single cell is already over it."""
    for cells in range(genotype.num_cells, 0, -1):
        cut = dataclasses.replace(genotype, num_cells=cells)
        if genotype_cost(config, cut, seq_len).flops <= max_flops:
            return cut
    return None


def candidate_genotypes(
    searched: Genotype, supernet: AdaBertSupernet, cfg: SearchSection, seq_len: int
) -> list[Genotype]:
    """The searched genotype first, then one per extra cap from the supernet's α (the search's
    best epoch must be loaded), each cut to ``cfg.max_student_flops`` at ``seq_len``,
    duplicates dropped: a cap at or above the searched genotype's parameter-free count changes
    nothing. Never empty: when no candidate fits the bound, the cheapest single cell stands in
    (the trial then reports that its student is over the budget)."""
    readings = [searched]
    for cap in cfg.candidate_param_free_caps:
        readings.append(supernet.genotype(exclude_zero=cfg.exclude_zero, max_param_free=cap))
    if cfg.max_student_flops is not None:
        config, bound = supernet.config, cfg.max_student_flops
        fitting = [deepest_within(g, config, bound, seq_len) for g in readings]
        if all(g is None for g in fitting):
            one_cell = [dataclasses.replace(g, num_cells=1) for g in readings]
            fitting = [min(one_cell, key=lambda g: genotype_cost(config, g, seq_len).flops)]
        readings = [g for g in fitting if g is not None]
    found: list[Genotype] = []
    for genotype in readings:
        if genotype not in found:
            found.append(genotype)
    return found


class CandidateRanking:
    """Which candidate is being retrained, and the best finished one so far (its weights too)."""

    def __init__(self, candidates: list[Genotype], primary_metric: str) -> None:
        if not candidates:
            raise ValueError("at least one candidate genotype is needed")
        self.candidates = list(candidates)
        self.primary_metric = primary_metric
        self.index = 0
        self.done = False
        self.best: dict[str, Any] | None = None
        self.scores: list[dict[str, Any]] = []

    @property
    def current(self) -> Genotype:
        return self.candidates[self.index]

    def record(self, retrain: RetrainPhase) -> None:
        """Close the current candidate's retrain; move to the next one, or finish."""
        if self.done:
            raise RuntimeError("every candidate has been recorded")
        result = retrain.result()  # loads the candidate's best epoch into its student
        metrics = result.dev_metrics
        self.scores.append(
            {
                "candidate": float(self.index),
                "genotype": self.current.summary(),
                "retrain_best_epoch": float(result.best_epoch),
                **{k: float(v) for k, v in metrics.items()},
            }
        )
        key = selection_key(metrics, self.primary_metric)
        if self.best is None or key > selection_key(self.best["metrics"], self.primary_metric):
            self.best = {
                "index": self.index,
                "genotype": self.current.to_dict(),
                "epoch": result.best_epoch,
                "metrics": dict(metrics),
                "history": list(result.history),
                "student": retrain.best["state"],  # the retrain's own copy of that epoch
            }
        if self.index + 1 < len(self.candidates):
            self.index += 1
        else:
            self.done = True

    def state_dict(self) -> dict[str, Any]:
        return {
            "candidates": [g.to_dict() for g in self.candidates],
            "index": self.index,
            "done": self.done,
            "best": self.best,
            "scores": list(self.scores),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.candidates = [Genotype.from_dict(g) for g in state["candidates"]]
        self.index = int(state["index"])
        self.done = bool(state["done"])
        self.best = state["best"]
        self.scores = list(state["scores"])

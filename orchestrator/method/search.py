"""Architecture search (Ray-free): joint or alternating optimisation of weights and α, one epoch at
a time, with every piece of state a restarted trial needs to continue bit for bit.

Method notes section 4: w with SGD (momentum 0.9, cosine 2e-2 -> 5e-4, wd 3e-4), α with Adam
(3e-4, betas (0.5, 0.999), wd 1e-3), clip 5, on the training set; the epoch with the best dev
score of the derived sub-network is kept ([A-ET] find_best_search, [A-PT]).
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader

from losses.objective import AdaBertObjective
from orchestrator.config import SearchSection
from orchestrator.method.epochs import (
    capped_batches,
    loader_state,
    means,
    optimiser_step,
    restore_loader,
    run_phase,
    steps_per_epoch,
    train_epoch,
)
from orchestrator.progress import EpochReport
from orchestrator.tasks.batches import Batch
from orchestrator.tasks.evaluation import evaluate, selection_key
from orchestrator.tasks.registry import TaskSpec
from searchspace.genotype import Genotype
from searchspace.gumbel import TemperatureSchedule
from searchspace.supernet import AdaBertSupernet


@dataclass
class SearchResult:
    genotype: Genotype
    best_epoch: int
    best_score: float
    supernet_state: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)


# A search whose edge distributions keep more than this share of their maximum entropy derived
# its genotype from an almost uniform α: the argmax of near-ties, close to a random pick. 0.98 is
# about one op at twice the probability of each of nine others (p = 0.2 against 0.089: 0.981).
# At the bench's budget (280 α steps, arch_lr 3e-3) the first seed's α at the genotype's epoch
# kept 0.997 (MRPC), 0.999 (STS-B), 0.994 (RTE, CoLA): searches no better than a random genotype
# on MRPC, STS-B and CoLA; SST-2's (700 α steps) kept 0.964 and beat every control
# (bench/results/<task>/bench.json). With arch_lr 3e-2 MRPC's kept 0.65 (README, "Does the
# search decide?").
UNDECIDED_ENTROPY_SHARE = 0.98


def entropy_share(entropy: float, choices: int) -> float:
    """``entropy`` (nats) as a share of the maximum, log(choices): 1 = uniform, 0 = one-hot."""
    return entropy / math.log(choices) if choices > 1 else 0.0


def undecided_check(history: list[dict[str, float]], best_epoch: int) -> dict[str, float]:
    """The entropy share of the α the genotype was derived from (its search epoch) and whether
    it is above ``UNDECIDED_ENTROPY_SHARE``; empty for a history from before the share was
    recorded."""
    epoch = next((h for h in history if h["epoch"] == best_epoch), {})
    share = epoch.get("arch/entropy_share")
    if share is None:
        return {}
    return {
        "search/entropy_share": share,
        "search/undecided": float(share > UNDECIDED_ENTROPY_SHARE),
    }


def arch_entropy(supernet: AdaBertSupernet) -> tuple[float, float]:
    """Mean entropy (nats) of the edge distributions, and of the depth distribution."""
    with torch.no_grad():
        edge_p = torch.softmax(supernet.edge_logits, dim=-1)
        depth_p = torch.softmax(supernet.depth_logits, dim=-1)
        edge_h = -(edge_p * edge_p.clamp_min(1e-12).log()).sum(-1).mean()
        depth_h = -(depth_p * depth_p.clamp_min(1e-12).log()).sum()
    return float(edge_h), float(depth_h)


def subnetwork_forward(supernet: AdaBertSupernet, genotype: Genotype):
    """Forward of the derived sub-network inside the supernet (one-hot weights, no noise)."""
    edge_w, depth_w = genotype.to_arch_weights(supernet.config)

    def forward(batch: Batch) -> torch.Tensor:
        out = supernet(*batch.student_inputs(), edge_weights=edge_w, depth_weights=depth_w)
        return out.logits_per_depth[genotype.num_cells - 1]

    return forward


def warmup_epochs(cfg: SearchSection) -> int:
    return int(cfg.arch_warmup_fraction * cfg.epochs)


def efficiency_ramp(
    step: int, *, total_steps: int, warmup_steps: int, ramp_fraction: float
) -> float:
    """β's multiplier at search step ``step`` (0-based over all epochs; ours): 0 until α starts
    learning at ``warmup_steps``, then linear up to 1 over ``ramp_fraction * total_steps``."""
    if ramp_fraction <= 0:
        return 1.0
    progress = max(0, step - warmup_steps) / max(1, total_steps)
    return min(1.0, progress / ramp_fraction)


def sampled_loss(
    supernet,
    objective,
    batch: Batch,
    temperature: float,
    generator,
    efficiency_scale=1.0,
    *,
    all_ops: bool = False,
):
    """The objective under one Gumbel sample of the architecture, or with ``all_ops`` under
    the soft, noiseless weights softmax(α / T), every op and depth running and training (the
    warm-up of ``search.warmup_all_ops``; α is frozen there at its initial values, so the
    weights stay uniform to about 1e-3)."""
    if all_ops:
        edge_w, depth_w = supernet.sample_arch(temperature, noise=False, hard=False)
        with supernet.every_op_runs():
            output = supernet(*batch.student_inputs(), edge_weights=edge_w, depth_weights=depth_w)
    else:
        edge_w, depth_w = supernet.sample_arch(temperature, generator=generator)
        output = supernet(*batch.student_inputs(), edge_weights=edge_w, depth_weights=depth_w)
    return objective(
        output,
        batch.labels,
        teacher_probe_logits=batch.teacher_probe_logits,
        teacher_logits=batch.teacher_logits,
        efficiency_scale=efficiency_scale,
    )


class SearchPhase:
    """``cfg.epochs`` search epochs; ``run_epoch`` runs the next one and reports it.

    "joint" ([A-ET], [A-PT]): w and α step on the same training batch. "alternating" ([PS],
    first-order DARTS): w steps on a batch of one half of the training set, α on a batch of the
    other half (``arch_loader``). The first ``warmup_epochs(cfg)`` epochs train w only; the
    temperature anneals over the epochs after them, and the best-dev epoch is chosen among them.
    """

    name = "search"

    def __init__(
        self,
        supernet: AdaBertSupernet,
        objective: AdaBertObjective,
        task: TaskSpec,
        *,
        train_loader: DataLoader,
        dev_loader: DataLoader,
        arch_loader: DataLoader | None,
        cfg: SearchSection,
        primary_metric: str,
        seed: int,
        progress: bool = True,
    ) -> None:
        self.supernet, self.objective, self.task, self.cfg = supernet, objective, task, cfg
        self.train_loader, self.dev_loader, self.arch_loader = train_loader, dev_loader, arch_loader
        self.primary_metric, self.progress = primary_metric, progress
        supernet.param_free_dropout = cfg.param_free_dropout
        self.w_opt = torch.optim.SGD(
            supernet.weight_parameters(),
            lr=cfg.weight_lr,
            momentum=cfg.weight_momentum,
            weight_decay=cfg.weight_decay,
        )
        self.w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.w_opt, max(1, cfg.epochs), eta_min=cfg.weight_lr_min
        )
        self.a_opt = torch.optim.Adam(
            supernet.arch_parameters(),
            lr=cfg.arch_lr,
            betas=(cfg.arch_beta1, cfg.arch_beta2),
            weight_decay=cfg.arch_weight_decay,
        )
        self.warmup = warmup_epochs(cfg)
        self.schedule = TemperatureSchedule(
            initial=cfg.temperature_initial,
            minimum=min(cfg.temperature_minimum, cfg.temperature_initial),
            decay=cfg.temperature_decay,
            total_epochs=cfg.epochs - self.warmup,
        )
        self.generator = torch.Generator().manual_seed(seed)
        self.params = list(supernet.parameters())
        self.epoch = 0  # completed epochs
        self.best: dict[str, Any] | None = None
        self.history: list[dict[str, float]] = []

    @property
    def num_epochs(self) -> int:
        return self.cfg.epochs

    @property
    def done(self) -> bool:
        return self.epoch >= self.cfg.epochs

    # --- the two update rules --------------------------------------------------------------

    def efficiency_scale(self, step: int) -> float:
        """β's ramp multiplier at search step ``step`` (see ``efficiency_ramp``)."""
        per_epoch = steps_per_epoch(self.train_loader, self.cfg.max_steps_per_epoch)
        return efficiency_ramp(
            step,
            total_steps=self.cfg.epochs * per_epoch,
            warmup_steps=self.warmup * per_epoch,
            ramp_fraction=self.cfg.efficiency_ramp_fraction,
        )

    def _weights_loss(self, batch: Batch, temperature: float, update_arch: bool, scale: float):
        """The loss of a weights step: all ops in the warm-up when warmup_all_ops is on (α
        frozen there), one Gumbel sample otherwise."""
        return sampled_loss(
            self.supernet,
            self.objective,
            batch,
            temperature,
            self.generator,
            scale,
            all_ops=self.cfg.warmup_all_ops and not update_arch,
        )

    def joint_step(self, batch: Batch, *, temperature: float, update_arch: bool, scale=1.0):
        terms = self._weights_loss(batch, temperature, update_arch, scale)
        optimisers = (self.w_opt, self.a_opt) if update_arch else (self.w_opt,)
        optimiser_step(terms.total, optimisers, self.params, self.cfg.grad_clip)
        return terms.as_floats()

    def alternating_step(
        self, batch: Batch, *, temperature: float, update_arch: bool, arch, scale=1.0
    ):
        terms = self._weights_loss(batch, temperature, update_arch, scale)
        optimiser_step(terms.total, (self.w_opt,), self.params, self.cfg.grad_clip)
        if update_arch:
            arch_batch = next(arch, None)
            if arch_batch is None:  # the α half ran out before the w half: start it again
                arch.restart()
                arch_batch = next(arch)
            arch_terms = sampled_loss(
                self.supernet, self.objective, arch_batch, temperature, self.generator, scale
            )
            optimiser_step(arch_terms.total, (self.a_opt,), self.params, self.cfg.grad_clip)
        return terms.as_floats()

    # --- one epoch -------------------------------------------------------------------------

    def run_epoch(self) -> EpochReport:
        epoch = self.epoch + 1
        temperature = self.schedule(max(0, self.epoch - self.warmup))
        update_arch = self.epoch >= self.warmup
        # Search steps count from the epoch, so a restored phase continues the β ramp exactly.
        per_epoch = steps_per_epoch(self.train_loader, self.cfg.max_steps_per_epoch)
        step_index = itertools.count(self.epoch * per_epoch)
        if self.arch_loader is None:

            def step(batch):
                return self.joint_step(
                    batch,
                    temperature=temperature,
                    update_arch=update_arch,
                    scale=self.efficiency_scale(next(step_index)),
                )
        else:
            arch = _Restartable(self.arch_loader)

            def step(batch):
                return self.alternating_step(
                    batch,
                    temperature=temperature,
                    update_arch=update_arch,
                    arch=arch,
                    scale=self.efficiency_scale(next(step_index)),
                )

        self.supernet.train()
        sums, steps = train_epoch(
            self.train_loader,
            step,
            limit=self.cfg.max_steps_per_epoch,
            desc=f"search {epoch}/{self.cfg.epochs}",
            progress=self.progress,
        )
        self.w_sched.step()
        genotype = self.supernet.genotype(
            exclude_zero=self.cfg.exclude_zero, max_param_free=self.cfg.max_param_free_edges
        )
        self.supernet.eval()
        forward = subnetwork_forward(self.supernet, genotype)
        dev = evaluate(self.task, forward, self.dev_loader, prefix="dev")
        metrics = self._epoch_metrics(sums, steps, genotype, temperature) | dev
        metrics["arch/learning"] = float(update_arch)
        self.history.append({"epoch": float(epoch), **metrics})
        if update_arch and (self.best is None or self._better(dev)):
            self.best = {
                "genotype": genotype.to_dict(),
                "epoch": epoch,
                "dev": dev,
                "state": copy.deepcopy(self.supernet.state_dict()),
            }
        self.epoch = epoch
        return EpochReport("search", epoch, self.cfg.epochs, metrics, genotype)

    def _better(self, dev: dict[str, float]) -> bool:
        """A derived student that beats a constant prediction wins over one that does not,
        whatever their scores (``selection_key``)."""
        key = selection_key(dev, self.primary_metric)
        return key > selection_key(self.best["dev"], self.primary_metric)

    @property
    def best_score(self) -> float:
        """The best epoch's dev metric (-inf for NaN, e.g. a correlation of constant outputs)."""
        score = self.best["dev"][self.primary_metric]
        return -math.inf if math.isnan(score) else score

    def _epoch_metrics(self, sums, steps, genotype: Genotype, temperature: float):
        edge_h, depth_h = arch_entropy(self.supernet)
        averages = means(sums, steps, "")
        return {
            "train/loss_total": averages.get("total", 0.0),
            "train/loss_ce": averages.get("ce", 0.0),
            "train/loss_kd": averages.get("kd", 0.0),
            "train/loss_efficiency": averages.get("efficiency", 0.0),
            "arch/expected_params": averages.get("expected_params", 0.0),
            "arch/expected_flops": averages.get("expected_flops", 0.0),
            "arch/entropy": edge_h,
            "arch/depth_entropy": depth_h,
            "arch/entropy_share": entropy_share(edge_h, self.supernet.edge_logits.shape[-1]),
            "arch/depth_entropy_share": entropy_share(
                depth_h, self.supernet.depth_logits.shape[-1]
            ),
            "arch/temperature": temperature,
            "arch/num_cells": float(genotype.num_cells),
        }

    def result(self) -> SearchResult:
        if self.best is None:
            raise RuntimeError("the search has not finished an epoch after its warm-up")
        return SearchResult(
            Genotype.from_dict(self.best["genotype"]),
            self.best["epoch"],
            self.best_score,
            self.best["state"],
            list(self.history),
        )

    # --- checkpoints -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Tensors, numbers, strings and containers only: loadable with weights_only=True."""
        return {
            "epoch": self.epoch,
            "supernet": self.supernet.state_dict(),
            "w_opt": self.w_opt.state_dict(),
            "w_sched": self.w_sched.state_dict(),
            "a_opt": self.a_opt.state_dict(),
            "gumbel": self.generator.get_state(),
            "train_order": loader_state(self.train_loader),
            "arch_order": loader_state(self.arch_loader),
            "best": self.best,
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.supernet.load_state_dict(state["supernet"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.w_sched.load_state_dict(state["w_sched"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.generator.set_state(state["gumbel"])
        restore_loader(self.train_loader, state["train_order"])
        restore_loader(self.arch_loader, state["arch_order"])
        self.epoch = int(state["epoch"])
        self.best = state["best"]
        self.history = list(state["history"])


class _Restartable:
    """The α half's batches for one epoch; ``restart`` begins another pass over it."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self.restart()

    def restart(self) -> None:
        self.batches = capped_batches(self.loader, None)

    def __next__(self) -> Batch:
        return next(self.batches)

    def __iter__(self):
        return self


def run_search(supernet, objective, task, *, on_epoch=None, **options) -> SearchResult:
    """All search epochs at once (``SearchPhase`` arguments); the best epoch's result."""
    phase = SearchPhase(supernet, objective, task, **options)
    run_phase(phase, on_epoch)
    return phase.result()

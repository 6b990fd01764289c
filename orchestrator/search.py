"""Architecture search (Ray-free): joint or alternating optimisation of weights and α.

Method notes section 4: w with SGD (momentum 0.9, cosine 2e-2 -> 5e-4, wd 3e-4), α with Adam
(3e-4, betas (0.5, 0.999), wd 1e-3), clip 5, on the training set; the epoch with the best dev
score of the derived sub-network is kept ([A-ET] find_best_search, [A-PT]).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from losses.objective import AdaBertObjective
from orchestrator.batches import Batch, trim_padding
from orchestrator.config import SearchSection
from orchestrator.evaluation import evaluate
from orchestrator.progress import EpochCallback, EpochReport, progress_bar
from orchestrator.tasks import TaskSpec
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


def arch_entropy(supernet: AdaBertSupernet) -> tuple[float, float]:
    """Mean entropy (nats) of the edge distributions, and of the depth distribution."""
    with torch.no_grad():
        edge_p = torch.softmax(supernet.edge_logits, dim=-1)
        depth_p = torch.softmax(supernet.depth_logits, dim=-1)
        edge_h = -(edge_p * edge_p.clamp_min(1e-12).log()).sum(-1).mean()
        depth_h = -(depth_p * depth_p.clamp_min(1e-12).log()).sum()
    return float(edge_h), float(depth_h)


def _optimisers(supernet: AdaBertSupernet, cfg: SearchSection, steps: int):
    w_opt = torch.optim.SGD(
        supernet.weight_parameters(),
        lr=cfg.weight_lr,
        momentum=cfg.weight_momentum,
        weight_decay=cfg.weight_decay,
    )
    w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, steps, eta_min=cfg.weight_lr_min)
    a_opt = torch.optim.Adam(
        supernet.arch_parameters(),
        lr=cfg.arch_lr,
        betas=(cfg.arch_beta1, cfg.arch_beta2),
        weight_decay=cfg.arch_weight_decay,
    )
    return w_opt, w_sched, a_opt


def _loss(supernet, objective, batch: Batch, temperature: float, generator):
    edge_w, depth_w = supernet.sample_arch(temperature, generator=generator)
    output = supernet(*batch.student_inputs(), edge_weights=edge_w, depth_weights=depth_w)
    return objective(
        output,
        batch.labels,
        teacher_probe_logits=batch.teacher_probe_logits,
        teacher_logits=batch.teacher_logits,
    )


def _step(loss: torch.Tensor, optimisers, params, clip: float) -> None:
    for opt in optimisers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(params, clip)
    for opt in optimisers:
        opt.step()


def _batches(loader: DataLoader, limit: int | None):
    for index, batch in enumerate(loader):
        if limit is not None and index >= limit:
            return
        yield trim_padding(batch)


def subnetwork_forward(supernet: AdaBertSupernet, genotype: Genotype):
    """Forward of the derived sub-network inside the supernet (one-hot weights, no noise)."""
    edge_w, depth_w = genotype.to_arch_weights(supernet.config)

    def forward(batch: Batch) -> torch.Tensor:
        out = supernet(*batch.student_inputs(), edge_weights=edge_w, depth_weights=depth_w)
        return out.logits_per_depth[genotype.num_cells - 1]

    return forward


def _train_epoch(
    supernet: AdaBertSupernet,
    objective: AdaBertObjective,
    *,
    batches,
    arch_loader: DataLoader | None,
    optimisers: tuple,
    update_arch: bool,
    temperature: float,
    generator: torch.Generator,
    clip: float,
) -> dict[str, float]:
    """One pass over the training batches; returns the summed loss terms."""
    w_opt, a_opt = optimisers
    params = list(supernet.parameters())
    arch_batches = iter(_batches(arch_loader, None)) if arch_loader is not None else None
    sums: dict[str, float] = {}
    supernet.train()
    for batch in batches:
        terms = _loss(supernet, objective, batch, temperature, generator)
        if arch_batches is None:
            _step(terms.total, (w_opt, a_opt) if update_arch else (w_opt,), params, clip)
        else:
            _step(terms.total, (w_opt,), params, clip)
            if update_arch:
                arch_batch = next(arch_batches, None)
                if arch_batch is None:
                    arch_batches = iter(_batches(arch_loader, None))
                    arch_batch = next(arch_batches)
                arch_terms = _loss(supernet, objective, arch_batch, temperature, generator)
                _step(arch_terms.total, (a_opt,), params, clip)
        for name, value in terms.as_floats().items():
            sums[name] = sums.get(name, 0.0) + value
    return sums


def _epoch_metrics(sums: dict[str, float], steps: int, supernet, genotype, temperature):
    edge_h, depth_h = arch_entropy(supernet)
    steps = max(1, steps)
    return {
        "train/loss_total": sums.get("total", 0.0) / steps,
        "train/loss_ce": sums.get("ce", 0.0) / steps,
        "train/loss_kd": sums.get("kd", 0.0) / steps,
        "train/loss_efficiency": sums.get("efficiency", 0.0) / steps,
        "arch/expected_params": sums.get("expected_params", 0.0) / steps,
        "arch/expected_flops": sums.get("expected_flops", 0.0) / steps,
        "arch/entropy": edge_h,
        "arch/depth_entropy": depth_h,
        "arch/temperature": temperature,
        "arch/num_cells": float(genotype.num_cells),
    }


def warmup_epochs(cfg: SearchSection) -> int:
    return int(cfg.arch_warmup_fraction * cfg.epochs)


def run_search(
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
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
) -> SearchResult:
    """Search for ``cfg.epochs`` epochs; ``arch_loader`` is the α half for "alternating".

    The first ``warmup_epochs(cfg)`` epochs train the weights only; the temperature anneals
    and the best-dev epoch is chosen over the epochs after them.
    """
    per_epoch = len(train_loader)
    if cfg.max_steps_per_epoch:
        per_epoch = min(per_epoch, cfg.max_steps_per_epoch)
    w_opt, w_sched, a_opt = _optimisers(supernet, cfg, max(1, cfg.epochs))
    warmup = warmup_epochs(cfg)
    schedule = TemperatureSchedule(
        initial=cfg.temperature_initial,
        minimum=min(cfg.temperature_minimum, cfg.temperature_initial),
        decay=cfg.temperature_decay,
        total_epochs=cfg.epochs - warmup,
    )
    generator = torch.Generator().manual_seed(seed)
    best: SearchResult | None = None
    history: list[dict[str, float]] = []
    for epoch in range(cfg.epochs):
        temperature = schedule(max(0, epoch - warmup))
        batches = progress_bar(
            _batches(train_loader, cfg.max_steps_per_epoch),
            desc=f"search {epoch + 1}/{cfg.epochs}",
            total=per_epoch,
            enabled=progress,
        )
        sums = _train_epoch(
            supernet,
            objective,
            batches=batches,
            arch_loader=arch_loader,
            optimisers=(w_opt, a_opt),
            update_arch=epoch >= warmup,
            temperature=temperature,
            generator=generator,
            clip=cfg.grad_clip,
        )
        w_sched.step()
        genotype = supernet.genotype(exclude_zero=cfg.exclude_zero)
        supernet.eval()
        dev = evaluate(task, subnetwork_forward(supernet, genotype), dev_loader, prefix="dev")
        metrics = _epoch_metrics(sums, per_epoch, supernet, genotype, temperature) | dev
        metrics["arch/learning"] = float(epoch >= warmup)
        history.append({"epoch": float(epoch + 1), **metrics})
        score = dev[primary_metric]
        if math.isnan(score):
            score = -math.inf
        if epoch >= warmup and (best is None or score > best.best_score):
            best = SearchResult(genotype, epoch + 1, score, copy.deepcopy(supernet.state_dict()))
        if on_epoch is not None:
            on_epoch(EpochReport("search", epoch + 1, cfg.epochs, metrics, genotype))
    assert best is not None  # epochs >= 1 and warm-up < epochs are validated
    best.history = history
    return best

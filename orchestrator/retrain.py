"""Retraining the derived student with distillation (Ray-free).

[P] keeps the searched structure with its trained operation weights and fine-tunes it; here
the fine-tune uses (1 - γ)·CE + γ·KD against the teacher's final logits, so the retrain
distils like the search did. The best dev epoch is kept (epoch 0 = before any retraining).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from losses.config import LossConfig
from losses.distillation import logit_kd, task_loss
from orchestrator.batches import Batch, trim_padding
from orchestrator.config import RetrainSection
from orchestrator.evaluation import evaluate
from orchestrator.progress import EpochCallback, EpochReport, progress_bar
from orchestrator.tasks import TaskSpec
from searchspace.derived import DerivedStudent


@dataclass
class RetrainResult:
    best_epoch: int
    dev_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)


def distillation_loss(
    student: DerivedStudent, batch: Batch, loss_cfg: LossConfig, *, is_regression: bool
) -> tuple[torch.Tensor, float, float]:
    logits = student(*batch.student_inputs())
    ce = task_loss(logits, batch.labels, is_regression=is_regression)
    kd = logit_kd(
        logits, batch.teacher_logits, loss_cfg.kd_temperature, is_regression=is_regression
    )
    total = (1.0 - loss_cfg.kd_weight) * ce + loss_cfg.kd_weight * kd
    return total, float(ce.detach()), float(kd.detach())


def run_retrain(
    student: DerivedStudent,
    task: TaskSpec,
    *,
    train_loader: DataLoader,
    dev_loader: DataLoader,
    cfg: RetrainSection,
    loss_cfg: LossConfig,
    primary_metric: str,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
) -> RetrainResult:
    """Train in place; on return ``student`` holds the weights of the best dev epoch."""
    per_epoch = len(train_loader)
    if cfg.max_steps_per_epoch:
        per_epoch = min(per_epoch, cfg.max_steps_per_epoch)
    optimiser = torch.optim.Adam(
        student.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, max(1, cfg.epochs * per_epoch)
    )
    student.eval()
    best_metrics = evaluate(task, lambda b: student(*b.student_inputs()), dev_loader, prefix="dev")
    best_epoch, best_state = 0, copy.deepcopy(student.state_dict())
    history: list[dict[str, float]] = [{"epoch": 0.0, **best_metrics}]
    for epoch in range(1, cfg.epochs + 1):
        student.train()
        sums = {"total": 0.0, "ce": 0.0, "kd": 0.0}
        steps = 0
        for index, batch in enumerate(
            progress_bar(
                train_loader,
                desc=f"retrain {epoch}/{cfg.epochs}",
                total=per_epoch,
                enabled=progress,
            )
        ):
            if index >= per_epoch:
                break
            loss, ce, kd = distillation_loss(
                student, trim_padding(batch), loss_cfg, is_regression=task.is_regression
            )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip)
            optimiser.step()
            scheduler.step()
            steps += 1
            for name, value in (("total", float(loss.detach())), ("ce", ce), ("kd", kd)):
                sums[name] += value
        student.eval()
        dev = evaluate(task, lambda b: student(*b.student_inputs()), dev_loader, prefix="dev")
        metrics = {f"retrain/loss_{k}": v / max(1, steps) for k, v in sums.items()} | dev
        history.append({"epoch": float(epoch), **metrics})
        if dev[primary_metric] > best_metrics[primary_metric]:
            best_epoch, best_metrics = epoch, dev
            best_state = copy.deepcopy(student.state_dict())
        if on_epoch is not None:
            on_epoch(EpochReport("retrain", epoch, cfg.epochs, metrics, student.genotype))
    student.load_state_dict(best_state)
    return RetrainResult(best_epoch, best_metrics, history)

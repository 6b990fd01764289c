"""Retraining the derived student with distillation (Ray-free), one epoch at a time, resumable.

[P] keeps the searched structure with its trained operation weights and fine-tunes it; here
the fine-tune uses (1 - γ)·CE + γ·KD against the teacher's final logits, so the retrain
distils like the search did. The best dev epoch is kept (epoch 0 = before any retraining;
``selection_key``: an epoch better than a constant prediction beats any that is not).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader

from losses.config import LossConfig
from losses.distillation import logit_kd, task_loss
from orchestrator.config import RetrainSection
from orchestrator.method.epochs import (
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


class RetrainPhase:
    """``cfg.epochs`` epochs of KD fine-tuning; on ``result`` the student holds its best epoch."""

    name = "retrain"

    def __init__(
        self,
        student: DerivedStudent,
        task: TaskSpec,
        *,
        train_loader: DataLoader,
        dev_loader: DataLoader,
        cfg: RetrainSection,
        loss_cfg: LossConfig,
        primary_metric: str,
        progress: bool = True,
    ) -> None:
        self.student, self.task, self.cfg, self.loss_cfg = student, task, cfg, loss_cfg
        self.train_loader, self.dev_loader = train_loader, dev_loader
        self.primary_metric, self.progress = primary_metric, progress
        self.optimiser = torch.optim.Adam(
            student.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        per_epoch = steps_per_epoch(train_loader, cfg.max_steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimiser, max(1, cfg.epochs * per_epoch)
        )
        self.epoch = 0
        self.best: dict[str, Any] | None = None  # set by the epoch-0 evaluation
        self.history: list[dict[str, float]] = []

    @property
    def num_epochs(self) -> int:
        return self.cfg.epochs

    @property
    def done(self) -> bool:
        return self.epoch >= self.cfg.epochs

    def _evaluate(self) -> dict[str, float]:
        self.student.eval()
        forward = lambda b: self.student(*b.student_inputs())  # noqa: E731
        return evaluate(self.task, forward, self.dev_loader, prefix="dev")

    def start(self) -> None:
        """Epoch 0: the student as the search left it is the first candidate."""
        if self.best is None:
            metrics = self._evaluate()
            self.best = {"epoch": 0, "metrics": metrics, "state": self._weights()}
            self.history = [{"epoch": 0.0, **metrics}]

    def _weights(self) -> dict[str, torch.Tensor]:
        return copy.deepcopy(self.student.state_dict())

    def step(self, batch: Batch) -> dict[str, float]:
        loss, ce, kd = distillation_loss(
            self.student, batch, self.loss_cfg, is_regression=self.task.is_regression
        )
        optimiser_step(loss, (self.optimiser,), self.student.parameters(), self.cfg.grad_clip)
        self.scheduler.step()
        return {"total": float(loss.detach()), "ce": ce, "kd": kd}

    def run_epoch(self) -> EpochReport:
        self.start()
        epoch = self.epoch + 1
        self.student.train()
        sums, steps = train_epoch(
            self.train_loader,
            self.step,
            limit=self.cfg.max_steps_per_epoch,
            desc=f"retrain {epoch}/{self.cfg.epochs}",
            progress=self.progress,
        )
        dev = self._evaluate()
        totals = {"total": 0.0, "ce": 0.0, "kd": 0.0} | sums
        metrics = means(totals, steps, "retrain/loss_") | dev
        self.history.append({"epoch": float(epoch), **metrics})
        key = selection_key(dev, self.primary_metric)
        if key > selection_key(self.best["metrics"], self.primary_metric):
            self.best = {"epoch": epoch, "metrics": dev, "state": self._weights()}
        self.epoch = epoch
        return EpochReport("retrain", epoch, self.cfg.epochs, metrics, self.student.genotype)

    def result(self) -> RetrainResult:
        self.start()
        self.student.load_state_dict(self.best["state"])
        return RetrainResult(self.best["epoch"], dict(self.best["metrics"]), list(self.history))

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "student": self.student.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "order": loader_state(self.train_loader),
            "best": self.best,
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.student.load_state_dict(state["student"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_loader(self.train_loader, state["order"])
        self.epoch = int(state["epoch"])
        self.best = state["best"]
        self.history = list(state["history"])


def run_retrain(student: DerivedStudent, task: TaskSpec, *, on_epoch=None, **options):
    """All retrain epochs at once (``RetrainPhase`` arguments); on return ``student`` holds the
    weights of the best epoch."""
    phase = RetrainPhase(student, task, **options)
    run_phase(phase, on_epoch)
    return phase.result()

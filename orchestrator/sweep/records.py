"""The sweep's records, typed: one row per trial and one summary per task. The console table,
``summary.md``/``summary.json``, the Pareto plot and the MLflow parent run all read these."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.storage import location_of

# Trial states as the records spell them (Optuna: COMPLETE, PRUNED, FAIL).
STATES = ("complete", "pruned", "error")


@dataclass
class TrialRecord:
    number: int  # the Optuna trial number (-1 when unknown)
    trial_id: str  # Ray Tune's trial id
    state: str  # one of STATES
    metric: float | None
    params: float | None = None
    flops: float | None = None
    latency_b1_ms: float | None = None
    num_cells: int | None = None
    max_cells: int | None = None
    efficiency_weight: float | None = None  # β
    kd_weight: float | None = None  # γ
    epochs: int = 0  # epochs reported (a stopped trial reports fewer)
    degenerate: bool = False  # finished, but no better than a constant prediction
    undecided: bool = False  # its genotype came from an almost uniform α (search/undecided)
    over_budget: bool = False  # no candidate fitted search.max_student_flops
    genotype_hash: str = ""
    genotype: str = ""
    mlflow_run_id: str = ""
    checkpoint: str = ""
    hparams: dict[str, Any] = field(default_factory=dict)
    work: tuple[float | None, float | None] = (None, None)
    final_latency: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"t{self.number:02d}" if self.number >= 0 else self.trial_id

    def cost(self, name: str) -> float | None:
        """A minimised objective by its ``sweep.second_objective`` name."""
        return {"params": self.params, "flops": self.flops, "latency": self.latency_b1_ms}[name]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialRecord:
        data = dict(data)
        data["work"] = tuple(data.get("work", (None, None)))
        return cls(**data)


@dataclass
class TaskSummary:
    task: str
    metric_name: str  # e.g. dev/accuracy
    teacher_metric: str  # the teacher's score under the same metric, e.g. teacher/accuracy
    teacher_metrics: dict[str, float]
    teacher_params: int
    data_fingerprint: str
    trials: list[TrialRecord]
    prepare: tuple[float, float] | None = None
    pareto: list[int] = field(default_factory=list)  # trial numbers on the front
    registered_model: str = ""
    model_version: str = ""
    seconds: float = 0.0
    champion_tolerance: float = 0.0  # sweep.champion_tolerance when the summary was written

    @property
    def teacher_score(self) -> float | None:
        return self.teacher_metrics.get(self.teacher_metric)

    @property
    def best(self) -> TrialRecord | None:
        """The champion: of the complete trials within ``champion_tolerance`` of the best metric,
        the one with the fewest FLOPs (then parameters, then the higher metric). FLOPs, not the
        measured latency: trials are timed while others run beside them, and the choice must not
        change with the machine's load. A student no better than a constant prediction, or over
        the user's FLOPs budget, is never the champion, however it scores."""
        finished = [
            t
            for t in self.trials
            if t.state == "complete"
            and t.metric is not None
            and not t.degenerate
            and not t.over_budget
        ]
        if not finished:
            return None
        top = max(t.metric for t in finished)
        close = [t for t in finished if t.metric >= top - self.champion_tolerance - 1e-12]
        return min(
            close,
            key=lambda t: (
                math.inf if t.flops is None else t.flops,
                math.inf if t.params is None else t.params,
                -t.metric,
            ),
        )

    def counts(self) -> dict[str, int]:
        return {state: sum(t.state == state for t in self.trials) for state in STATES}

    def best_metrics(self) -> dict[str, float]:
        best = self.best
        if best is None:
            return {}
        metrics = {f"best/{k}": v for k, v in best.final_latency.items()}
        metrics[f"best/{self.metric_name}"] = best.metric
        if best.params is not None:
            metrics["best/params"] = best.params
        if self.teacher_score:
            metrics["best/retention"] = best.metric / self.teacher_score
        return metrics

    def model_description(self) -> str:
        """The registered best student's description: enough to choose it without the UI."""
        best = self.best
        if best is None:
            return ""
        teacher = self.teacher_score
        parts = [f"adabert student for task {self.task}: {self.metric_name} {best.metric:.4f}"]
        if teacher:
            parts[0] += f" (teacher {teacher:.4f}, retention {best.metric / teacher:.1%})"
        if best.params is not None:
            parts.append(f"{int(best.params):,} parameters")
        latency = best.final_latency.get("latency/student_b1_ms", best.latency_b1_ms)
        if latency is not None:
            speedup = best.final_latency.get("speedup/b1")
            faster = f", {speedup:.1f}x the teacher's speed" if speedup else ""
            equal = best.final_latency.get("speedup/b1_equal_text")
            if speedup and equal:
                faster += f" ({equal:.1f}x on equal text: each sentence at half the length)"
            parts.append(f"latency at batch 1 {latency:.2f} ms{faster}")
        parts.append(f"trial {best.label} of the sweep")
        hparams = ", ".join(f"{k}={v}" for k, v in sorted(best.hparams.items()))
        if hparams:
            parts.append(f"hyperparameters {hparams}")
        parts.append(f"genotype {best.genotype_hash}: {best.genotype}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["trials"] = [t.to_dict() for t in self.trials]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSummary:
        data = dict(data)
        data["trials"] = [TrialRecord.from_dict(t) for t in data.get("trials", [])]
        if data.get("prepare") is not None:
            data["prepare"] = tuple(data["prepare"])
        return cls(**data)


def trial_record(result, primary_metric: str, base_config: dict[str, Any]) -> TrialRecord:
    """One row from a Ray Tune ``Result`` (its last reported metrics and its config)."""
    from orchestrator.config import build_config, merge_overrides
    from orchestrator.sweep.trial import NUMBER_KEY, hyperparameters

    last = result.metrics or {}
    config = result.config or {}
    hparams = hyperparameters(config)
    resolved = build_config(merge_overrides(base_config, hparams))
    final = bool(last.get("is_final"))
    state = "error" if result.error else ("complete" if final else "pruned")
    cells = last.get("student/num_cells", last.get("arch/num_cells"))
    return TrialRecord(
        number=int(config.get(NUMBER_KEY, -1)),
        trial_id=str(last.get("trial_id", "")),
        state=state,
        metric=last.get(primary_metric),
        params=last.get("student/params", last.get("cost/params")),
        flops=last.get("student/flops", last.get("cost/flops")),
        latency_b1_ms=last.get("latency/student_b1_ms"),
        num_cells=int(cells) if cells is not None else None,
        max_cells=resolved.supernet.max_cells,
        efficiency_weight=resolved.loss.efficiency_weight,
        kd_weight=resolved.loss.kd_weight,
        epochs=int(last.get("epoch", 0) or 0),
        degenerate=bool(last.get("student/degenerate", 0.0)),
        undecided=bool(last.get("search/undecided", 0.0)),
        over_budget=last.get("derive/within_budget") == 0.0,
        genotype_hash=str(last.get("genotype_hash", "")),
        genotype=str(last.get("genotype", "")),
        mlflow_run_id=str(last.get("mlflow_run_id", "")),
        checkpoint=_checkpoint_location(result.checkpoint) if final else "",
        hparams=hparams,
        work=(last.get("time/work_start"), last.get("time/reported_at")),
    )


def _checkpoint_location(checkpoint) -> str:
    if checkpoint is None:
        return ""
    return location_of(checkpoint.filesystem, checkpoint.path)


def trial_records(results, primary_metric: str, base_config: dict[str, Any]) -> list[TrialRecord]:
    rows = [trial_record(result, primary_metric, base_config) for result in results]
    return sorted(rows, key=lambda r: (r.number < 0, r.number, r.trial_id))


def write_json_atomically(path: Path, data: Any) -> None:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(staging, path)

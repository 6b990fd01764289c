"""MLflow: one experiment per sweep, a parent run per task, a nested child run per trial.

The only module that imports MLflow. Everything goes through ``MlflowClient`` with explicit run
ids (no fluent "active run"), because one process may hold several runs and Ray worker
processes outlive trials. The tracking URI is always explicit: MLflow's default is a SQLite file
in the working directory, which inside a Ray trial is a per-trial folder.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

PARENT_ROLE, TRIAL_ROLE = "task", "trial"
TRIAL_TAG = "adabert.trial_id"
MAX_BATCH = 900  # MLflow's log_batch takes at most 1000 metrics


def client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri)


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str | None) -> str:
    mlflow_client = client(tracking_uri)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow_client.create_experiment(name, artifact_location=artifact_location)


def _find_run(mlflow_client: MlflowClient, experiment_id: str, tags: dict[str, str]):
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = mlflow_client.search_runs([experiment_id], filter_string=query, max_results=1)
    return runs[0] if runs else None


def parent_run(tracking_uri: str, experiment_id: str, *, sweep: str, task: str) -> str:
    """The task's parent run, reopened when the sweep is resumed."""
    mlflow_client = client(tracking_uri)
    tags = {"adabert.sweep": sweep, "adabert.task": task, "adabert.role": PARENT_ROLE}
    existing = _find_run(mlflow_client, experiment_id, tags)
    if existing is not None:
        mlflow_client.update_run(existing.info.run_id, status="RUNNING")
        return existing.info.run_id
    return mlflow_client.create_run(experiment_id, run_name=task, tags=tags).info.run_id


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


class TrialRun:
    """The child run of one trial; created in the trial's process, reused on a restart."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_id: str,
        *,
        parent_run_id: str,
        trial_id: str,
        trial_name: str,
    ) -> None:
        self.client = client(tracking_uri)
        tags = {TRIAL_TAG: trial_id, "mlflow.parentRunId": parent_run_id}
        existing = _find_run(self.client, experiment_id, {TRIAL_TAG: trial_id})
        if existing is not None:
            self.run_id = existing.info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            tags |= {"adabert.role": TRIAL_ROLE}
            run = self.client.create_run(experiment_id, run_name=trial_name, tags=tags)
            self.run_id = run.info.run_id

    def log_params(self, params: dict[str, str]) -> None:
        items = [Param(k, v[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        stamp = int(time.time() * 1000)
        items = [
            Metric(k, float(v), stamp, step)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and math.isfinite(float(v))
        ]
        for start in range(0, len(items), MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=items[start : start + MAX_BATCH])

    def set_tags(self, tags: dict[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_dict(self, data: dict, path: str) -> None:
        self.client.log_dict(self.run_id, data, path)

    def log_figure(self, figure, path: str) -> None:
        self.client.log_figure(self.run_id, figure, path)

    def log_folder(self, folder: Path, path: str) -> None:
        self.client.log_artifacts(self.run_id, str(folder), path)

    def log_student(self, student, *, pip_requirements: list[str], code_paths: list) -> str:
        """An MLflow PyTorch model folder in the run; returns its ``runs:/`` URI."""
        import mlflow.pytorch

        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "student"
            # Explicit requirements skip MLflow's slow inference in a subprocess; pickle avoids
            # torch.export's static batch size (MLflow 3 defaults to the "pt2" format).
            # code_paths ships the (pure PyTorch) searchspace package inside the model, so the
            # model loads wherever torch is installed.
            mlflow.pytorch.save_model(
                student,
                str(target),
                serialization_format="pickle",
                pip_requirements=pip_requirements,
                code_paths=[str(path) for path in code_paths],
            )
            self.client.log_artifacts(self.run_id, str(target), "student")
        return f"runs:/{self.run_id}/student"


def set_status(tracking_uri: str, run_id: str, status: str) -> None:
    client(tracking_uri).set_terminated(run_id, status)


def trial_run_id(tracking_uri: str, experiment_id: str, trial_id: str) -> str | None:
    run = _find_run(client(tracking_uri), experiment_id, {TRIAL_TAG: trial_id})
    return run.info.run_id if run is not None else None


def register_model(model_uri: str, name: str, *, tags: dict[str, str]) -> str:
    version = mlflow.register_model(model_uri, name, tags=tags)
    return str(version.version)


def child_runs(tracking_uri: str, experiment_id: str, parent_run_id: str) -> list:
    return client(tracking_uri).search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )


def log_to_run(
    tracking_uri: str,
    run_id: str,
    *,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    figures: dict[str, Any] | None = None,
    step: int = 0,
) -> None:
    """Metrics, tags and figures for a run held by id (the task's parent run)."""
    mlflow_client = client(tracking_uri)
    stamp = int(time.time() * 1000)
    items = [
        Metric(k, float(v), stamp, step)
        for k, v in (metrics or {}).items()
        if isinstance(v, (int, float)) and math.isfinite(float(v))
    ]
    mlflow_client.log_batch(
        run_id, metrics=items, tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()]
    )
    for path, figure in (figures or {}).items():
        mlflow_client.log_figure(run_id, figure, path)


def close_open_runs(tracking_uri: str, experiment_id: str, *, status: str) -> int:
    """Give every run still RUNNING in the experiment a final status; returns how many."""
    mlflow_client = client(tracking_uri)
    runs = mlflow_client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
    for run in runs:
        mlflow_client.set_terminated(run.info.run_id, status)
    return len(runs)

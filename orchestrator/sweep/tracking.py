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

from orchestrator.errors import UserInputError
from orchestrator.sweep.secrets import expand

PARENT_ROLE, TRIAL_ROLE = "task", "trial"
TRIAL_TAG = "adabert.trial_id"  # Ray Tune's trial id
NUMBER_TAG = "adabert.trial_number"  # Optuna's trial number
MAX_BATCH = 900  # MLflow's log_batch takes at most 1000 metrics
CHAMPION = "champion"  # the alias of a task's registered best student


def client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=expand(tracking_uri))


# MLflow 3's UI opens experiments of unknown kind on its GenAI pages; this tag says "model
# training". The 3.17 UI picks its page from a per-browser switch instead (see ``ui_url``), so
# both are set.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
STUDENT_MODEL_CODE = Path(__file__).with_name("student_model.py")
SEARCHSPACE_DIR = Path(__file__).resolve().parents[2] / "searchspace"


def ui_url(base: str, experiment_id: str | None = None) -> str:
    """The UI address that opens on the runs table (the classic machine-learning view)."""
    page = f"#/experiments/{experiment_id}" if experiment_id else "#/experiments"
    return f"{base.rstrip('/')}/{page}?workflowType=machine_learning"


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str | None) -> str:
    mlflow_client = client(tracking_uri)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow_client.create_experiment(
        name, artifact_location=artifact_location, tags=EXPERIMENT_KIND
    )


def _literal(value: str) -> str:
    """A filter-string literal. Names are identifiers (orchestrator.names); anything with a quote
    is refused rather than escaped, since MLflow's filter grammar has no escape."""
    if "'" in value or "`" in value:
        raise ValueError(f"refusing a quote in an MLflow filter value: {value!r}")
    return f"'{value}'"


def _find_runs(mlflow_client: MlflowClient, experiment_id: str, filters: dict[str, str]):
    query = " and ".join(f"{key} = {_literal(v)}" for key, v in filters.items())
    return mlflow_client.search_runs([experiment_id], filter_string=query, max_results=5000)


def _find_run(mlflow_client: MlflowClient, experiment_id: str, tags: dict[str, str]):
    runs = _find_runs(mlflow_client, experiment_id, {f"tags.`{k}`": v for k, v in tags.items()})
    return runs[0] if runs else None


def parent_run(
    tracking_uri: str, experiment_id: str, *, sweep: str, task: str, reopen: bool = True
) -> str:
    """The task's parent run; a resumed sweep reopens it (``reopen``) when the task has work
    left, and leaves a finished task's run as it is."""
    mlflow_client = client(tracking_uri)
    tags = {"adabert.sweep": sweep, "adabert.task": task, "adabert.role": PARENT_ROLE}
    existing = _find_run(mlflow_client, experiment_id, tags)
    if existing is not None:
        if reopen:
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
    """The child run of one trial, created in the trial's process. It is found again by its
    Optuna trial number under the task's parent run, so a restarted trial, a resumed sweep and
    a trial re-created after the driver was killed all continue the same run."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_id: str,
        *,
        parent_run_id: str,
        trial_id: str,
        number: int,
        run_name: str,
    ) -> None:
        self.client = client(tracking_uri)
        self.experiment_id = experiment_id
        identity = {"mlflow.parentRunId": parent_run_id, NUMBER_TAG: str(number)}
        if number < 0:
            identity = {TRIAL_TAG: trial_id}
        existing = _find_run(self.client, experiment_id, identity)
        if existing is not None:
            self.run_id = existing.info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            self.client.set_tag(self.run_id, TRIAL_TAG, trial_id)
        else:
            tags = identity | {TRIAL_TAG: trial_id, "adabert.role": TRIAL_ROLE}
            tags |= {"mlflow.parentRunId": parent_run_id}
            run = self.client.create_run(experiment_id, run_name=run_name, tags=tags)
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
        _log_figure(self.client, self.run_id, figure, path)

    def log_folder(self, folder: Path, path: str) -> None:
        self.client.log_artifacts(self.run_id, str(folder), path)

    def log_student(self, package: Path) -> str:
        """The student package as an MLflow pyfunc logged model of this run; returns its
        ``models:/m-...`` URI (so a registered version's source is that URI, not a path).

        Models from code (``student_model.py``) with safetensors weights: loading it runs that
        source and ``searchspace`` (shipped with it), never pickled bytecode.
        """
        import mlflow.pyfunc
        import pandas as pd
        from mlflow.entities import LoggedModelStatus
        from mlflow.models import infer_signature

        task = json.loads((package / "task.json").read_text(encoding="utf-8"))
        example = pd.DataFrame({c: ["a short example sentence"] for c in task["text_columns"]})
        if task["labels"] is None:
            output = pd.DataFrame({"score": [0.5]})
        else:
            output = pd.DataFrame({"label": [task["labels"][0]]})
            for name in task["labels"]:
                output[f"prob_{name}"] = [1.0 / len(task["labels"])]
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "student"
            # Explicit requirements skip MLflow's slow inference in a subprocess.
            mlflow.pyfunc.save_model(
                str(target),
                python_model=str(STUDENT_MODEL_CODE),
                artifacts={"student": str(package)},
                code_paths=[str(SEARCHSPACE_DIR)],
                signature=infer_signature(example, output),
                input_example=example,
                pip_requirements=_requirements(),
            )
            # The fluent log_model would take over (and finally end) the run: the client API
            # creates the logged model beside the run instead.
            model = self.client.create_logged_model(
                experiment_id=self.experiment_id,
                name="student",
                source_run_id=self.run_id,
                model_type="adabert-student",
                tags={"adabert.task": str(task["task"])},
            )
            self.client.log_model_artifacts(model.model_id, str(target))
            self.client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        return f"models:/{model.model_id}"


def _requirements() -> list[str]:
    from importlib.metadata import version

    names = ("torch", "transformers", "safetensors", "pandas", "mlflow")
    return [f"{name}>={version(name).split('+')[0]}" for name in names]


def set_status(tracking_uri: str, run_id: str, status: str) -> None:
    client(tracking_uri).set_terminated(run_id, status)


def trial_run_id(tracking_uri: str, experiment_id: str, trial_id: str) -> str | None:
    run = _find_run(client(tracking_uri), experiment_id, {TRIAL_TAG: trial_id})
    return run.info.run_id if run is not None else None


def register_model(
    tracking_uri: str, model_uri: str, name: str, *, tags: dict[str, str], description: str
) -> str:
    """Register ``model_uri`` as a new version of ``name``, described, with the alias
    ``champion`` moved to it; returns the version number."""
    mlflow_client = client(tracking_uri)
    mlflow.set_tracking_uri(expand(tracking_uri))  # this process's fluent API, for register
    version = mlflow.register_model(model_uri, name, tags=tags)
    mlflow_client.update_model_version(name, version.version, description=description)
    mlflow_client.set_registered_model_alias(name, CHAMPION, version.version)
    return str(version.version)


def model_uri_of(tracking_uri: str, run_id: str) -> str:
    """The student model a trial run logged (its ``models:/m-...`` URI)."""
    tags = client(tracking_uri).get_run(run_id).data.tags
    return tags.get("adabert.model_uri") or f"runs:/{run_id}/student"


def download_student_package(
    model_uri: str, destination: Path, *, tracking_uri: str | None
) -> Path:
    """The student package inside a logged or registered student model, fetched to
    ``destination`` (``runs:/<id>/student``, ``models:/<name>@<alias>``, ``models:/<name>/<v>``)."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    if tracking_uri:
        # models:/ names resolve through the registry, which follows the global tracking URI
        # (download_artifacts' tracking_uri does not reach it). A CLI process: global is fine.
        mlflow.set_tracking_uri(expand(tracking_uri))
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri, dst_path=str(destination)
        )
    except (MlflowException, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        where = tracking_uri or "the default tracking URI (./mlruns)"
        raise UserInputError(f"cannot fetch {model_uri} from {where}: {first}") from error
    package = Path(local) / "artifacts" / "student"
    if not package.is_dir():
        raise UserInputError(f"{model_uri} is not an adabert student model (no artifacts/student)")
    return package


def child_runs(tracking_uri: str, experiment_id: str, parent_run_id: str) -> list:
    return _find_runs(
        client(tracking_uri), experiment_id, {"tags.mlflow.parentRunId": parent_run_id}
    )


def log_to_run(
    tracking_uri: str,
    run_id: str,
    *,
    metrics: dict[str, float] | None = None,
    params: dict[str, str] | None = None,
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
    # Params are write-once in MLflow: a resumed sweep logs only the ones not yet there.
    known = mlflow_client.get_run(run_id).data.params if params else {}
    fresh = [Param(k, v[:6000]) for k, v in (params or {}).items() if k not in known]
    for start in range(0, len(fresh), 100):
        mlflow_client.log_batch(run_id, params=fresh[start : start + 100])
    for path, figure in (figures or {}).items():
        _log_figure(mlflow_client, run_id, figure, path)


def _log_figure(mlflow_client: MlflowClient, run_id: str, figure, path: str) -> None:
    import matplotlib.pyplot as plt

    try:
        mlflow_client.log_figure(run_id, figure, path)
    finally:
        plt.close(figure)


def run_tag(tracking_uri: str, run_id: str, name: str) -> str | None:
    return client(tracking_uri).get_run(run_id).data.tags.get(name)


def close_open_runs(
    tracking_uri: str, experiment_id: str, *, status: str, parent_run_id: str | None = None
) -> int:
    """Give every run still RUNNING (in the experiment, or among one parent's children) a final
    status; returns how many."""
    mlflow_client = client(tracking_uri)
    filters = {"attributes.status": "RUNNING"}
    if parent_run_id is not None:
        filters["tags.mlflow.parentRunId"] = parent_run_id
    runs = _find_runs(mlflow_client, experiment_id, filters)
    for run in runs:
        mlflow_client.set_terminated(run.info.run_id, status)
    return len(runs)

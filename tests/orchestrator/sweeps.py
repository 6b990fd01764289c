"""Helpers of the sweep tests: a tiny two-task sweep file, running ``adabert`` in its own
session (so every process it starts can be found and stopped), and reading the stores back."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TASKS = ("sentiment", "paraphrase")
SWEEP = """
[sweep]
name = "{name}"
root = "{root}"
trials_per_task = {trials}
max_concurrent_trials = {concurrent}
cpus_per_trial = 0.5
second_objective = "params"
object_store_mb = 128
scheduler = "{scheduler}"
grace_period = 1
demo_train_size = {train_size}
demo_dev_size = 32
min_free_mb = {min_free_mb}
log_model = {log_model}
register_best = {log_model}

[base.teacher]
name_or_path = "{teacher}"
batch_size = 16
epochs = 1.0
probe_epochs = 1

[base.data]
max_seq_length = 24
batch_size = 16
augment_copies = 0

[base.supernet]
hidden_size = 16
max_cells = 2
mixed_op_mode = "sampled"

[base.search]
epochs = {search_epochs}

[base.retrain]
epochs = {retrain_epochs}
learning_rate = 1e-3

[base.run]
cache_dir = "{cache}"
threads = 1
latency_seq_length = 24
latency_repeats = 1
progress_bar = false

{tasks}

[space]
"loss.efficiency_weight" = {{ type = "float", low = 0.5, high = 8.0, log = true }}
"supernet.max_cells" = {{ type = "int", low = 1, high = 2 }}
"""


def write_sweep(
    root: Path,
    teacher: Path,
    *,
    name: str = "t",
    trials: int = 2,
    concurrent: int = 1,
    scheduler: str = "asha",
    search_epochs: int = 2,
    tasks: tuple[str, ...] = TASKS,
    min_free_mb: int = 0,
    log_model: bool = False,
    overrides: dict[str, list[str]] | None = None,
    cache: Path | None = None,
    train_size: int = 64,
    retrain_epochs: int = 1,
) -> Path:
    entries = []
    for task in tasks:
        demo, _, alias = task.partition("=")  # "broken=paraphrase": a second task on that data
        entries.append(
            f'[[tasks]]\ndemo = "{alias or demo}"\nname = "{demo}"\n'
            f"overrides = {json.dumps((overrides or {}).get(demo, []))}\n"
        )
    entries = "\n".join(entries)
    path = root / f"{name}.toml"
    path.write_text(
        SWEEP.format(
            name=name, root=root, teacher=teacher, trials=trials, concurrent=concurrent,
            scheduler=scheduler, search_epochs=search_epochs, tasks=entries,
            min_free_mb=min_free_mb, log_model=str(log_model).lower(),
            cache=cache or root / "cache", train_size=train_size, retrain_epochs=retrain_epochs,
        )
    )  # fmt: skip
    return path


def environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAY_AUTH_MODE="disabled", **extra)
    env.pop("RAY_ADDRESS", None)
    return env


def adabert(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator", *args]


# A shell without job control starts background commands with SIGINT ignored, and exec keeps an
# ignored signal ignored: a suite run under `cmd &` or nohup (as CI may) would hand the sweep a
# SIGINT it must not react to, as a user's `adabert sweep ... &` should not. This launcher gives
# the sweep what a terminal's foreground job has: SIGINT at its default, then execs the command.
_AS_A_TERMINAL_JOB = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def start(args: list[str], *, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """Its own session (every Ray process it starts shares the session id), SIGINT at its
    default whatever the suite's own disposition, as when typed at a terminal."""
    return subprocess.Popen(
        [sys.executable, "-c", _AS_A_TERMINAL_JOB, *args], cwd=cwd, env=env or environment(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:  # field 6 of /proc/<pid>/stat: the session id
                pids.append(int(entry.name))
    return pids


def kill_session(sid: int) -> None:
    for pid in session_pids(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def finish(process: subprocess.Popen, timeout: float) -> subprocess.CompletedProcess:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(process.pid)
        out, _ = process.communicate()
        pytest.fail(f"{process.args} timed out:\n{out[-4000:]}")
    finally:
        wait_session_gone(process.pid)
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


def run(args: list[str], *, cwd: Path, timeout: float = 600, env=None):
    return finish(start(args, cwd=cwd, env=env), timeout)


def wait_session_gone(sid: int, timeout: float = 5.0) -> None:
    """Ray's core processes and workers die within ~2 s of their driver; its dashboard and
    runtime-env agents linger up to ~60 s (measured, ray 2.60). Whatever is left after
    ``timeout`` is killed: the tests leave nothing behind, and nothing of an old session runs
    on beside the next one."""
    deadline = time.time() + timeout
    while session_pids(sid) and time.time() < deadline:
        time.sleep(0.5)
    kill_session(sid)


def wait_for(condition, *, timeout: float, what: str, process=None, poll: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            out = process.stdout.read() if process.stdout else ""
            pytest.fail(f"the sweep ended before {what}:\n{out[-4000:]}")
        time.sleep(poll)
    pytest.fail(f"timed out waiting for {what}")


# --- reading the stores back -----------------------------------------------------------------


def mlflow_runs(folder: Path, name: str):
    from mlflow import MlflowClient

    if not (folder / "mlflow.db").is_file():
        return None, None, []
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"adabert-{name}")
    if experiment is None:
        return client, None, []
    return client, experiment, client.search_runs([experiment.experiment_id], max_results=5000)


def max_step(folder: Path, task: str, metric: str = "train/loss_total") -> int:
    """The last step a trial of ``task`` logged, read with sqlite3 in read-only mode: while a
    sweep runs, an MLflow client here could race the sweep's own schema set-up."""
    import sqlite3

    path = folder / "mlflow.db"
    if not path.is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute(
                "SELECT max(m.step) FROM metrics m JOIN tags t ON t.run_uuid = m.run_uuid "
                "WHERE m.key = ? AND t.key = 'adabert.task' AND t.value = ?",
                (metric, task),
            ).fetchone()
    except sqlite3.Error:  # not created yet, or locked for a moment
        return 0
    return int(row[0] or 0)


def optuna_trials(folder: Path, name: str, task: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not (folder / "optuna.db").is_file():  # never create it: the sweep does
        return []
    try:
        study = optuna.load_study(
            study_name=f"adabert-{name}-{task}", storage=f"sqlite:///{folder / 'optuna.db'}"
        )
    except KeyError:
        return []
    return study.get_trials(deepcopy=False)


def optuna_states(folder: Path, name: str, task: str) -> list[str]:
    """Trial states of a task's study, read with sqlite3 in read-only mode (safe to poll while
    the sweep writes; Optuna's own client could race its schema set-up)."""
    import sqlite3

    path = folder / "optuna.db"
    if not path.is_file():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT t.state FROM trials t JOIN studies s ON s.study_id = t.study_id "
                "WHERE s.study_name = ? ORDER BY t.number",
                (f"adabert-{name}-{task}",),
            ).fetchall()
    except sqlite3.Error:
        return []
    return [state for (state,) in rows]


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())

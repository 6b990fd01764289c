"""bench/sweep_sst2_mrpc.toml promises to read the benchmark's cache: its teacher and transfer
set settings must be the benchmark's headline settings for each task (README commands)."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_bench import read_settings, task_config

from orchestrator.sweep.config import load_sweep_config, task_run_config
from orchestrator.tasks.registry import get_task

ROOT = Path(__file__).resolve().parents[2]
# The headline commands' --set beyond bench.toml (README, "Benchmark on GLUE dev").
HEADLINE_SETS = {
    "sst2": [
        "data.max_train_samples=none",
        "teacher.epochs=1",
        "data.augment_copies=1",
        "search.max_steps_per_epoch=100",
        "retrain.max_steps_per_epoch=500",
    ],
    "mrpc": [],
}


def _glue_folder(root: Path, task: str) -> Path:
    layout = get_task(task).glue
    folder = root / layout.folder
    folder.mkdir(parents=True, exist_ok=True)
    for name in (layout.train_file, layout.dev_file):
        (folder / name).write_text("", encoding="utf-8")
    return root


@pytest.mark.parametrize("task", sorted(HEADLINE_SETS))
def test_the_glue_sweep_uses_the_benchmarks_teacher_and_transfer_set(tmp_path, task):
    sweep = load_sweep_config(str(ROOT / "bench" / "sweep_sst2_mrpc.toml"))
    (entry,) = [t for t in sweep.tasks if t.name == task]
    swept = task_run_config(sweep, entry, data_root=tmp_path)
    settings = read_settings(str(ROOT / "bench" / "bench.toml"), HEADLINE_SETS[task])
    bench = task_config(settings, task, _glue_folder(tmp_path, task))
    assert swept.teacher == bench.teacher
    assert swept.data == bench.data
    assert swept.run.seed == bench.run.seed
    for section in ("search", "retrain"):  # the budget; Optuna's [space] varies the rest
        for key in ("epochs", "max_steps_per_epoch"):
            assert getattr(getattr(swept, section), key) == getattr(getattr(bench, section), key)
    assert swept.retrain.mode == bench.retrain.mode

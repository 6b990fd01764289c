"""AdaBERT on real GLUE tasks, against a random genotype and a small BERT-style student.

Usage (from the repository root, after scripts/setup.sh):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/run_bench.py --glue-dir ../shared/data/glue \
        --tasks sst2 mrpc rte cola stsb --config bench/bench.toml [--set k=v ...] [--out DIR] \
        [--seeds 1,2,3]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/run_bench.py --own my_task.toml [--seeds 1,2,3]

``--own`` benchmarks a task of your own: a run config as ``adabert run --config`` reads it
(``[task]`` names the files and columns), over bench.toml's run sections.

Per task this is ``adabert run`` (the project's own ``prepare_task`` and ``run_one_task``: cached
teacher knowledge, search, derive, retrain with KD), once per ``--seeds`` seed on the same
prepared task, followed by four baselines trained with the same loss ((1 - γ)·CE + γ·KD on the
teacher's final logits, through ``run_retrain``) for the same number of optimizer steps the
searched student's weights received, once per seed (``bench.controls_per_seed``; their figure is
the mean over the seeds, as the searched student's is):

- a random genotype of similar cost: seeded random architecture logits through
  ``derive_genotype`` with the searched supernet's config, the one whose exact parameter count
  is closest to the searched student's (same number of cells when possible), trained from
  scratch with embeddings initialised from the teacher's tables as the searched supernet's are;
- a random genotype of any size (``bench.random_any_size``): one genotype per seed drawn over the
  whole search space whatever its cost, trained the same way: what a user gets without the
  search, where the control above, sharing the searched student's size, isolates the arrangement;
- a bag of embeddings (the floor, ``bench_floors``): the students' embedding layer, a masked mean
  over real tokens and a linear layer ([u, v, |u - v|, u * v] for pairs);
- a BERT-style student of similar speed: ``BertForSequenceClassification`` of the candidate
  shape (``bench.bert_layers`` x ``bench.bert_widths``) whose batch-1 latency is closest to the
  searched student's (``bench_bert_pick``), fed the teacher's joint pair encoding, word and
  position embeddings initialised from the same PCA projection of the teacher's tables.

The baselines are matched to (and timed against) the first seed's student. Then the searched
student, the baselines, the fine-tuned teacher and a BERT-base architecture with random weights
are timed side by side in this process (``compare_latency``, batch 1 and 32). The constant
prediction of the training set's majority class is scored too. Results go to ``<out>/bench.md``
and ``<out>/bench.json``, rewritten after every task; the searched students' run folders go to
``<out>/raw/runs/`` (``<out>/raw/runs/seed-<s>/`` when several seeds run).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from bench_baselines import (
    bert_base_architecture,
    bert_baseline,
    count_params,
    joint_encoding_datasets,
    pick_bert_shape,
    pick_random_genotype,
    random_baseline,
    random_genotype_any_size,
    searched_steps,
    transformer_flops,
)
from bench_floors import floor_baseline, majority_baseline
from bench_report import ratio, write_report
from bench_summary import control_figure, mean_std

from orchestrator.config import (
    RunConfig,
    build_config,
    merge_overrides,
    parse_override,
    read_toml,
)
from orchestrator.errors import UserInputError
from orchestrator.method.latency import add_equal_text, compare_latency
from orchestrator.method.pipeline import (
    PreparedTask,
    TrialResult,
    load_run_data,
    prepare_task,
    run_one_task,
    student_kind,
)
from orchestrator.method.run_folder import write_run_folder
from orchestrator.preflight import check_task_inputs
from orchestrator.progress import EpochCallback, console_reporter
from orchestrator.tasks.data import progress_bars
from orchestrator.tasks.registry import GLUE_TASKS, get_task
from orchestrator.teacher.model import load_teacher

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_THREADS = torch.get_num_threads()  # before anything sets it
DEFAULT_TASKS = ("sst2", "mrpc", "rte", "cola", "stsb")

# Bench-only settings ([bench] in bench.toml, or --set bench.<key>=<value>).
BENCH_DEFAULTS: dict[str, Any] = {
    # Adam learning rate of the BERT-style student; None = retrain.learning_rate.
    "bert_learning_rate": None,
    "bert_heads": 2,
    # Candidate shapes (every layers x width pair) of the BERT-style student; the one whose
    # batch-1 latency is closest to the searched student's is trained.
    "bert_layers": [1, 2, 4, 6],
    "bert_widths": [64, 128, 256],
    # Random genotypes drawn before keeping the one closest in parameters.
    "random_genotype_samples": 2000,
    "random_genotype_seed": 1234,
    # Torch thread counts latency is measured at, one interleaved run each; 0 = torch's default
    # at start-up. The first gives the headline speedups.
    "latency_threads": [1, 0],
    # Each control is trained once per search seed (weights' init and data order; the same
    # architecture, matched to the first seed's student) and reported as the mean over them,
    # so "searched vs control" compares two means over the same seeds, not a mean and one draw.
    "controls_per_seed": True,
    # A genotype drawn over the whole space, whatever its cost, one per seed: what a user gets
    # without the search (the random genotype above shares the searched student's size, so it
    # measures the arrangement only).
    "random_any_size": True,
}
# What each seed's any-size draw keeps beside its metrics: the draws differ in architecture.
ANY_SIZE_PER_SEED = ("params", "flops", "genotype_hash", "genotype_summary")


# --- configuration ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    base: dict[str, Any]  # the RunConfig sections of bench.toml
    per_task: dict[str, dict[str, Any]]  # [tasks.<name>]: partial RunConfig sections
    options: dict[str, Any]  # [bench] merged over BENCH_DEFAULTS and --set bench.*
    run_overrides: dict[str, Any]  # --set section.key=value for the RunConfig
    toml_text: str


def read_settings(path: str | None, overrides: list[str]) -> BenchSettings:
    data = read_toml(path) if path else {}
    options = dict(BENCH_DEFAULTS)
    options.update(_table(data.pop("bench", {}), "[bench]"))
    per_task = _table(data.pop("tasks", {}), "[tasks]")
    for name, table in per_task.items():
        if name not in GLUE_TASKS:
            raise UserInputError(f"[tasks.{name}]: not a GLUE task ({', '.join(GLUE_TASKS)})")
        _table(table, f"[tasks.{name}]")
    run_overrides = {}
    for text in overrides:
        key, value = parse_override(text)
        if key.startswith("bench."):
            options[key.split(".", 1)[1]] = value
        else:
            run_overrides[key] = value
    unknown = sorted(set(options) - set(BENCH_DEFAULTS))
    if unknown:
        raise UserInputError(f"unknown bench setting(s): {', '.join(unknown)}")
    threads = options["latency_threads"]
    if isinstance(threads, int) and not isinstance(threads, bool):
        threads = options["latency_threads"] = [threads]
    if not threads or not all(isinstance(t, int) and t >= 0 for t in threads):
        raise UserInputError(f"bench.latency_threads must be a list of ints >= 0, got {threads!r}")
    for key in ("bert_layers", "bert_widths"):
        options[key] = _positive_ints(options[key], f"bench.{key}")
    heads = options["bert_heads"]
    if not isinstance(heads, int) or heads < 1 or any(w % heads for w in options["bert_widths"]):
        raise UserInputError(f"bench.bert_heads must be >= 1 and divide every width, got {heads!r}")
    if not isinstance(options["controls_per_seed"], bool):
        raise UserInputError(
            f"bench.controls_per_seed must be true or false, got {options['controls_per_seed']!r}"
        )
    text = Path(path).read_text(encoding="utf-8") if path else ""
    return BenchSettings(data, per_task, options, run_overrides, text)


def _positive_ints(value: Any, where: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        raise UserInputError(f"{where} must be a non-empty list of ints >= 1, got {value!r}")
    return value


def parse_seeds(text: str) -> list[int]:
    """``--seeds 1,2,3`` -> [1, 2, 3]: distinct ints, in the order given."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be comma-separated ints, got {text!r}"
        ) from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct and non-empty, got {text!r}")
    return seeds


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserInputError(f"{where} must be a table, got {value!r}")
    return value


def task_config(settings: BenchSettings, task: str, glue_dir: Path) -> RunConfig:
    """bench.toml, then its [tasks.<task>] table, then --set; task name and folder last."""
    data = _layered(settings.base, settings.per_task.get(task, {}), f"[tasks.{task}.")
    layout = get_task(task).glue
    if layout is None:
        raise UserInputError(f"task {task!r} has no GLUE TSV layout")
    folder = glue_dir / layout.folder
    if not (folder / layout.train_file).is_file() or not (folder / layout.dev_file).is_file():
        raise UserInputError(f"{folder} has no {layout.train_file} and {layout.dev_file}")
    pairs = dict(settings.run_overrides)
    pairs["task.name"] = task
    pairs["task.data_dir"] = str(folder)
    return build_config(merge_overrides(data, pairs))


def _layered(base: dict[str, Any], layer: dict[str, Any], where: str) -> dict[str, Any]:
    """RunConfig sections: ``layer``'s keys over ``base``'s, section by section (each of the
    layer's sections must be a table; ``where`` + section name says whose)."""
    data = {section: dict(values) for section, values in base.items()}
    for section, values in layer.items():
        data.setdefault(section, {}).update(_table(values, f"{where}{section}]"))
    return data


def own_task_config(settings: BenchSettings, path: str) -> RunConfig:
    """A task of the user's own (``--own FILE``): the run config ``adabert run --config FILE``
    reads, its [task] naming the files (and the task, else the file's stem names it).
    bench.toml's run sections come first, so a short file runs at the benchmark's budget with
    its teacher (fine-tuned on the task, as for GLUE); the file wins over them, --set over
    both; no [tasks.<name>] table applies. The data is read and the teacher checked against it
    here, before any long work."""
    # `adabert run --task NAME --config FILE` names the task on its command line; here the
    # file's stem names it unless its [task] does (a name is checked to be an identifier).
    own = read_toml(path)
    data = _layered(settings.base, own, f"{path}: [")
    if "name" not in own.get("task", {}):
        data.setdefault("task", {})["name"] = Path(path).stem
    cfg = build_config(merge_overrides(data, settings.run_overrides))
    check_task_inputs(cfg)
    return cfg


def task_configs(
    settings: BenchSettings, glue_tasks: list[str], own_files: list[str], glue_dir: Path
) -> tuple[dict[str, RunConfig], dict[str, str]]:
    """Every task's config by name, GLUE tasks first, and the file each task of the user's own
    came from; a name given twice is an error."""
    configs = {task: task_config(settings, task, glue_dir) for task in glue_tasks}
    own = {}
    for path in own_files:
        cfg = own_task_config(settings, path)
        if cfg.task.name in configs:
            raise UserInputError(f"{path}: task {cfg.task.name!r} is benchmarked twice")
        configs[cfg.task.name] = cfg
        own[cfg.task.name] = str(path)
    return configs, own


def with_seed(cfg: RunConfig, seed: int) -> RunConfig:
    return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, seed=seed))


def searched_record(cfg: RunConfig, result: TrialResult, run_dir: Path, budget) -> dict[str, Any]:
    """One seed's searched student, as bench.json stores it."""
    return {
        "seed": cfg.run.seed,
        "metrics": _dev_metrics(result.metrics),
        "params": result.student.num_parameters(),
        "flops": result.student.flops(cfg.run.latency_seq_length),
        "flops_at_train_seq": result.student.flops(cfg.data.max_seq_length),
        "genotype": result.genotype.to_dict(),
        "genotype_summary": result.genotype.summary(),
        "genotype_hash": result.genotype.hash,
        "search_best_epoch": result.metrics.get("search/best_epoch"),
        "search_best_dev": result.metrics.get("search/best_dev"),
        # How far α left uniform at the genotype's search epoch (1 = not at all).
        "search_entropy_share": result.metrics.get("search/entropy_share"),
        "retrain_best_epoch": result.metrics.get("retrain/best_epoch"),
        "steps": budget,
        "run_dir": str(run_dir),
        "phase_seconds": {k: result.phase_seconds.get(k) for k in ("search", "retrain")},
        "history": result.history,
    }


def bench_task(
    task: str,
    cfg: RunConfig,
    options: dict[str, Any],
    out: Path,
    reporter: EpochCallback,
    seeds: list[int] | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    seeds = seeds or [cfg.run.seed]
    # run.threads applies from prepare_task on; the thread count is set here for every phase.
    torch.set_num_threads(cfg.run.threads or DEFAULT_THREADS)
    print(f"== {task}: data and teacher knowledge", file=sys.stderr, flush=True)
    # The teacher, its knowledge and any subsample follow the config's seed: every search seed
    # below distils the same cached teacher.
    prepared = prepare_task(cfg, on_progress=reporter)
    train_rows = len(prepared.train)  # the transfer set the students train on
    budget = searched_steps(cfg, train_rows)
    runs_root = out / "raw" / "runs"
    result, seed_records = None, []
    for seed in seeds:
        print(f"== {task}: search, derive, retrain (seed {seed})", file=sys.stderr, flush=True)
        seed_cfg = with_seed(cfg, seed)
        seed_result = run_one_task(seed_cfg, prepared, on_epoch=reporter)
        root = runs_root / f"seed-{seed}" if len(seeds) > 1 else runs_root
        run_dir = write_run_folder(seed_cfg, result=seed_result, prepared=prepared, root=root)
        seed_records.append(searched_record(seed_cfg, seed_result, run_dir, budget))
        if result is None:
            result = seed_result  # the first seed's student is matched to and timed
    phases = dict(result.phase_seconds)
    # What the teacher's cache entry cost when it was computed (also true on a cache hit):
    # fine-tuning, the knowledge pass (logits, probes) and the augmented copies' labelling.
    cached = prepared.knowledge_seconds
    if cached:
        phases["teacher"] = cached.get("fine_tune")
        phases["knowledge"] = (cached.get("knowledge") or 0.0) + (cached.get("augment") or 0.0)
        phases["augment"] = cached.get("augment")
    for phase in ("search", "retrain"):  # wall time over every seed
        phases[phase] = sum(r["phase_seconds"][phase] or 0.0 for r in seed_records)
    config = result.supernet_config
    seq_len = cfg.run.latency_seq_length
    searched = dict(seed_records[0])
    del searched["phase_seconds"]  # the run's phase table holds the totals
    # Every seed's record without its history (the first seed's is in "searched").
    seed_rows = [{k: v for k, v in r.items() if k != "history"} for r in seed_records]

    print(f"== {task}: random genotype of similar cost", file=sys.stderr, flush=True)
    clock = time.perf_counter()
    metric = prepared.task.primary_metric
    control_seeds = seeds if options["controls_per_seed"] else seeds[:1]

    genotype, genotype_choice = pick_random_genotype(cfg, result, config, options)

    def train_random(seed_cfg: RunConfig) -> dict[str, Any]:
        return random_baseline(
            seed_cfg, prepared, config, budget, reporter, genotype=genotype, choice=genotype_choice
        )

    random_result = over_seeds(train_random, cfg, control_seeds, metric)
    phases["baseline_random"] = time.perf_counter() - clock
    random_student = random_result.pop("model")

    any_size_result = None
    if options["random_any_size"]:
        print(f"== {task}: random genotype of any size", file=sys.stderr, flush=True)
        clock = time.perf_counter()

        def train_any_size(seed_cfg: RunConfig) -> dict[str, Any]:
            # A new architecture per seed: the figure is what an unsearched pick scores on
            # average, not one lucky or unlucky draw.
            draw_seed = int(options["random_genotype_seed"]) + seed_cfg.run.seed
            drawn = random_genotype_any_size(
                config, seed=draw_seed, exclude_zero=cfg.search.exclude_zero, avoid=result.genotype
            )
            choice = {"any_size": True, "seed": draw_seed}
            return random_baseline(
                seed_cfg, prepared, config, budget, reporter, genotype=drawn, choice=choice
            )

        any_size_result = over_seeds(
            train_any_size, cfg, control_seeds, metric, keep=ANY_SIZE_PER_SEED
        )
        any_size_result.pop("model")
        phases["baseline_random_any_size"] = time.perf_counter() - clock

    print(f"== {task}: bag of embeddings", file=sys.stderr, flush=True)
    clock = time.perf_counter()

    def train_floor(seed_cfg: RunConfig) -> dict[str, Any]:
        return floor_baseline(seed_cfg, prepared, config, budget, reporter)

    floor_result = over_seeds(train_floor, cfg, control_seeds, metric)
    phases["baseline_floor"] = time.perf_counter() - clock
    floor_student = floor_result.pop("model")

    print(f"== {task}: BERT-style student of similar latency", file=sys.stderr, flush=True)
    clock = time.perf_counter()
    shape, shape_choice = pick_bert_shape(cfg, prepared, result, config, options)
    with progress_bars(cfg.run.progress_bar):
        # With the task's own config: its seed drew the subsample and the augmented copies.
        joint = joint_encoding_datasets(cfg, prepared)

    def train_bert(seed_cfg: RunConfig) -> dict[str, Any]:
        return bert_baseline(
            seed_cfg, prepared, config, options, budget, reporter, datasets=joint, shape=shape
        )

    bert_result = {**over_seeds(train_bert, cfg, control_seeds, metric), "choice": shape_choice}
    phases["baseline_bert"] = time.perf_counter() - clock
    bert_student = bert_result.pop("model")

    print(f"== {task}: latency, every model interleaved", file=sys.stderr, flush=True)
    clock = time.perf_counter()
    teacher = load_teacher(prepared.teacher_dir, task=prepared.task, fine_tuned=True)
    bert_base = bert_base_architecture(prepared.task.num_labels)
    vocab = min(prepared.vocab_size, config.vocab_size)
    kind = student_kind(prepared.task)
    models = {
        "searched": (result.student, kind),
        "random": (random_student, kind),
        "bag_of_embeddings": (floor_student, kind),
        "bert_style": (bert_student, "teacher"),
        "teacher": (teacher, "teacher"),
        "bert_base": (bert_base, "teacher"),
    }
    # A pair student reads each sentence at seq_len (2 x 128 tokens against the transformers'
    # joint 128): the second figure gives it the same text, each sentence at half the length.
    seq_lens = add_equal_text(models, "searched", seq_len) if prepared.task.is_pair else {}
    latency, latency_runs = {}, []
    for used in dict.fromkeys(int(t) or DEFAULT_THREADS for t in options["latency_threads"]):
        torch.set_num_threads(used)
        load_before = os.getloadavg()[0]
        measured = compare_latency(
            models,
            vocab_size=vocab,
            seq_len=seq_len,
            repeats=cfg.run.latency_repeats,
            seq_lens=seq_lens,
        )
        label = f"threads={used}"
        latency[label] = {k[len("latency/") : -len("_ms")]: v for k, v in measured.items()}
        latency_runs.append(
            {
                "label": label,
                "threads": used,
                "load_average_before": load_before,
                "load_average_after": os.getloadavg()[0],
            }
        )
    torch.set_num_threads(cfg.run.threads or DEFAULT_THREADS)
    teacher_info = {
        "metrics": {k.split("/", 1)[1]: v for k, v in prepared.teacher_metrics.items()},
        "params": prepared.teacher_params,
        "flops": transformer_flops(teacher, seq_len, vocab),
        "cache_hit": prepared.cache_hit,
        "dir": prepared.teacher_dir,
        "probe_metrics": prepared.probe_metrics,
    }
    bert_result["flops"] = transformer_flops(bert_student, seq_len, vocab)
    bert_base_info = {
        "params": count_params(bert_base),
        "flops": transformer_flops(bert_base, seq_len, vocab),
    }
    phases["latency"] = time.perf_counter() - clock
    latency_meta = {
        "seq_len": seq_len,
        "repeats": cfg.run.latency_repeats,
        "headline": latency_runs[0]["label"],
        "runs": latency_runs,
    }
    del teacher, bert_base
    phases["total"] = time.perf_counter() - started

    teacher_score = teacher_info["metrics"].get(metric)
    seed_scores = mean_std([r["metrics"].get(metric) for r in seed_records])
    # The training set's own rows come first in the transfer set (augmented copies follow).
    original_rows = getattr(prepared, "train_examples", 0) or train_rows
    majority = majority_baseline(
        prepared.task, prepared.train.labels[:original_rows], prepared.dev.labels
    )
    ratios = {
        "retention": ratio(searched["metrics"].get(metric), teacher_score),
        "retention_seed_mean": ratio(seed_scores["mean"], teacher_score),
        **{
            f"retention_{name}": ratio(control_figure(record, metric)[0], teacher_score)
            for name, record in (
                ("random", random_result),
                ("bag_of_embeddings", floor_result),
                ("bert_style", bert_result),
            )
        },
        "size_vs_teacher": teacher_info["params"] / searched["params"],
        "size_vs_bert_base": bert_base_info["params"] / searched["params"],
    }
    speedups = {label: speedup_ratios(ms) for label, ms in latency.items()}
    ratios |= speedups[latency_meta["headline"]]  # the first of bench.latency_threads
    ratios["speedups_by_threads"] = speedups
    return {
        "task": task,
        "status": "done",
        "metric": metric,
        "data": {
            "train_examples": original_rows,
            # None when the pipeline does not report augmentation (before it had any).
            "augmented_examples": getattr(prepared, "augmented_examples", None),
            "transfer_examples": train_rows,
            "dev_examples": len(prepared.dev),
            "train_available": _available(cfg, prepared, "train", original_rows),
            "dev_available": _available(cfg, prepared, "validation", len(prepared.dev)),
            "max_seq_length": cfg.data.max_seq_length,
        },
        "teacher": teacher_info,
        "searched": searched,
        "seeds": seed_rows,
        "searched_over_seeds": {"metric": metric, **seed_scores},
        "random_genotype": random_result,
        "random_any_size": any_size_result,
        "bag_of_embeddings": floor_result,
        "majority_baseline": majority,
        "bert_style": bert_result,
        "bert_base": bert_base_info,
        "latency_ms": latency,
        "latency_meta": latency_meta,
        "ratios": ratios,
        "phase_seconds": phases,
        "config": cfg.to_dict(),
    }


def speedup_ratios(ms: dict[str, float]) -> dict[str, float]:
    """Latency ratios of the teacher and BERT-base to the searched student, per batch size;
    for a pair task also to the student timed on equal text (``searched_equal_text``)."""
    ratios = {}
    for student, suffix in (("searched", ""), ("searched_equal_text", "_equal_text")):
        for batch in (1, 32):
            if f"{student}_b{batch}" not in ms:
                continue
            for other in ("teacher", "bert_base"):
                ratios[f"speedup_b{batch}_vs_{other}{suffix}"] = (
                    ms[f"{other}_b{batch}"] / ms[f"{student}_b{batch}"]
                )
    return ratios


def over_seeds(
    train, cfg: RunConfig, seeds: list[int], metric: str, keep: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A control trained with each seed (``train(cfg with that seed)`` -> its record): the
    first seed's record, its model kept (timed, saved), plus ``by_seed`` (every seed's dev
    metrics, best epoch and the record's ``keep`` fields) and ``over_seeds`` (mean and
    population std of ``metric``)."""
    first, rows = None, []
    for seed in seeds:
        record = train(with_seed(cfg, seed))
        if first is None:
            first = record
        else:
            del record["model"]
        rows.append(
            {
                "seed": seed,
                "metrics": record["metrics"],
                "best_epoch": record["best_epoch"],
                **{k: record[k] for k in keep},
            }
        )
    first["by_seed"] = rows
    first["over_seeds"] = {
        "metric": metric,
        "seeds": list(seeds),
        **mean_std([r["metrics"].get(metric) for r in rows]),
    }
    return first


def _available(cfg: RunConfig, prepared: PreparedTask, split: str, used: int) -> int:
    """Rows the split has before subsampling; ``used``: rows of it the run read (for train,
    without augmented copies)."""
    limit = cfg.data.max_train_samples if split == "train" else cfg.data.max_dev_samples
    if limit is None or used < limit:
        return used  # no subsample was taken
    whole = dataclasses.replace(cfg.data, max_train_samples=None, max_dev_samples=None)
    with progress_bars(cfg.run.progress_bar):
        # The run's own source (GLUE folder or the user's files), without the subsample.
        data = load_run_data(dataclasses.replace(cfg, data=whole), prepared.task)
    return len(data[split])


def _dev_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {k[4:]: v for k, v in metrics.items() if k.startswith("dev/")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_bench.py", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--glue-dir",
        default=str(ROOT.parent / "shared" / "data" / "glue"),
        help="GLUE root holding SST-2/, MRPC/, RTE/, CoLA/, STS-B/ (default: %(default)s)",
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        choices=sorted(name for name, spec in GLUE_TASKS.items() if spec.glue is not None),
        metavar="TASK",
        help=f"GLUE tasks, run in this order (default: {' '.join(DEFAULT_TASKS)}, or none when "
        "--own is given)",
    )
    parser.add_argument(
        "--own",
        nargs="+",
        default=[],
        metavar="CONFIG",
        help="tasks of your own, after the GLUE tasks: run configs as `adabert run --config` "
        "reads them ([task] names the files and columns; the task is named by its name or "
        "else the file's stem), layered over bench.toml's run "
        "sections (its teacher is fine-tuned on the task unless the file names another; no "
        "[tasks.<name>] applies), --set over both",
    )
    parser.add_argument(
        "--config",
        default=str(ROOT / "bench" / "bench.toml"),
        help="bench TOML: RunConfig sections, [bench] and [tasks.<name>] (default: %(default)s)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override for every task, e.g. search.epochs=3 or bench.bert_learning_rate=1e-4; "
        "wins over bench.toml and its [tasks.<name>] tables",
    )
    parser.add_argument(
        "--seeds",
        type=parse_seeds,
        default=None,
        metavar="S1,S2,...",
        help="search + retrain once per seed (e.g. 1,2,3) on the same cached teacher; the "
        "baselines run once, matched to the first seed's student (default: run.seed)",
    )
    parser.add_argument(
        "--out",
        default=str(ROOT / "bench" / "results"),
        help="folder for bench.md, bench.json and raw/runs/ (default: %(default)s)",
    )
    return parser


def _teachers_text(configs: dict[str, RunConfig]) -> str:
    """The teacher every task starts from, or each task's when they differ (a task of your own
    may name another); each task's entry records its fine-tuned teacher either way."""
    names = {task: cfg.teacher.name_or_path for task, cfg in configs.items()}
    if len(set(names.values())) == 1:
        return next(iter(names.values()))
    return ", ".join(f"{task}: {name}" for task, name in names.items())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raw_args = sys.argv[1:] if argv is None else list(argv)
    glue_dir = Path(args.glue_dir)
    out = Path(args.out)
    try:
        settings = read_settings(args.config, args.set)
        # Validate every task's config before spending an hour on the first one.
        glue_tasks = args.tasks if args.tasks is not None else [] if args.own else DEFAULT_TASKS
        configs, own = task_configs(settings, list(glue_tasks), args.own, glue_dir)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import transformers

    if not any(cfg.run.progress_bar for cfg in configs.values()):
        transformers.utils.logging.disable_progress_bar()
    first_threads = settings.options["latency_threads"][0] or DEFAULT_THREADS
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "command": shlex.join(["python", "bench/run_bench.py", *raw_args]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "tasks_requested": list(configs),
        "own_configs": own,  # task name -> the --own file it came from
        "complete": False,
        "teacher": _teachers_text(configs),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "config_path": args.config,
        "config_text": settings.toml_text,
        "overrides": list(args.set),
        "headline_threads": f"{first_threads} torch thread{'s' if first_threads > 1 else ''}",
        "bench_options": settings.options,
        "seeds": args.seeds,  # None: each task's run.seed
        "tasks": [],
    }
    write_report(out, report)
    reporter = console_reporter()
    status = 0
    for task, cfg in configs.items():
        try:
            entry = bench_task(task, cfg, settings.options, out, reporter, args.seeds)
            report["tasks"].append(entry)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # one task's failure must not lose the others' results
            traceback.print_exc()
            error = f"{type(exc).__name__}: {exc}"
            report["tasks"].append({"task": task, "status": "failed", "error": error})
            status = 1
        write_report(out, report)
        print(f"== {task}: written {out / 'bench.md'}", file=sys.stderr, flush=True)
    report["complete"] = True
    write_report(out, report)
    print((out / "bench.md").read_text(encoding="utf-8"))
    return status


if __name__ == "__main__":
    sys.exit(main())

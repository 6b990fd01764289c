"""One row per benchmarked task, from every ``<results>/<task>/bench.json``: summary.json.

bench.json files from before a field existed (no seeds, no bag of embeddings, no majority
baseline, no augmentation count) give null for it: a summary must never show a number no run
measured. ``python bench/bench_report.py --summary bench/results`` writes it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SUMMARY_NAME = "summary.json"
# The product's rule (orchestrator/tasks/evaluation.py): a student no better than the constant
# prediction, or giving one class to at least this share of the dev examples, is degenerate.
ALMOST_ONE_CLASS = 0.98
# Metrics on which every constant prediction scores 0 (the product defines a correlation of a
# constant as 0), so the constant baseline is known even where bench.json records no majority.
ZERO_FOR_A_CONSTANT = ("pearson", "spearmanr", "matthews_correlation")
PHASES = ("teacher", "knowledge", "search", "retrain")
CONTROLS = ("random_genotype", "random_any_size", "bag_of_embeddings", "bert_style")


def mean_std(values: list[float | None]) -> dict[str, Any]:
    """Mean and population standard deviation (the seeds run are the whole population the
    number describes, not a sample to extrapolate from); None when no value is known."""
    known = [float(v) for v in values if v is not None]
    if not known:
        return {"values": list(values), "mean": None, "std": None}
    mean = sum(known) / len(known)
    std = math.sqrt(sum((v - mean) ** 2 for v in known) / len(known))
    return {"values": list(values), "mean": mean, "std": std}


def control_runs(record: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every seed's dev metrics of a control (one run in files before per-seed controls)."""
    if not record:
        return []
    return [r["metrics"] for r in record.get("by_seed") or [record]]


def control_figure(record: dict[str, Any] | None, metric: str) -> tuple[float | None, float | None]:
    """A control's figure and spread: the mean and population std over the seeds it was trained
    with (``over_seeds``); no spread for one seed. Files from before per-seed controls hold one
    run: its dev metric."""
    spread = (record or {}).get("over_seeds")
    if spread and spread.get("metric") == metric:
        return spread["mean"], spread["std"] if len(spread["values"]) > 1 else None
    return ((record or {}).get("metrics") or {}).get(metric), None


def _get(data: Any, *path: str) -> Any:
    """data[path[0]][path[1]]..., or None where any step is missing."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _seed_scores(entry: dict[str, Any], metric: str) -> tuple[list[int] | None, list[float | None]]:
    """(seeds, their dev scores). Files before ``seeds`` ran one search with the config's
    ``run.seed``: that seed is recorded, not assumed."""
    records = entry.get("seeds")
    if records:
        return [r["seed"] for r in records], [_get(r, "metrics", metric) for r in records]
    seed = _get(entry, "config", "run", "seed")
    return ([seed] if seed is not None else None), [_get(entry, "searched", "metrics", metric)]


def degenerate(metrics: dict[str, Any] | None, metric: str, constant: float | None) -> bool | None:
    """None when the file lacks what the rule reads."""
    score = (metrics or {}).get(metric)
    if score is None or constant is None:
        return None
    share = (metrics or {}).get("majority_share")
    return score <= constant + 1e-9 or (share is not None and share >= ALMOST_ONE_CLASS)


def task_summary(entry: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """The summary row of one finished task entry of a bench.json."""
    metric = entry["metric"]
    seeds, scores = _seed_scores(entry, metric)
    spread = mean_std(scores)
    phases = entry.get("phase_seconds") or {}
    bert_style = entry.get("bert_style") or {}
    row = {
        "task": entry["task"],
        "metric": metric,
        "teacher": _get(entry, "teacher", "metrics", metric),
        "searched": spread["mean"],
        "searched_std": spread["std"],
    }
    for name in CONTROLS:
        row[name], row[f"{name}_std"] = control_figure(entry.get(name), metric)
    # The any-size draws differ in architecture: their mean size, beside their mean score.
    draws = (entry.get("random_any_size") or {}).get("by_seed") or []
    row["random_any_size_params"] = mean_std([d.get("params") for d in draws])["mean"]
    row |= {
        # How the BERT-style control was sized: bench.json files before the latency match
        # carry no "choice" and were matched by parameter count.
        "bert_style_matched_by": "latency" if "choice" in bert_style else "params",
        "majority_baseline": _get(entry, "majority_baseline", "score"),
        "retention": _ratio(spread["mean"], _get(entry, "teacher", "metrics", metric)),
        "params": _get(entry, "searched", "params"),
        "size_vs_bert_base": _get(entry, "ratios", "size_vs_bert_base"),
        "speedup_b1_vs_bert_base": _get(entry, "ratios", "speedup_b1_vs_bert_base"),
        # Pair tasks: each student sentence at half the sequence length (None otherwise).
        "speedup_b1_vs_bert_base_equal_text": _get(
            entry, "ratios", "speedup_b1_vs_bert_base_equal_text"
        ),
        "train_examples": _get(entry, "data", "train_examples"),
        "augmented_examples": _get(entry, "data", "augmented_examples"),
        "seeds": seeds,
        "searched_by_seed": scores,
    }
    constant = row["majority_baseline"]
    if constant is None and metric in ZERO_FOR_A_CONSTANT:
        constant = 0.0
    first = {"seed": (seeds or [None])[0], **(entry.get("searched") or {})}
    records = entry.get("seeds") or [first]
    flags = [degenerate(r.get("metrics"), metric, constant) for r in records]
    row["searched_degenerate_seeds"] = (
        None if any(f is None for f in flags) else [r["seed"] for r, f in zip(records, flags) if f]
    )
    row["degenerate_controls"] = (
        None
        if constant is None
        else sorted(
            name
            for name in CONTROLS
            if any(degenerate(m, metric, constant) for m in control_runs(entry.get(name)))
        )
    )
    row["retention_above_baseline"] = _ratio(
        None if spread["mean"] is None or constant is None else spread["mean"] - constant,
        None if row["teacher"] is None or constant is None else row["teacher"] - constant,
    )
    row |= {f"{phase}_seconds": phases.get(phase) for phase in PHASES}
    if source is not None:
        row["source"] = source
    return row


def summarize(results: Path) -> list[dict[str, Any]]:
    """Every done task of ``results/bench.json`` (a run of several tasks into one folder) and of
    every ``results/*/bench.json`` (one folder per task, as bench/results is kept), in that
    order; failed tasks are left out."""
    results = Path(results)
    rows = []
    for path in sorted(results.glob("bench.json")) + sorted(results.glob("*/bench.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        for entry in report.get("tasks", []):
            if entry.get("status") == "done":
                rows.append(task_summary(entry, str(path.relative_to(results))))
    return rows


def write_summary(results: Path, out: Path | None = None) -> Path:
    out = Path(out) if out is not None else Path(results) / SUMMARY_NAME
    out.write_text(json.dumps(summarize(Path(results)), indent=1) + "\n", encoding="utf-8")
    return out

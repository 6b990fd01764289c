"""A pair task "of a user's own", for trying ``adabert run`` the way a user would: STS-B's pairs
as JSONL with their own field names, a score of 3 or more labelled "similar", below it
"different" (5,749 train / 1,500 dev pairs), and a run config at the benchmark's budget with the
README's advice for a task of your own (augmentation on, scratch retrain).

    .venv/bin/python bench/make_pair_task.py --glue-dir ../shared/data/glue --out /tmp/simpairs
    HF_HUB_OFFLINE=1 .venv/bin/adabert run --task simpairs --config /tmp/simpairs/simpairs.toml

Nothing of GLUE is kept in the repository: the files are written under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from run_bench import read_settings

SIMILAR_FROM = 3.0
BENCH_TOML = Path(__file__).resolve().parent / "bench.toml"
# The budget is the benchmark's for the pairs' source task (bench.toml and its [tasks.stsb]);
# on top of it, the README's advice for a task of your own: a scratch retrain with more steps.
SOURCE_TASK = "stsb"
ADVICE = {"retrain": {"mode": "scratch", "max_steps_per_epoch": 250}, "run": {"seed": 1}}
TASK = {
    "text_a": "sentence_one",
    "text_b": "sentence_two",
    "label_column": "relation",
    "labels": ["different", "similar"],
    "metric": "accuracy",
}


def run_config(bench_toml: Path, paths: dict[str, Path]) -> dict[str, dict]:
    """The run config's sections: bench.toml's base, its [tasks.stsb], the advice, the files."""
    settings = read_settings(str(bench_toml), [])  # the bench's own reading and validation
    sections = {name: dict(values) for name, values in settings.base.items()}
    for layer in (settings.per_task.get(SOURCE_TASK, {}), ADVICE):
        for section, values in layer.items():
            sections.setdefault(section, {}).update(values)
    sections["task"] = {"train_file": str(paths["train"]), "dev_file": str(paths["dev"]), **TASK}
    sections["run"].update(output_dir=str(paths["runs"]), cache_dir=str(paths["cache"]))
    return sections


def toml_text(sections: dict[str, dict]) -> str:
    """TOML for flat sections of strings, numbers, booleans and lists (JSON spells them alike)."""
    lines = ["# A pair task of a user's own (bench/make_pair_task.py), at the benchmark's budget."]
    for name in ("task", *(k for k in sections if k != "task")):
        lines.append(f"\n[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in sections[name].items()]
    return "\n".join(lines) + "\n"


def convert(tsv: Path, jsonl: Path) -> dict[str, int]:
    """STS-B TSV -> JSONL rows {sentence_one, sentence_two, relation}; label counts."""
    counts: dict[str, int] = {}
    with tsv.open(encoding="utf-8", newline="") as source, jsonl.open("w", encoding="utf-8") as out:
        # GLUE's STS-B has unescaped quotes inside sentences: split on tabs only.
        reader = csv.DictReader(source, delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in reader:
            relation = "similar" if float(row["score"]) >= SIMILAR_FROM else "different"
            counts[relation] = counts.get(relation, 0) + 1
            record = {
                "sentence_one": row["sentence1"],
                "sentence_two": row["sentence2"],
                "relation": relation,
            }
            out.write(json.dumps(record) + "\n")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue-dir", type=Path, default=Path("../shared/data/glue"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    source = args.glue_dir / "STS-B"
    if not (source / "train.tsv").is_file() or not (source / "dev.tsv").is_file():
        print(f"error: {source} has no train.tsv and dev.tsv", file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        counts = convert(source / f"{split}.tsv", out / f"{split}.jsonl")
        print(f"{split}: {sum(counts.values()):,} pairs, {counts}")
    paths = {
        "train": out / "train.jsonl",
        "dev": out / "dev.jsonl",
        "runs": out / "runs",
        "cache": out / "cache",
    }
    text = toml_text(run_config(BENCH_TOML, paths))
    (out / "simpairs.toml").write_text(text, encoding="utf-8")
    print(f"config: {out / 'simpairs.toml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

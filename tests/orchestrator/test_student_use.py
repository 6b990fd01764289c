"""Using a student: the package, ``adabert predict`` on texts and files, ``adabert export``.

Packages are built directly (a random student over the tiny teacher's tokenizer): what is
tested here is reading, predicting and exporting, not training.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from orchestrator.cli import main
from searchspace import DerivedStudent, Edge, Genotype, SupernetConfig
from searchspace.inference import TextClassifier
from searchspace.package import TaskInfo, load_student, write_student, write_task_info

SENTIMENT = TaskInfo("sentiment", ("sentence",), ("negative", "positive"), 24, "accuracy", 0.7)
PARAPHRASE = TaskInfo("paraphrase", ("sentence1", "sentence2"), ("no", "yes"), 24, "f1", 0.7)
SIMILARITY = TaskInfo("similarity", ("sentence1", "sentence2"), None, 24, "pearson", 0.5)
GENOTYPE = Genotype(
    (
        Edge(2, 0, "std_conv_3"),
        Edge(2, 1, "avg_pool_3"),
        Edge(3, 1, "max_pool_3"),
        Edge(3, 2, "dil_conv_3"),
        Edge(4, 0, "identity"),
        Edge(4, 3, "avg_pool_3"),
    ),
    2,
    3,
)


def make_package(
    folder: Path, teacher_dir: Path, info: TaskInfo, *, seed: int = 0, legacy: bool = False
) -> Path:
    """``legacy``: a package written before pair encodings (joint, no "pair_encoding" key)."""
    from orchestrator.teacher.model import load_tokenizer

    tokenizer = load_tokenizer(str(teacher_dir))
    config = SupernetConfig(
        vocab_size=len(tokenizer),
        max_positions=64,
        hidden_size=16,
        max_cells=2,
        num_labels=1 if info.labels is None else len(info.labels),
        pair_encoding="joint" if legacy else "siamese",
    )
    torch.manual_seed(seed)
    student = DerivedStudent(config, GENOTYPE)
    with torch.no_grad():  # a random head gives one class almost always; spread the logits
        for parameter in student.head.parameters():
            parameter.mul_(20.0)
    folder.mkdir(parents=True)
    write_student(folder, student=student, genotype=GENOTYPE)
    if legacy:
        config_file = folder / "student_config.json"
        data = json.loads(config_file.read_text())
        del data["pair_encoding"]
        config_file.write_text(json.dumps(data))
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    write_task_info(folder, info)
    return folder


@pytest.fixture(scope="module")
def packages(tiny_teacher_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("packages")
    packages = {
        info.task: make_package(root / info.task, tiny_teacher_dir, info)
        for info in (SENTIMENT, PARAPHRASE, SIMILARITY)
    }
    for info in (SENTIMENT, PARAPHRASE):
        name = f"{info.task}-legacy"
        packages[name] = make_package(root / name, tiny_teacher_dir, info, legacy=True)
    return packages


def _sentences(count: int, seed: int) -> list[str]:
    from orchestrator.tasks.demo import vocabulary

    words = [w for w in vocabulary() if w.isalpha()]
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, k=rng.randint(1, 30))) for _ in range(count)]


def _one_by_one(folder: Path, texts_a, texts_b=None) -> torch.Tensor:
    """Reference: each input alone, no batching, no sorting."""
    from orchestrator.student.source import open_student

    classifier = open_student(str(folder)).classifier
    rows = []
    for index, text in enumerate(texts_a):
        second = None if texts_b is None else [texts_b[index]]
        rows.append(classifier.logits([text], second, batch_size=1))
    return torch.cat(rows)


@pytest.mark.parametrize("task", ["sentiment", "paraphrase", "similarity", "paraphrase-legacy"])
def test_batched_length_sorted_prediction_equals_one_input_at_a_time(packages, task):
    from orchestrator.student.source import open_student

    classifier = open_student(str(packages[task])).classifier
    texts_a = _sentences(37, seed=1)
    texts_b = _sentences(37, seed=2) if classifier.info.is_pair else None
    batched = classifier.logits(texts_a, texts_b, batch_size=8)
    torch.testing.assert_close(batched, _one_by_one(packages[task], texts_a, texts_b))


def test_the_package_reloads_bit_identical(packages, tmp_path):
    student = load_student(packages["paraphrase"])
    copy = tmp_path / "copy"
    copy.mkdir()
    write_student(copy, student=student, genotype=GENOTYPE)
    ids = torch.randint(5, 30, (3, 11))
    mask = torch.ones_like(ids)
    assert torch.equal(student(ids, mask, ids, mask), load_student(copy)(ids, mask, ids, mask))


def test_predict_text_prints_labels_and_probabilities(packages, capsys):
    texts = _sentences(3, seed=5)
    args = ["predict", str(packages["sentiment"])]
    for text in texts:
        args += ["--text", text]
    assert main(args) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["sentence"] for r in records] == texts
    reference = _one_by_one(packages["sentiment"], texts).softmax(-1)
    for record, probabilities in zip(records, reference):
        assert record["label"] == SENTIMENT.labels[int(probabilities.argmax())]
        assert record["prob_positive"] == pytest.approx(float(probabilities[1]), abs=1e-6)
        assert record["prob_negative"] + record["prob_positive"] == pytest.approx(1.0)


def test_predict_pair_and_regression_texts(packages, capsys):
    pair = ["predict", str(packages["paraphrase"]), "--text", "a b", "--text-b", "a c"]
    assert main(pair) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["label"] in ("no", "yes") and set(record) >= {"sentence1", "sentence2"}
    scores = ["predict", str(packages["similarity"]), "--text", "a b", "--text-b", "a c"]
    assert main(scores) == 0
    record = json.loads(capsys.readouterr().out)
    assert isinstance(record["score"], float) and "label" not in record


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_predict_file_round_trip_in_every_format(packages, tmp_path, suffix, capsys):
    from orchestrator.tasks.data import read_text_columns, write_table

    texts_a, texts_b = _sentences(41, seed=7), _sentences(41, seed=8)
    source = tmp_path / f"input{suffix}"
    write_table(source, {"id": list(range(41)), "sentence1": texts_a, "sentence2": texts_b})
    output = tmp_path / f"output{suffix}"
    args = ["predict", str(packages["paraphrase"]), "--input", str(source), "--output", str(output)]
    assert main(args + ["--batch-size", "16"]) == 0
    assert "41 prediction(s)" in capsys.readouterr().out
    written = read_text_columns(output, ["sentence1", "sentence2", "label"])
    assert written["sentence1"] == texts_a and written["sentence2"] == texts_b
    expected = _one_by_one(packages["paraphrase"], texts_a, texts_b).argmax(-1).tolist()
    assert written["label"] == [PARAPHRASE.labels[i] for i in expected]


def _error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def _corrupt(packages, tmp_path, name: str, change) -> Path:
    folder = tmp_path / name
    shutil.copytree(packages["paraphrase"], folder)
    change(folder)
    return folder


def _other_vocabulary(folder: Path) -> None:
    from transformers import BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"word{i}" for i in range(500)]
    shutil.rmtree(folder / "tokenizer")
    tokenizer = BertTokenizer(vocab={word: index for index, word in enumerate(words)})
    tokenizer.save_pretrained(str(folder / "tokenizer"))


def _other_genotype(folder: Path) -> None:
    other = Genotype((Edge(2, 0, "std_conv_5"), Edge(3, 1, "identity")), 2, 3)
    (folder / "genotype.json").write_text(other.to_json())


CORRUPTIONS = {
    "no-weights": (lambda f: (f / "student.safetensors").unlink(), "student.safetensors"),
    "garbage-weights": (
        lambda f: (f / "student.safetensors").write_bytes(b"\x00" * 64),
        "cannot be read",
    ),
    "other-genotype": (_other_genotype, "does not fit genotype.json"),
    "other-tokenizer": (_other_vocabulary, "not the tokenizer this student was trained with"),
    "no-tokenizer": (lambda f: shutil.rmtree(f / "tokenizer"), "tokenizer"),
    "bad-task": (lambda f: (f / "task.json").write_text("{"), "task.json is not valid JSON"),
    "no-task": (lambda f: (f / "task.json").unlink(), "task.json"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_corrupted_package_is_one_line_exit_2(packages, tmp_path, capsys, name):
    change, message = CORRUPTIONS[name]
    folder = _corrupt(packages, tmp_path, name, change)
    assert main(["predict", str(folder), "--text", "a b", "--text-b", "c"]) == 2
    assert message in _error(capsys)


def test_bad_inputs_are_one_line_exit_2(packages, tmp_path, capsys):
    single, pair = str(packages["sentiment"]), str(packages["paraphrase"])
    no_column = tmp_path / "wrong.csv"
    no_column.write_text("text,other\nhello,1\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text("sentence\n")
    cases = [
        (["predict", single, "--input", str(no_column)], "no column 'sentence'"),
        (["predict", single, "--input", str(empty)], "empty"),
        (["predict", single, "--input", str(header_only)], "no data rows"),
        (["predict", single, "--input", str(tmp_path / "missing.csv")], "does not exist"),
        (["predict", pair, "--text", "only one"], "--text-b"),
        (["predict", single, "--text", "x", "--text-b", "y"], "single texts"),
        (["predict", single, "--text", "  "], "empty --text"),
        (["predict", str(tmp_path / "nothing-here"), "--text", "x"], "neither a folder"),
        (["predict", str(tmp_path), "--text", "x"], "task.json"),
        (["predict", single, "--text", "x", "--batch-size", "0"], "--batch-size"),
        (["export", single, "--out", str(packages["paraphrase"])], "not empty"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        assert message in _error(capsys), args


@pytest.mark.parametrize(
    "task", ["sentiment", "paraphrase", "sentiment-legacy", "paraphrase-legacy"]
)
def test_onnx_export_agrees_with_pytorch_and_predicts_the_same(packages, tmp_path, task, capsys):
    out = tmp_path / f"{task}-onnx"
    assert main(["export", str(packages[task]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "256/256" in printed, printed
    difference = float(printed.split("difference ")[1].split()[0])
    assert difference <= 1e-4
    assert {"model.onnx", "task.json", "tokenizer"} <= {p.name for p in out.iterdir()}
    assert not out.with_name(out.name + ".incomplete").exists()

    from orchestrator.student.source import open_student

    onnx = open_student(str(out))
    assert onnx.kind == "onnxruntime"
    eager = open_student(str(packages[task]))
    texts_a = _sentences(50, seed=11)
    texts_b = _sentences(50, seed=12) if onnx.classifier.info.is_pair else None
    got = onnx.classifier.logits(texts_a, texts_b, batch_size=7)
    expected = eager.classifier.logits(texts_a, texts_b, batch_size=7)
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
    assert float((got - expected).abs().max()) <= 1e-4


def test_text_classifier_keeps_input_order_with_a_fake_tokenizer():
    class Tokenizer:
        pad_token_id = 0

        def __call__(self, texts, truncation, max_length):
            return {"input_ids": [[1] + [len(t)] * min(len(t), max_length - 1) for t in texts]}

    def forward(ids_a, mask_a, ids_b, mask_b):
        return torch.stack([ids_a[:, 1].float(), mask_a.sum(1).float()], dim=1)

    info = TaskInfo("t", ("text",), ("a", "b"), 6, "accuracy")
    texts = ["xxxxx", "x", "xxx", "xx", "xxxxxxxxxx"]
    logits = TextClassifier(forward, Tokenizer(), info).logits(texts, batch_size=2)
    assert logits[:, 0].tolist() == [5.0, 1.0, 3.0, 2.0, 10.0]
    assert logits[:, 1].tolist() == [6.0, 2.0, 4.0, 3.0, 6.0]  # truncated to max_seq_length

"""Data loading (GLUE TSV, CSV/JSONL/Parquet, hub stand-in), its errors, fingerprints, tokenising.

All data is generated here (GLUE *layouts* with synthetic sentences); nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest
from datasets import Dataset, DatasetDict
from transformers import BertTokenizer

from orchestrator.errors import UserInputError
from orchestrator.tasks.data import (
    check_tokenizer,
    data_fingerprint,
    load_task_data,
    tokenize_for_distillation,
)
from orchestrator.tasks.registry import custom_task, get_task

GLUE_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "glue"


@pytest.fixture(autouse=True)
def _isolated_hf_cache(tmp_path, monkeypatch):
    # load_dataset("csv"/"json"/"parquet") writes Arrow caches: keep them out of ~/.cache.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


# --- synthetic GLUE layouts -------------------------------------------------------------------

_MNLI_HEADER = [
    "index",
    "promptID",
    "pairID",
    "genre",
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
    "label1",
    "gold_label",
]
_STSB_HEADER = [
    "index",
    "genre",
    "filename",
    "year",
    "old_index",
    "source1",
    "source2",
    "sentence1",
    "sentence2",
    "score",
]

# task -> (folder, header or None, row(i, a, b, raw label) -> fields, raw labels in id order).
LAYOUTS = {
    "sst2": ("SST-2", ["sentence", "label"], lambda i, a, b, y: [a, y], ["0", "1"]),
    "mrpc": (
        "MRPC",
        ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
        lambda i, a, b, y: [y, str(100 + i), str(200 + i), a, b],
        ["0", "1"],
    ),
    "rte": (
        "RTE",
        ["index", "sentence1", "sentence2", "label"],
        lambda i, a, b, y: [str(i), a, b, y],
        ["entailment", "not_entailment"],
    ),
    "wnli": (
        "WNLI",
        ["index", "sentence1", "sentence2", "label"],
        lambda i, a, b, y: [str(i), a, b, y],
        ["0", "1"],
    ),
    "qnli": (
        "QNLI",
        ["index", "question", "sentence", "label"],
        lambda i, a, b, y: [str(i), a, b, y],
        ["entailment", "not_entailment"],
    ),
    "qqp": (
        "QQP",
        ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
        lambda i, a, b, y: [str(i), str(2 * i), str(2 * i + 1), a, b, y],
        ["0", "1"],
    ),
    "mnli": (
        "MNLI",
        _MNLI_HEADER,
        lambda i, a, b, y: (
            [str(i), "1", f"{i}e", "fiction", "(a)", "(b)", "(A)", "(B)", a, b] + [y, y]
        ),
        ["entailment", "neutral", "contradiction"],
    ),
    "cola": ("CoLA", None, lambda i, a, b, y: ["src1", y, "" if y == "1" else "*", a], ["0", "1"]),
    "stsb": (
        "STS-B",
        _STSB_HEADER,
        lambda i, a, b, y: [f"{i:04d}", "main-news", "f", "2012", str(i), "s", "s", a, b, y],
        None,
    ),
}


def _sentences(n: int, offset: int = 0) -> list[tuple[str, str]]:
    # Stray double quotes on purpose: a csv reader with quoting on would merge rows.
    return [(f'the cat "sat {i + offset} times', f'a dog ran " far {i + offset}') for i in range(n)]


def write_glue_task(root: Path, name: str, n_train: int = 6, n_dev: int = 4) -> Path:
    """Write <root>/<folder>/train.tsv and the dev file in the task's GLUE layout."""
    folder, header, row, raw = LAYOUTS[name]
    task_dir = root / folder
    task_dir.mkdir(parents=True, exist_ok=True)
    dev_name = "dev_matched.tsv" if name == "mnli" else "dev.tsv"
    for file_name, n, offset in (("train.tsv", n_train, 0), (dev_name, n_dev, 1000)):
        labels = [f"{(i % 5) * 1.25:.2f}" if raw is None else raw[i % len(raw)] for i in range(n)]
        rows = [row(i, a, b, y) for i, ((a, b), y) in enumerate(zip(_sentences(n, offset), labels))]
        lines = ([header] if header else []) + rows
        text = "\n".join("\t".join(fields) for fields in lines)
        if name == "mrpc":
            text = "\ufeff" + text  # MRPC files start with a byte-order mark
        if name != "cola":
            text += "\n"  # CoLA's dev file has no final newline; here neither file has one
        (task_dir / file_name).write_text(text, encoding="utf-8")
    return task_dir


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_glue_tsv_layouts_from_the_glue_root_and_the_task_folder(tmp_path, name):
    task = get_task(name)
    task_dir = write_glue_task(tmp_path, name)
    for source in (tmp_path, task_dir):
        splits = load_task_data(task, data_dir=source)
        train, dev = splits["train"], splits["validation"]
        assert (len(train), len(dev)) == (6, 4)
        expected_columns = ["text_a", "text_b", "label"] if task.is_pair else ["text_a", "label"]
        assert train.column_names == expected_columns
        assert train[0]["text_a"] == 'the cat "sat 0 times'
        assert dev[3]["text_a"] == 'the cat "sat 1003 times'  # the last row (CoLA: no newline)
        if task.is_pair:
            assert train[5]["text_b"] == 'a dog ran " far 5'
        if task.is_regression:
            assert train.features["label"].dtype == "float32"
            assert train["label"][:3] == pytest.approx([0.0, 1.25, 2.5])
        else:
            assert train.features["label"].dtype == "int64"
            raw = LAYOUTS[name][3]
            assert list(train["label"]) == [i % len(raw) for i in range(6)]


def test_glue_tsv_as_explicit_files_and_bom_is_not_text(tmp_path):
    task_dir = write_glue_task(tmp_path, "mrpc")
    splits = load_task_data(
        get_task("mrpc"), train_file=task_dir / "train.tsv", dev_file=task_dir / "dev.tsv"
    )
    assert len(splits["train"]) == 6
    assert not splits["train"][0]["text_a"].startswith("\ufeff")


# --- custom files -----------------------------------------------------------------------------


def _records(n: int, offset: int = 0, labels=("neg", "pos")) -> list[dict]:
    return [
        {"body": f"review {i + offset} with words", "other": "x", "stars": labels[i % 2]}
        for i in range(n)
    ]


def _write(path: Path, records: list[dict]) -> Path:
    suffix = path.suffix
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    elif suffix == ".json":
        path.write_text(json.dumps(records), encoding="utf-8")
    elif suffix == ".parquet":
        Dataset.from_list(records).to_parquet(str(path))
    else:
        delimiter = "\t" if suffix == ".tsv" else ","
        names = list(records[0])
        lines = [delimiter.join(names)]
        lines += [delimiter.join(str(r[k]) for k in names) for r in records]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


REVIEWS = custom_task("reviews", text_a="body", labels=["neg", "pos"])


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_custom_files_by_extension(tmp_path, suffix):
    train = _write(tmp_path / f"train{suffix}", _records(5))
    dev = _write(tmp_path / f"dev{suffix}", _records(3, 100))
    splits = load_task_data(REVIEWS, train_file=train, dev_file=dev, label_column="stars")
    assert splits["train"].column_names == ["text_a", "label"]
    assert list(splits["train"]["label"]) == [0, 1, 0, 1, 0]
    assert splits["validation"][2]["text_a"] == "review 102 with words"


def test_custom_tsv_keeps_stray_quotes(tmp_path):
    records = [{"body": f'he said "hi {i}', "stars": "pos"} for i in range(3)]
    train = _write(tmp_path / "train.tsv", records)
    splits = load_task_data(REVIEWS, train_file=train, dev_file=train, label_column="stars")
    assert splits["train"]["text_a"] == [f'he said "hi {i}' for i in range(3)]


def test_int_ids_and_digit_strings_map_directly(tmp_path):
    records = [{"body": f"text {i}", "label": i % 2} for i in range(4)]
    train = _write(tmp_path / "train.jsonl", records)
    splits = load_task_data(get_task("sst2"), train_file=train, dev_file=train, text_a="body")
    assert list(splits["train"]["label"]) == [0, 1, 0, 1]
    # digit strings are ids too, and the hub's label names work as well
    digits = [{"sentence": "ok", "label": "1"}, {"sentence": "no", "label": "0"}]
    path = _write(tmp_path / "digits.jsonl", digits)
    assert list(
        load_task_data(get_task("sst2"), train_file=path, dev_file=path)["train"]["label"]
    ) == [1, 0]
    named = [{"sentence": "ok", "label": "positive"}, {"sentence": "no", "label": "negative"}]
    dev = _write(tmp_path / "dev.jsonl", named)
    assert list(
        load_task_data(get_task("sst2"), train_file=dev, dev_file=dev)["train"]["label"]
    ) == [1, 0]


def test_pair_columns_and_regression_from_csv(tmp_path):
    task = custom_task("sim", text_a="left", text_b="right")
    records = [{"left": f"l {i}", "right": f"r {i}", "label": i / 2} for i in range(4)]
    train = _write(tmp_path / "train.csv", records)
    splits = load_task_data(task, train_file=train, dev_file=train)
    assert splits["train"].column_names == ["text_a", "text_b", "label"]
    assert splits["train"]["label"] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert splits["train"].features["label"].dtype == "float32"


def test_data_dir_with_generic_files(tmp_path):
    _write(tmp_path / "train.csv", _records(4))
    _write(tmp_path / "validation.jsonl", _records(2, 50))
    splits = load_task_data(REVIEWS, data_dir=tmp_path, label_column="stars")
    assert (len(splits["train"]), len(splits["validation"])) == (4, 2)


def test_explicit_files_take_precedence_over_data_dir(tmp_path):
    write_glue_task(tmp_path, "sst2")
    records = [{"sentence": f"s {i}", "label": 1} for i in range(3)]
    train = _write(tmp_path / "mine.csv", records)
    splits = load_task_data(get_task("sst2"), data_dir=tmp_path, train_file=train, dev_file=train)
    assert len(splits["train"]) == 3


def test_hub_path_uses_hub_columns_and_validation_split(monkeypatch):
    calls = []

    def fake_load_dataset(path, name=None, **kwargs):
        calls.append((path, name))
        rows = {"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"], "label": [2, 0], "idx": [0, 1]}
        return DatasetDict(
            train=Dataset.from_dict(rows), validation_matched=Dataset.from_dict(rows)
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    splits = load_task_data(get_task("mnli"))
    assert calls == [("nyu-mll/glue", "mnli")]
    assert list(splits["validation"]["label"]) == [2, 0]
    assert splits["train"]["text_b"] == ["h1", "h2"]


def test_unreachable_hub_is_a_one_line_user_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub\n(LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserInputError) as caught:
        load_task_data(get_task("sst2"))
    message = str(caught.value)
    assert "unreachable" in message and "--data-dir" in message and "\n" not in message


# --- subsampling ------------------------------------------------------------------------------


def test_subsampling_is_a_seeded_deterministic_subset(tmp_path):
    write_glue_task(tmp_path, "rte", n_train=30, n_dev=10)
    task = get_task("rte")

    def texts(seed: int) -> list[str]:
        split = load_task_data(task, data_dir=tmp_path, max_train_samples=8, seed=seed)["train"]
        return list(split["text_a"])

    first, again, other = texts(0), texts(0), texts(1)
    assert len(first) == 8 and first == again and first != other
    full = load_task_data(task, data_dir=tmp_path, max_train_samples=99, max_dev_samples=3)
    assert (len(full["train"]), len(full["validation"])) == (30, 3)
    assert set(first) <= set(full["train"]["text_a"])
    with pytest.raises(UserInputError, match="max_dev_samples must be >= 1"):
        load_task_data(task, data_dir=tmp_path, max_dev_samples=0)


# --- bad input --------------------------------------------------------------------------------


def _error(**kwargs) -> str:
    with pytest.raises(UserInputError) as caught:
        load_task_data(**kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def _glue_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_files_and_dirs(tmp_path):
    sst2 = get_task("sst2")
    message = _error(task=sst2, train_file=tmp_path / "nope.csv", dev_file=tmp_path / "x.csv")
    assert "nope.csv" in message and "does not exist" in message
    assert "needs both train_file and dev_file" in _error(task=sst2, train_file=tmp_path / "a.csv")
    assert "does not exist" in _error(task=sst2, data_dir=tmp_path / "missing")
    message = _error(task=sst2, data_dir=tmp_path)
    assert "holds no train/dev files" in message and "SST-2/train.tsv" in message
    assert "not on the hub" in _error(task=REVIEWS)


def test_ambiguous_files_in_data_dir(tmp_path):
    for name in ("train.csv", "train.jsonl", "dev.csv"):
        _write(tmp_path / name, _records(2))
    assert "several candidate files" in _error(task=REVIEWS, data_dir=tmp_path)


def test_unsupported_extension(tmp_path):
    path = _glue_file(tmp_path, "train.txt", "body,label\nx,neg\n")
    message = _error(task=REVIEWS, train_file=path, dev_file=path)
    assert "unsupported file type '.txt'" in message and "train.txt" in message


@pytest.mark.parametrize(
    ("file_name", "text"),
    [("empty.csv", ""), ("header.csv", "body,label\n"), ("train.tsv", "sentence\tlabel\n")],
)
def test_files_without_data_rows(tmp_path, file_name, text):
    path = _glue_file(tmp_path, file_name, text)
    task = get_task("sst2") if file_name.endswith(".tsv") else REVIEWS
    message = _error(task=task, train_file=path, dev_file=path)
    assert file_name in message and ("no data rows" in message)


def test_missing_column_names_it_and_lists_available(tmp_path):
    path = _write(tmp_path / "train.csv", _records(3))
    message = _error(task=REVIEWS, train_file=path, dev_file=path)
    assert "no column 'label'" in message and "body, other, stars" in message
    assert "train.csv" in message


def test_tsv_row_with_wrong_field_count_names_file_and_line(tmp_path):
    path = _glue_file(tmp_path, "train.tsv", "sentence\tlabel\ngood one\t1\nbad\textra\t0\n")
    message = _error(task=get_task("sst2"), train_file=path, dev_file=path)
    assert "train.tsv line 3" in message and "expected 2" in message and "found 3" in message


@pytest.mark.parametrize(
    ("task_name", "file_name", "text", "fragment"),
    [
        ("sst2", "train.tsv", "sentence\tlabel\nfine\t1\nodd\t2\n", "label '2'"),
        ("rte", "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n", "'maybe'"),
        ("cola", "train.tsv", "s\t1\t\tok\ns\t7\t\tno", "line 2"),
        ("reviews", "train.csv", "body,label\nfine,pos\nodd,meh\n", "label 'meh'"),
        ("reviews", "train.jsonl", '{"body": "x", "label": 5}\n', "label 5"),
    ],
)
def test_labels_outside_the_label_set(tmp_path, task_name, file_name, text, fragment):
    task = REVIEWS if task_name == "reviews" else get_task(task_name)
    path = _glue_file(tmp_path, file_name, text)
    message = _error(task=task, train_file=path, dev_file=path)
    assert fragment in message and file_name in message and "is not one of" in message


def test_non_numeric_regression_label(tmp_path):
    header = "\t".join(_STSB_HEADER)
    row = "\t".join(["0", "g", "f", "y", "0", "s", "s", "one", "two", "high"])
    path = _glue_file(tmp_path, "train.tsv", f"{header}\n{row}\n")
    message = _error(task=get_task("stsb"), train_file=path, dev_file=path)
    assert "non-numeric regression label 'high'" in message and "line 2" in message
    csv_path = _glue_file(tmp_path, "t.csv", "a,label\nx,1.5\ny,lots\n")
    task = custom_task("score", text_a="a")
    assert "'lots'" in _error(task=task, train_file=csv_path, dev_file=csv_path)


def test_empty_text(tmp_path):
    path = _glue_file(tmp_path, "train.tsv", "sentence\tlabel\nfine\t1\n  \t0\n")
    message = _error(task=get_task("sst2"), train_file=path, dev_file=path)
    assert "empty text" in message and "line 3" in message and "train.tsv" in message
    csv_path = _glue_file(tmp_path, "train.csv", "body,label\nfine,pos\n,neg\n")
    message = _error(task=REVIEWS, train_file=csv_path, dev_file=csv_path)
    assert "empty text in column 'body'" in message and "row 2" in message


def test_unreadable_csv_is_a_user_error(tmp_path):
    path = _glue_file(tmp_path, "train.jsonl", '{"body": "x", "label": "pos"}\n{not json\n')
    assert "cannot read" in _error(task=REVIEWS, train_file=path, dev_file=path)


# --- fingerprints -----------------------------------------------------------------------------


def test_fingerprint_is_content_based_and_label_sensitive(tmp_path):
    rows = {"text_a": ["a b", "c"], "label": [0, 1]}
    fixed = data_fingerprint(Dataset.from_dict(rows))
    # A fixed value: the hash depends on nothing process-specific (no random fingerprint).
    assert fixed == "3087335b72b7fc07"
    assert data_fingerprint(Dataset.from_dict(dict(rows))) == fixed
    assert data_fingerprint(Dataset.from_dict({**rows, "label": [1, 1]})) != fixed
    assert data_fingerprint(Dataset.from_dict({**rows, "text_a": ["a b", "d"]})) != fixed
    # Same content through a different loader: same hash.
    _write(tmp_path / "train.csv", [{"sentence": "a b", "label": 0}, {"sentence": "c", "label": 1}])
    loaded = load_task_data(
        get_task("sst2"), train_file=tmp_path / "train.csv", dev_file=tmp_path / "train.csv"
    )
    assert data_fingerprint(loaded["train"]) == fixed


# --- tokenising -------------------------------------------------------------------------------

WORDS = ["the", "cat", "sat", "dog", "ran", "far", "times", "a"]


@pytest.fixture()
def tokenizer() -> BertTokenizer:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    return BertTokenizer(vocab={word: i for i, word in enumerate(vocab)})


def _tokenised(tmp_path, tokenizer, name: str, length: int = 12) -> tuple[Dataset, dict]:
    write_glue_task(tmp_path, name)
    split = load_task_data(get_task(name), data_dir=tmp_path)["train"]
    out = tokenize_for_distillation(
        split, tokenizer, max_seq_length=length, is_pair=get_task(name).is_pair
    )
    # Slicing a numpy-formatted dataset gives one (rows, length) array per column.
    return split, out.with_format("numpy")[:]


def test_pair_tokenising_joint_teacher_and_separate_student_inputs(tmp_path, tokenizer):
    split, out = _tokenised(tmp_path, tokenizer, "rte", length=16)
    assert set(out) == {
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "input_ids_a",
        "attention_mask_a",
        "input_ids_b",
        "attention_mask_b",
        "labels",
    }
    for name in set(out) - {"labels"}:
        assert out[name].shape == (6, 16), name
    row = {name: column[0] for name, column in out.items()}
    ids, types, mask = list(row["input_ids"]), list(row["token_type_ids"]), row["attention_mask"]
    seps = [i for i, t in enumerate(ids) if t == tokenizer.sep_token_id]
    assert ids[0] == tokenizer.cls_token_id and len(seps) == 2
    # segment 0 up to the first [SEP], segment 1 after it up to the second, 0 on padding
    assert set(types[: seps[0] + 1]) == {0} and set(types[seps[0] + 1 : seps[1] + 1]) == {1}
    assert set(types[seps[1] + 1 :]) <= {0} and mask.sum() == seps[1] + 1
    assert ids == tokenizer(split[0]["text_a"], split[0]["text_b"])["input_ids"] + [0] * (
        16 - len(ids[: seps[1] + 1])
    )
    # the student's sentences: each encoded alone, [CLS] ... [SEP] then padding
    options = {"padding": "max_length", "max_length": 16, "truncation": True}
    for side, column in (("a", "text_a"), ("b", "text_b")):
        expected = tokenizer(split[0][column], **options)
        assert list(row[f"input_ids_{side}"]) == expected["input_ids"]
        assert list(row[f"attention_mask_{side}"]) == expected["attention_mask"]
    assert not (out["input_ids_a"] == out["input_ids_b"]).all()
    assert list(out["labels"]) == [0, 1, 0, 1, 0, 1]


def test_single_sentence_student_b_is_a_copy_of_a(tmp_path, tokenizer):
    _, out = _tokenised(tmp_path, tokenizer, "sst2")
    assert (out["input_ids_a"] == out["input_ids_b"]).all()
    assert (out["attention_mask_a"] == out["attention_mask_b"]).all()
    assert (out["token_type_ids"] == 0).all()
    assert (out["input_ids"] == out["input_ids_a"]).all()  # one segment: same as the student's


def test_truncation_and_regression_labels(tmp_path, tokenizer):
    _, out = _tokenised(tmp_path, tokenizer, "stsb", length=5)
    assert out["input_ids"].shape == (6, 5) and out["input_ids_b"].shape == (6, 5)
    assert (out["input_ids"][:, -1] == tokenizer.sep_token_id).all()
    assert out["labels"].dtype == "float32"


def test_missing_token_type_ids_are_filled_with_zeros(tokenizer):
    class NoTokenTypes:
        pad_token_id, cls_token_id, sep_token_id = 0, 2, 3

        def __call__(self, *args, **kwargs):
            encoded = dict(tokenizer(*args, **kwargs))
            encoded.pop("token_type_ids", None)
            return encoded

    split = Dataset.from_dict({"text_a": ["the cat"], "text_b": ["a dog"], "label": [1]})
    out = tokenize_for_distillation(split, NoTokenTypes(), max_seq_length=8, is_pair=True)
    assert out[0]["token_type_ids"] == [0] * 8


@pytest.mark.parametrize(("missing", "role"), [("pad", "pad"), ("cls", "cls"), ("sep", "sep")])
def test_check_tokenizer_names_the_missing_token(missing, role):
    ids = {"pad_token_id": 0, "cls_token_id": 2, "sep_token_id": 3, f"{missing}_token_id": None}
    with pytest.raises(UserInputError, match=f"no {role}"):
        check_tokenizer(SimpleNamespace(**ids))


def test_tokenising_needs_the_canonical_columns(tokenizer):
    split = Dataset.from_dict({"text_a": ["the cat"], "label": [1]})
    with pytest.raises(UserInputError, match="no column 'text_b'"):
        tokenize_for_distillation(split, tokenizer, max_seq_length=8, is_pair=True)


# --- the real GLUE files ----------------------------------------------------------------------


@pytest.mark.glue
@pytest.mark.skipif(not GLUE_ROOT.is_dir(), reason="needs ../shared/data/glue")
@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        ("sst2", (67349, 872)),
        ("mrpc", (3668, 408)),
        ("rte", (2490, 277)),
        ("cola", (8551, 1043)),
        ("stsb", (5749, 1500)),
    ],
)
def test_real_glue_files_have_the_documented_row_counts(name, sizes):
    splits = load_task_data(get_task(name), data_dir=GLUE_ROOT)
    assert (len(splits["train"]), len(splits["validation"])) == sizes

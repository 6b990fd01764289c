"""Teacher knowledge: probes learn, the Parquet cache round-trips, keys change with their inputs,
and cached logits are exactly what the fine-tuned teacher computes."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import pytest
import torch

from orchestrator.config import TeacherSection
from orchestrator.method.pipeline import _columns
from orchestrator.tasks.data import load_task_data, tokenize_for_distillation
from orchestrator.tasks.registry import get_task
from orchestrator.teacher import knowledge
from orchestrator.teacher.model import TEACHER_COLUMNS, load_teacher, load_tokenizer
from orchestrator.teacher.probes import ProbeSet, pool_layer_features, train_probes

ALL_COLUMNS = (
    *TEACHER_COLUMNS,
    "input_ids_a",
    "attention_mask_a",
    "input_ids_b",
    "attention_mask_b",
    "labels",
)
SETTINGS = TeacherSection(epochs=1.0, batch_size=16, probe_epochs=3, learning_rate=1e-3)


def test_pool_layer_features_means_embeddings_and_takes_cls():
    h0 = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # last token is padding
    h1 = torch.tensor([[[5.0, 6.0], [7.0, 8.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0]])
    features = pool_layer_features((h0, h1), mask)
    assert features.shape == (1, 2, 2)
    assert torch.equal(features[0, 0], torch.tensor([2.0, 3.0]))  # mean of the real tokens
    assert torch.equal(features[0, 1], torch.tensor([5.0, 6.0]))  # [CLS] of layer 1


def test_probe_set_is_independent_linear_maps():
    probes = ProbeSet(num_layers=3, hidden_size=4, num_labels=2)
    features = torch.randn(5, 3, 4)
    out = probes(features)
    for layer in range(3):
        expected = features[:, layer] @ probes.weight[layer] + probes.bias[layer]
        torch.testing.assert_close(out[:, layer], expected)


def test_probes_learn_the_informative_layer_only():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (400,), generator=g)
    noise = torch.randn(400, 2, 8, generator=g)
    # Layer 1 carries the label along its first axis; layer 0 is pure noise.
    noise[:, 1, 0] += 4.0 * (2 * labels.float() - 1)
    probes = train_probes(
        noise, labels, num_labels=2, is_regression=False, epochs=10, learning_rate=5e-2
    )
    with torch.no_grad():
        accuracy = (probes(noise).argmax(-1) == labels[:, None]).float().mean(0)
    assert accuracy[1] > 0.95, accuracy
    assert accuracy[0] < 0.7, accuracy


def test_regression_probes_fit_a_linear_target():
    g = torch.Generator().manual_seed(1)
    features = torch.randn(300, 1, 4, generator=g)
    target = 2.0 * features[:, 0, 0] - features[:, 0, 1] + 0.5
    probes = train_probes(
        features, target, num_labels=1, is_regression=True, epochs=40, learning_rate=5e-2
    )
    with torch.no_grad():
        error = (probes(features)[:, 0, 0] - target).abs().mean()
    assert error < 0.1, error


def test_split_round_trips_through_parquet(tmp_path):
    split = knowledge.SplitKnowledge(torch.randn(7, 3), torch.randn(7, 5, 3))
    knowledge._write_split(tmp_path / "x.parquet", split, "key")
    back = knowledge._read_split(tmp_path / "x.parquet")
    assert torch.equal(back.logits, split.logits)
    assert torch.equal(back.probe_logits, split.probe_logits)


def test_cache_key_changes_with_each_input(tiny_teacher_dir):
    sst2, mrpc = get_task("sst2"), get_task("mrpc")
    base = dict(
        task=sst2, fingerprints={"train": "a", "validation": "b"}, max_seq_length=32, seed=0
    )
    key = knowledge.cache_key(str(tiny_teacher_dir), settings=SETTINGS, **base)
    assert key == knowledge.cache_key(str(tiny_teacher_dir), settings=SETTINGS, **base)
    variants = [
        dict(base, task=mrpc),
        dict(base, fingerprints={"train": "a", "validation": "c"}),
        dict(base, max_seq_length=64),
        dict(base, seed=1),
    ]
    for variant in variants:
        assert knowledge.cache_key(str(tiny_teacher_dir), settings=SETTINGS, **variant) != key
    other = dataclasses.replace(SETTINGS, epochs=2.0)
    assert knowledge.cache_key(str(tiny_teacher_dir), settings=other, **base) != key
    assert knowledge.cache_key("bert-base-uncased", settings=SETTINGS, **base) != key


def test_a_teacher_folder_is_keyed_by_its_content_not_its_path(tiny_teacher_dir, tmp_path):
    """The same teacher in two virtualenvs (or copied) is one cache entry; changed weights of
    the same size are another."""
    base = dict(
        task=get_task("sst2"), fingerprints={"train": "a"}, max_seq_length=32, seed=0,
        settings=SETTINGS,
    )  # fmt: skip
    first, second = tmp_path / "venv1" / "model", tmp_path / "venv2" / "model"
    shutil.copytree(tiny_teacher_dir, first)
    shutil.copytree(tiny_teacher_dir, second)
    os.utime(second / "config.json", (1, 1))  # another install time
    key = knowledge.cache_key(str(first), **base)
    assert knowledge.cache_key(str(second), **base) == key
    assert knowledge.cache_key(str(tiny_teacher_dir), **base) == key
    (weights,) = second.glob("*.safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one byte of one weight: same size, another teacher
    weights.write_bytes(bytes(data))
    assert knowledge.cache_key(str(second), **base) != key


@pytest.fixture(scope="module")
def sst2_columns(tiny_teacher_dir, demo_data_dir):
    task = get_task("sst2")
    data = load_task_data(task, data_dir=demo_data_dir / "SST-2")
    tokenizer = load_tokenizer(str(tiny_teacher_dir))
    splits = {
        name: _columns(
            tokenize_for_distillation(data[name], tokenizer, max_seq_length=32, is_pair=False),
            ALL_COLUMNS,
        )
        for name in ("train", "validation")
    }
    return task, tokenizer, splits


def _prepare(tiny_teacher_dir, sst2_columns, cache_root, settings=SETTINGS):
    task, tokenizer, splits = sst2_columns
    return knowledge.prepare_teacher_knowledge(
        str(tiny_teacher_dir),
        tokenizer,
        task=task,
        train_columns=splits["train"],
        dev_columns=splits["validation"],
        fingerprints={"train": "t", "validation": "v"},
        max_seq_length=32,
        settings=settings,
        cache_root=cache_root,
        seed=0,
        progress=False,
    )


def test_miss_then_hit_and_cached_logits_are_the_teachers(tiny_teacher_dir, sst2_columns, tmp_path):
    task, _, splits = sst2_columns
    with knowledge.count_teacher_forwards() as miss:
        first = _prepare(tiny_teacher_dir, sst2_columns, tmp_path)
    assert not first.cache_hit and miss.count > 0
    (entry,) = [p for p in tmp_path.iterdir()]
    assert not entry.name.count(".tmp-"), "the staging folder must be renamed"
    assert {"meta.json", "train.parquet", "dev.parquet", "probes.safetensors"} <= {
        p.name for p in entry.iterdir()
    }
    with knowledge.count_teacher_forwards() as hit:
        second = _prepare(tiny_teacher_dir, sst2_columns, tmp_path)
    assert second.cache_hit and hit.count == 0
    assert torch.equal(first.dev.probe_logits, second.dev.probe_logits)

    n_train, n_dev = len(splits["train"]["labels"]), len(splits["validation"]["labels"])
    assert second.train.logits.shape == (n_train, 2)
    assert second.dev.probe_logits.shape == (n_dev, 3, 2)  # embedding probe + 2 layers
    # The fine-tuned teacher saved in the entry reproduces the cached dev logits.
    teacher = load_teacher(second.teacher_dir, task=task, fine_tuned=True)
    with torch.no_grad():
        logits = teacher(**{k: splits["validation"][k] for k in TEACHER_COLUMNS}).logits
    torch.testing.assert_close(logits, second.dev.logits, rtol=1e-4, atol=1e-5)
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["num_parameters"] == sum(p.numel() for p in teacher.parameters())
    assert set(meta["probe_metrics"]) == {f"probe/layer{i}_accuracy" for i in range(3)}


def test_a_fine_tuned_teacher_is_read_from_this_runs_path_on_a_hit(
    tiny_teacher_dir, sst2_columns, tmp_path
):
    """An already fine-tuned teacher is not copied into the entry; a hit written through
    another path to the same teacher (another virtualenv, since removed) uses this run's."""
    settings = dataclasses.replace(SETTINGS, fine_tuned=True)
    elsewhere = tmp_path / "other-venv" / "model"
    shutil.copytree(tiny_teacher_dir, elsewhere)
    first = _prepare(elsewhere, sst2_columns, tmp_path / "cache", settings)
    assert not first.cache_hit and first.teacher_dir == str(elsewhere)
    shutil.rmtree(elsewhere)
    second = _prepare(tiny_teacher_dir, sst2_columns, tmp_path / "cache", settings)
    assert second.cache_hit and second.teacher_dir == str(tiny_teacher_dir)
    assert torch.equal(first.dev.logits, second.dev.logits)


def test_failed_computation_leaves_no_entry(tiny_teacher_dir, sst2_columns, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(knowledge, "train_probes", broken)
    with pytest.raises(RuntimeError):
        _prepare(tiny_teacher_dir, sst2_columns, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_shared_uri_cache_is_built_once_and_read_by_another_machine(
    tiny_teacher_dir, sst2_columns, tmp_path, monkeypatch
):
    """Two "machines" (two local mirrors) share one cache URI: the first builds and uploads the
    entry, the second downloads it without running the teacher; a remote entry without its
    ``meta.json`` (an upload that died) is rebuilt, never read."""
    shared = f"file://{tmp_path / 'bucket'}/cache"
    monkeypatch.setenv("ADABERT_LOCAL_CACHE", str(tmp_path / "machine-a"))
    with knowledge.count_teacher_forwards() as built:
        first = _prepare(tiny_teacher_dir, sst2_columns, shared)
    assert not first.cache_hit and built.count > 0
    (entry,) = (tmp_path / "bucket" / "cache").iterdir()
    assert (entry / "meta.json").is_file() and (entry / "teacher").is_dir()
    assert first.teacher_location == f"{shared}/{entry.name}/teacher"

    monkeypatch.setenv("ADABERT_LOCAL_CACHE", str(tmp_path / "machine-b"))
    with knowledge.count_teacher_forwards() as read:
        second = _prepare(tiny_teacher_dir, sst2_columns, shared)
    assert second.cache_hit and read.count == 0
    assert str(tmp_path / "machine-b") in second.teacher_dir
    assert torch.equal(first.train.probe_logits, second.train.probe_logits)
    assert torch.equal(first.dev.logits, second.dev.logits)

    (entry / "meta.json").unlink()
    monkeypatch.setenv("ADABERT_LOCAL_CACHE", str(tmp_path / "machine-c"))
    with knowledge.count_teacher_forwards() as rebuilt:
        third = _prepare(tiny_teacher_dir, sst2_columns, shared)
    assert not third.cache_hit and rebuilt.count > 0
    assert (entry / "meta.json").is_file()  # uploaded again, complete

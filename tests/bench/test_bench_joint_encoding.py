"""The BERT-style control reads the transfer set too: its joint encoding covers the augmented
rows, aligned with the prepared task's rows, labels and teacher logits."""

from __future__ import annotations

import pytest
import torch

from orchestrator.config import load_config
from orchestrator.method.pipeline import prepare_task

pytestmark = pytest.mark.slow  # fine-tunes the tiny teacher and labels the copies


def test_joint_encoding_covers_the_augmented_rows(tiny_teacher_dir, demo_data_dir, tmp_path):
    from bench_baselines import joint_encoding_datasets

    cfg = load_config(
        None,
        [
            'task.name="mrpc"',
            f'task.data_dir="{demo_data_dir / "MRPC"}"',
            f'teacher.name_or_path="{tiny_teacher_dir}"',
            f'run.cache_dir="{tmp_path}"',
            "data.max_seq_length=16",
            "data.augment_copies=2",
            "teacher.epochs=1",
            "teacher.batch_size=16",
            "teacher.probe_epochs=1",
            "run.progress_bar=false",
        ],
    )
    prepared = prepare_task(cfg)
    assert prepared.augmented_examples > 0
    train, dev = joint_encoding_datasets(cfg, prepared)
    assert len(train) == len(prepared.train) and len(dev) == len(prepared.dev)
    assert torch.equal(train.labels, prepared.train.labels)
    assert torch.equal(train.teacher_logits, prepared.train.teacher_logits)
    # The joint encoding rides in the student slots: ids in a, token types in b.
    n = prepared.train_examples
    assert not torch.equal(train.input_ids_a[n:], prepared.train.input_ids_a[n:])

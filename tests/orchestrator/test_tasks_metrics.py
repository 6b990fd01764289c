"""Task registry (names, columns, label sets, metrics) and the metric functions on known values."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

from orchestrator.errors import UserInputError
from orchestrator.tasks.metrics import compute_metrics, primary_metric
from orchestrator.tasks.registry import GLUE_TASKS, custom_task, get_task

# --- registry --------------------------------------------------------------------------------


def test_registry_holds_the_nine_glue_tasks_with_hf_columns():
    columns = {name: (task.text_a, task.text_b) for name, task in GLUE_TASKS.items()}
    assert columns == {
        "cola": ("sentence", None),
        "sst2": ("sentence", None),
        "mrpc": ("sentence1", "sentence2"),
        "stsb": ("sentence1", "sentence2"),
        "qqp": ("question1", "question2"),
        "mnli": ("premise", "hypothesis"),
        "qnli": ("question", "sentence"),
        "rte": ("sentence1", "sentence2"),
        "wnli": ("sentence1", "sentence2"),
    }
    for task in GLUE_TASKS.values():
        assert task.hub_path == "nyu-mll/glue" and task.hub_config == task.name


@pytest.mark.parametrize(
    ("name", "labels", "metrics", "folder"),
    [
        ("sst2", ("negative", "positive"), ("accuracy",), "SST-2"),
        ("mrpc", ("not_equivalent", "equivalent"), ("f1", "accuracy"), "MRPC"),
        ("rte", ("entailment", "not_entailment"), ("accuracy",), "RTE"),
        ("cola", ("unacceptable", "acceptable"), ("matthews_correlation",), "CoLA"),
        ("stsb", None, ("pearson", "spearmanr"), "STS-B"),
        ("qnli", ("entailment", "not_entailment"), ("accuracy",), "QNLI"),
        ("qqp", ("not_duplicate", "duplicate"), ("f1", "accuracy"), "QQP"),
        ("mnli", ("entailment", "neutral", "contradiction"), ("accuracy",), "MNLI"),
        ("wnli", ("not_entailment", "entailment"), ("accuracy",), "WNLI"),
    ],
)
def test_label_names_metrics_and_glue_folder(name, labels, metrics, folder):
    task = get_task(name)
    assert task.label_names == labels
    assert task.metrics == metrics
    assert task.primary_metric == metrics[0] == primary_metric(task)
    assert task.glue is not None and task.glue.folder == folder
    assert task.is_regression == (labels is None)
    assert task.num_labels == (1 if labels is None else len(labels))


def test_properties_and_split_names():
    assert get_task("sst2").is_pair is False
    assert get_task("mrpc").is_pair is True
    assert get_task("mnli").validation_split == "validation_matched"
    assert get_task("mnli").glue.dev_file == "dev_matched.tsv"
    assert get_task("rte").validation_split == "validation"
    assert get_task("rte").glue.raw_labels == ("entailment", "not_entailment")
    assert get_task("wnli").glue.raw_labels == ("0", "1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_task("sst2").name = "other"


@pytest.mark.parametrize("alias", ["SST-2", "sst-2", "Sst2", " sst2 ", "sst_2"])
def test_get_task_accepts_glue_spellings(alias):
    assert get_task(alias) is GLUE_TASKS["sst2"]


def test_get_task_accepts_sts_b():
    assert get_task("sts-b") is get_task("STS-B") is GLUE_TASKS["stsb"]


def test_unknown_task_is_a_one_line_user_error_listing_known_tasks():
    with pytest.raises(UserInputError) as caught:
        get_task("imdb")
    message = str(caught.value)
    assert "'imdb'" in message and "sst2" in message and "mnli" in message
    assert "\n" not in message
    assert isinstance(caught.value, ValueError)


# --- custom tasks ----------------------------------------------------------------------------


def test_custom_classification_task():
    task = custom_task("reviews", text_a="body", labels=["neg", "pos"])
    assert (task.text_a, task.text_b, task.label_names) == ("body", None, ("neg", "pos"))
    assert task.metrics == ("accuracy",) and task.num_labels == 2 and task.hub_path is None
    pair = custom_task("para", text_a="s1", text_b="s2", labels=["no", "yes"], metric="f1")
    assert pair.is_pair and pair.metrics == ("f1", "accuracy")
    assert custom_task("c", text_a="t", labels=["a", "b"], metric="matthews_correlation").metrics
    assert custom_task("n", text_a="t", labels=[0, 1]).label_names == ("0", "1")


def test_custom_regression_defaults_to_pearson_when_metric_is_the_accuracy_default():
    task = custom_task("score", text_a="t")
    assert task.is_regression and task.metrics == ("pearson", "spearmanr")
    assert custom_task("s", text_a="t", metric="spearmanr").metrics == ("spearmanr", "pearson")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"metric": "f1"}, "'f1' needs class labels"),
        ({"labels": ["a", "b"], "metric": "pearson"}, "'pearson' is for regression"),
        ({"labels": ["a", "b"], "metric": "bleu"}, "unknown metric 'bleu'"),
        ({"labels": ["a", "a"]}, "two distinct labels"),
        ({"labels": ["a"]}, "two distinct labels"),
        ({"text_a": " "}, "non-empty"),
    ],
)
def test_custom_task_rejects_bad_settings(kwargs, fragment):
    arguments = {"text_a": "t"} | kwargs
    with pytest.raises(UserInputError) as caught:
        custom_task("mine", **arguments)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


# --- metrics ---------------------------------------------------------------------------------


def test_f1_and_accuracy_by_hand():
    # labels 1 1 1 0 0 0, predictions 1 1 0 1 0 0: TP=2, FN=1, FP=1, TN=2.
    # precision = 2/3, recall = 2/3, F1 = 2PR/(P+R) = 2/3; accuracy = (2+2)/6 = 2/3.
    labels = np.array([1, 1, 1, 0, 0, 0])
    predictions = np.array([1, 1, 0, 1, 0, 0])
    result = compute_metrics(get_task("mrpc"), predictions, labels)
    assert list(result) == ["f1", "accuracy"]
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["accuracy"] == pytest.approx(4 / 6)


def test_f1_is_of_the_positive_class_and_zero_without_positive_predictions():
    # labels 1 1 0 0, predictions 0 0 0 0: no true positives -> F1 0 (no warning), accuracy 1/2.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compute_metrics(get_task("qqp"), np.zeros(4, int), np.array([1, 1, 0, 0]))
    assert result == {"f1": 0.0, "accuracy": 0.5}


def test_matthews_by_hand():
    # TP=3, FN=2, FP=1, TN=2: MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))
    #                             = (6 - 2) / sqrt(4 * 5 * 3 * 4) = 4 / sqrt(240).
    labels = np.array([1, 1, 1, 1, 1, 0, 0, 0])
    predictions = np.array([1, 1, 1, 0, 0, 1, 0, 0])
    result = compute_metrics(get_task("cola"), predictions, labels)
    assert result == {"matthews_correlation": pytest.approx(4 / math.sqrt(240))}


def test_matthews_of_a_constant_predictor_is_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compute_metrics(get_task("cola"), np.ones(4, int), np.array([0, 1, 0, 1]))
    assert result == {"matthews_correlation": 0.0}


def test_pearson_and_spearman_by_hand():
    # x = 1 2 3 4, y = 2 4 5 9: deviations (-1.5 -.5 .5 1.5) and (-3 -1 0 4); sum of products
    # 11, sums of squares 5 and 26: r = 11 / sqrt(130). y rises with x: Spearman 1.
    predictions = np.array([1.0, 2.0, 3.0, 4.0])
    labels = np.array([2.0, 4.0, 5.0, 9.0])
    result = compute_metrics(get_task("stsb"), predictions, labels)
    assert list(result) == ["pearson", "spearmanr"]
    assert result["pearson"] == pytest.approx(11 / math.sqrt(130))
    assert result["spearmanr"] == pytest.approx(1.0)


def test_spearman_by_rank_formula():
    # ranks of y = 1 3 2 5 4 against 1 2 3 4 5: d = 0 -1 1 -1 1, sum d^2 = 4,
    # rho = 1 - 6 * 4 / (5 * (25 - 1)) = 0.8.
    predictions = np.arange(1.0, 6.0)
    labels = np.array([1.0, 3.5, 2.0, 50.0, 40.0])
    assert compute_metrics(get_task("stsb"), predictions, labels)["spearmanr"] == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("predictions", "labels"),
    [([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]), ([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]), ([1.0], [2.0])],
)
def test_correlations_of_constant_inputs_are_zero_without_warnings(predictions, labels):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compute_metrics(get_task("stsb"), np.array(predictions), np.array(labels))
    assert result == {"pearson": 0.0, "spearmanr": 0.0}


def test_multiclass_accuracy_and_macro_f1():
    labels = np.array([0, 1, 2, 2])
    predictions = np.array([0, 2, 2, 2])
    assert compute_metrics(get_task("mnli"), predictions, labels) == {"accuracy": 0.75}
    # per class F1: class 0 = 1, class 1 = 0 (never predicted), class 2: P = 2/3, R = 1 -> 0.8.
    task = custom_task("three", text_a="t", labels=["a", "b", "c"], metric="f1")
    assert compute_metrics(task, predictions, labels)["f1"] == pytest.approx(1.8 / 3)


def test_metric_values_are_python_floats():
    result = compute_metrics(get_task("mrpc"), np.array([1, 0]), np.array([1, 0]))
    assert all(type(value) is float for value in result.values())


@pytest.mark.parametrize(
    ("predictions", "labels", "fragment"),
    [
        (np.zeros((3, 2)), np.zeros(3), "1-D"),
        (np.zeros(3), np.zeros(4), "as many predictions"),
        (np.zeros(0), np.zeros(0), "as many predictions"),
    ],
)
def test_compute_metrics_rejects_bad_shapes(predictions, labels, fragment):
    with pytest.raises(ValueError, match=fragment):
        compute_metrics(get_task("sst2"), predictions, labels)


def _logits(predictions: list[int], num_labels: int = 2) -> np.ndarray:
    return np.eye(num_labels)[np.asarray(predictions)]


def test_constant_check_flags_one_class_and_no_better_than_constant():
    from orchestrator.tasks.evaluation import constant_check

    mrpc, sst2 = get_task("mrpc"), get_task("sst2")
    labels = np.array([1, 1, 1, 0, 0, 1, 0, 1])  # 5 of 8 positive
    # Always "equivalent": binary F1 = 2·(5/8)/(1 + 5/8) = 10/13, the best constant prediction.
    always = constant_check(mrpc, _logits([1] * 8), labels)
    assert always["dev/majority_share"] == 1.0 and always["dev/degenerate"] == 1.0
    assert always["dev/constant_baseline"] == pytest.approx(10 / 13)
    # Mixed predictions scoring below the constant's accuracy (5/8) are degenerate too.
    worse = constant_check(sst2, _logits([1, 0, 1, 0, 1, 0, 1, 0]), labels)  # accuracy 4/8
    assert worse["dev/majority_share"] == 0.5 and worse["dev/degenerate"] == 1.0
    assert worse["dev/constant_baseline"] == pytest.approx(5 / 8)
    good = constant_check(sst2, _logits([1, 1, 1, 0, 0, 1, 0, 0]), labels)  # accuracy 7/8
    assert good["dev/degenerate"] == 0.0 and good["dev/majority_share"] == 0.5


def test_constant_check_on_regression_looks_at_the_spread():
    from orchestrator.tasks.evaluation import constant_check

    stsb, labels = get_task("stsb"), np.array([0.5, 2.0, 3.5, 5.0])
    flat = constant_check(stsb, np.full((4, 1), 2.5), labels)
    assert flat["dev/majority_share"] == 1.0 and flat["dev/degenerate"] == 1.0
    tracking = constant_check(stsb, labels.reshape(-1, 1) * 0.9, labels)
    assert tracking["dev/degenerate"] == 0.0 and tracking["dev/constant_baseline"] == 0.0


def test_constant_check_flags_almost_one_class_unless_the_gold_labels_are_as_skewed():
    from orchestrator.tasks.evaluation import ALMOST_ONE_CLASS, constant_check

    sst2 = get_task("sst2")
    n = 100
    labels = np.array([0, 1] * (n // 2))
    # 99 of 100 predicted positive, one correct negative: accuracy 0.51 beats the constant 0.50.
    almost = constant_check(sst2, _logits([0] + [1] * (n - 1)), labels)
    assert almost["dev/majority_share"] == 0.99 >= ALMOST_ONE_CLASS
    assert almost["dev/degenerate"] == 1.0
    skewed = np.array([1] * 99 + [0])  # gold labels just as skewed: predicting them is right
    fine = constant_check(sst2, _logits([1] * 99 + [0]), skewed)
    assert fine["dev/degenerate"] == 0.0


def test_selection_key_ranks_beating_the_constant_then_telling_classes_apart_then_score():
    from orchestrator.tasks.evaluation import selection_key

    def key(score, degenerate, one_class):
        metrics = {"dev/f1": score, "dev/degenerate": degenerate, "dev/one_class": one_class}
        return selection_key(metrics, "dev/f1")

    ranked = [key(0.70, 0.0, 0.0), key(0.79, 1.0, 0.0), key(0.60, 1.0, 0.0), key(0.81, 1.0, 1.0)]
    assert ranked == sorted(ranked, reverse=True)
    assert key(0.75, 0.0, 0.0) > key(0.70, 0.0, 0.0)
    assert key(float("nan"), 0.0, 0.0) < key(0.0, 0.0, 0.0)
    # Checkpoints written before the check existed: the score alone decides.
    assert selection_key({"dev/f1": 0.8}, "dev/f1") > selection_key({"dev/f1": 0.7}, "dev/f1")


def test_evaluate_reports_the_constant_check_under_its_prefix(monkeypatch):
    import torch

    import orchestrator.tasks.evaluation as evaluation

    monkeypatch.setattr(evaluation, "trim_padding", lambda batch: batch)
    batch = type("Batch", (), {"labels": torch.tensor([1, 1, 1, 0])})()
    always_equivalent = lambda _batch: torch.tensor([[0.0, 1.0]] * 4)  # noqa: E731
    metrics = evaluation.evaluate(get_task("mrpc"), always_equivalent, [batch], prefix="dev")
    assert metrics["dev/f1"] == pytest.approx(6 / 7)
    assert metrics["dev/one_class"] == 1.0 and metrics["dev/degenerate"] == 1.0
    assert metrics["dev/majority_share"] == 1.0
    assert metrics["dev/constant_baseline"] == pytest.approx(6 / 7)


def test_constant_check_takes_the_callers_score_and_prefix():
    from orchestrator.tasks.evaluation import constant_check

    sst2 = get_task("sst2")
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    logits = _logits([1, 1, 1, 0, 0, 1, 0, 0])  # accuracy 7/8
    assert constant_check(sst2, logits, labels, score=7 / 8) == constant_check(sst2, logits, labels)
    # A caller's score at the constant's level makes the same predictions degenerate.
    assert constant_check(sst2, logits, labels, score=5 / 8)["dev/degenerate"] == 1.0
    test_side = constant_check(sst2, logits, labels, prefix="test")
    assert set(test_side) == {
        "test/majority_share",
        "test/constant_baseline",
        "test/one_class",
        "test/degenerate",
    }


def test_selection_score_orders_epochs_exactly_as_selection_key():
    from orchestrator.tasks.evaluation import selection_key, selection_score

    rng = np.random.default_rng(0)
    candidates = []
    for _ in range(300):
        one_class = bool(rng.random() < 0.3)
        degenerate = one_class or bool(rng.random() < 0.3)
        score = float(rng.uniform(-1, 1)) if rng.random() > 0.05 else math.nan
        candidates.append(
            {
                "dev/pearson": score,
                "dev/degenerate": float(degenerate),
                "dev/one_class": float(one_class),
            }
        )
    candidates += [{"dev/pearson": 1.0}, {"dev/pearson": -1.0}, {"dev/pearson": math.nan}]
    by_key = sorted(
        range(len(candidates)), key=lambda i: selection_key(candidates[i], "dev/pearson")
    )
    by_score = sorted(
        range(len(candidates)), key=lambda i: selection_score(candidates[i], "dev/pearson")
    )
    keys = [selection_key(candidates[i], "dev/pearson") for i in by_score]
    assert keys == sorted(keys)  # the float order never contradicts the tuple order
    assert [selection_key(candidates[i], "dev/pearson") for i in by_key] == keys
    worst_learner = selection_score({"dev/f1": 0.0, "dev/degenerate": 0.0}, "dev/f1")
    best_constant = selection_score({"dev/f1": 1.0, "dev/degenerate": 1.0}, "dev/f1")
    assert best_constant < worst_learner
    assert selection_score(
        {"dev/f1": 0.81, "dev/degenerate": 1.0, "dev/one_class": 1.0}, "dev/f1"
    ) == (pytest.approx(0.81 - 8.0))

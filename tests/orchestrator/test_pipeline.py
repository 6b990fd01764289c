"""The Ray-free pipeline: reproducible from a seed, reports every epoch of every phase, and the
retrain modes build their students as documented."""

from __future__ import annotations

import pytest
import torch

from orchestrator.config import load_config
from orchestrator.method.pipeline import TrialRunner, prepare_task, run_one_task
from orchestrator.tasks.evaluation import evaluate, selection_key
from searchspace.genotype import Edge, Genotype

pytestmark = pytest.mark.slow  # every test trains (about 25 s together)

TINY = [
    "data.max_seq_length=16",
    "data.batch_size=16",
    "data.augment_copies=0",
    "teacher.epochs=1",
    "teacher.batch_size=16",
    "teacher.probe_epochs=1",
    "supernet.hidden_size=16",
    "supernet.max_cells=2",
    "search.epochs=2",
    "retrain.epochs=1",
    "run.measure_latency=false",
    "run.progress_bar=false",
]


@pytest.fixture(scope="module")
def setup(tiny_teacher_dir, demo_data_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    overrides = [
        *TINY,
        'task.name="mrpc"',
        f'task.data_dir="{demo_data_dir / "MRPC"}"',
        f'teacher.name_or_path="{tiny_teacher_dir}"',
        f'run.cache_dir="{cache}"',
    ]
    cfg = load_config(None, overrides)
    return cfg, prepare_task(cfg), overrides


def _state(student) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in student.state_dict().items()}


def test_same_seed_same_result(setup):
    cfg, prepared, _ = setup
    first, second = run_one_task(cfg, prepared), run_one_task(cfg, prepared)
    assert first.genotype == second.genotype
    drop = ("time/",)
    assert {k: v for k, v in first.metrics.items() if not k.startswith(drop)} == {
        k: v for k, v in second.metrics.items() if not k.startswith(drop)
    }
    a, b = _state(first.student), _state(second.student)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_other_seed_other_run(setup):
    cfg, prepared, overrides = setup
    other = run_one_task(load_config(None, [*overrides, "run.seed=7"]), prepared)
    base = run_one_task(cfg, prepared)
    a, b = _state(base.student), _state(other.student)
    assert any(not torch.equal(a[k], b[k]) for k in a if k in b)


def test_every_phase_reports_every_epoch(setup):
    cfg, prepared, _ = setup
    events = []
    result = run_one_task(cfg, prepared, on_epoch=events.append)
    phases = [(e.phase, e.epoch, e.num_epochs) for e in events]
    assert phases == [("search", 1, 2), ("search", 2, 2), ("retrain", 1, 1)]
    for event in events:
        assert prepared.primary_metric in event.metrics
        assert event.genotype is not None
    search = [e.metrics for e in events if e.phase == "search"]
    for key in ("train/loss_ce", "train/loss_kd", "train/loss_efficiency", "arch/entropy"):
        assert all(key in m for m in search), key
    assert result.history["search"][-1]["epoch"] == 2.0


def test_inherit_keeps_searched_weights_and_scratch_does_not(setup):
    """With zero retrain epochs, "inherit" evaluates exactly the searched sub-network."""
    cfg, prepared, overrides = setup
    inherit = run_one_task(load_config(None, [*overrides, "retrain.epochs=0"]), prepared)
    scratch = run_one_task(
        load_config(None, [*overrides, "retrain.epochs=0", 'retrain.mode="scratch"']), prepared
    )
    metric = prepared.primary_metric
    assert inherit.metrics[metric] == inherit.metrics["search/best_dev"]
    assert inherit.genotype == scratch.genotype
    a, b = _state(inherit.student), _state(scratch.student)
    cell_keys = [k for k in a if k.startswith("cells.") and ".edges." in k]
    if cell_keys:
        assert any(not torch.equal(a[k], b[k]) for k in cell_keys)


def test_arch_warmup_freezes_alpha_and_is_never_the_chosen_epoch(setup):
    cfg, prepared, overrides = setup
    warm = load_config(
        None,
        [*overrides, "search.epochs=3", "search.arch_warmup_fraction=0.67", "retrain.epochs=0"],
    )
    history = run_one_task(warm, prepared).history["search"]
    assert [h["arch/learning"] for h in history] == [0.0, 0.0, 1.0]
    # α is untouched while warming up: the architecture entropy stays at its initial value.
    assert history[0]["arch/entropy"] == history[1]["arch/entropy"]
    assert history[2]["arch/entropy"] != history[1]["arch/entropy"]
    # The temperature starts annealing only when α starts learning.
    assert history[0]["arch/temperature"] == history[1]["arch/temperature"] == 1.0
    result = run_one_task(warm, prepared)
    assert result.metrics["search/best_epoch"] == 3.0


def _roundtrip(state: dict, tmp_path) -> dict:
    """Through the file a Tune checkpoint holds, loaded as the trial loads it."""
    path = tmp_path / "state.pt"
    torch.save(state, path)
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize(
    "stop_after, optimization",
    [(1, "joint"), (3, "joint"), (2, "alternating")],  # mid-search, mid-retrain, search's end
)
def test_a_restored_runner_finishes_exactly_like_an_uninterrupted_one(
    setup, tmp_path, stop_after, optimization
):
    cfg, prepared, overrides = setup
    cfg = load_config(
        None,
        [
            *overrides,
            "search.epochs=2",
            "retrain.epochs=2",
            f'search.optimization="{optimization}"',
        ],
    )
    whole = run_one_task(cfg, prepared)
    state = _interrupted(cfg, prepared, stop_after, tmp_path)
    _assert_resumes_like(whole, cfg, prepared, state, stop_after)


def _interrupted(cfg, prepared, stop_after: int, tmp_path) -> dict:
    """The checkpoint of a worker killed after ``stop_after`` epochs, read back from its file."""
    first = TrialRunner(cfg, prepared)
    epochs = first.epochs()
    for _ in range(stop_after):
        next(epochs)
    return _roundtrip(first.state_dict(), tmp_path)


def _assert_resumes_like(whole, cfg, prepared, state: dict, stop_after: int) -> None:
    torch.manual_seed(1234)  # a new process has another global RNG state
    second = TrialRunner(cfg, prepared)
    second.load_state_dict(state)
    assert second.completed_epochs == stop_after
    resumed = run_one_task(cfg, prepared, runner=second)
    assert resumed.genotype == whole.genotype
    assert resumed.metrics == whole.metrics
    assert resumed.history == whole.history
    a, b = _state(whole.student), _state(resumed.student)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_state_holds_no_objects_beyond_tensors_and_containers(setup, tmp_path):
    cfg, prepared, _ = setup
    runner = TrialRunner(cfg, prepared)
    next(runner.epochs())
    # weights_only=True refuses anything but tensors, numbers, strings and containers.
    state = _roundtrip(runner.state_dict(), tmp_path)
    assert state["search"]["epoch"] == 1 and state["retrain"] is None


def test_alternating_search_uses_both_halves_and_learns_alpha(setup):
    cfg, prepared, overrides = setup
    alternating = load_config(
        None, [*overrides, 'search.optimization="alternating"', "search.arch_warmup_fraction=0"]
    )
    result = run_one_task(alternating, prepared)
    history = result.history["search"]
    assert len(history) == 2 and all(h["arch/learning"] == 1.0 for h in history)
    uniform = TrialRunner(alternating, prepared).search._epoch_metrics({}, 1, result.genotype, 1.0)
    assert history[-1]["arch/entropy"] != uniform["arch/entropy"]  # α moved


def test_transfer_set_is_the_training_set_plus_teacher_labelled_copies(setup, tmp_path):
    """The augmented rows join the training split (the teacher's logits for each, from the
    fine-tuned teacher), the entry holds them, and a second prepare reads the same rows."""
    _, plain, overrides = setup
    augmented_overrides = [*overrides, "data.augment_copies=2", f'run.cache_dir="{tmp_path}"']
    cfg = load_config(None, augmented_overrides)
    prepared = prepare_task(cfg)
    n = plain.train_examples
    assert prepared.train_examples == n and len(plain.train) == n
    assert 0 < prepared.augmented_examples <= 2 * n
    assert len(prepared.train) == n + prepared.augmented_examples
    # The original rows, their labels and logits are unchanged; the copies carry their source's
    # label and their own teacher logits.
    assert torch.equal(prepared.train.input_ids_a[:n], plain.train.input_ids_a)
    assert torch.allclose(prepared.train.teacher_logits[:n], plain.train.teacher_logits)
    entries = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(entries) == 1 and (entries[0] / "augmented.parquet").is_file()
    from orchestrator.teacher.knowledge import _read_augmented

    texts = _read_augmented(entries[0] / "augmented.parquet").texts
    sources = torch.tensor(texts["source"])
    assert torch.equal(prepared.train.labels[n:], plain.train.labels[sources])
    phases = prepared.knowledge_seconds
    assert set(phases) == {"fine_tune", "knowledge", "augment"}
    assert all(seconds > 0 for seconds in phases.values()), phases
    again = prepare_task(cfg)
    assert again.cache_hit and len(again.train) == len(prepared.train)
    assert again.knowledge_seconds == phases  # a hit still says what the entry cost
    assert torch.equal(again.train.input_ids_b, prepared.train.input_ids_b)
    assert torch.equal(again.train.teacher_probe_logits, prepared.train.teacher_probe_logits)


def _scripted(monkeypatch, module: str, script: list[dict[str, float]]):
    """Replace the phase's dev evaluation with these metrics, one per call, in order."""
    calls = iter(script)
    monkeypatch.setattr(f"orchestrator.method.{module}.evaluate", lambda *a, **k: next(calls))


def _dev(f1: float, *, degenerate: bool, one_class: bool) -> dict[str, float]:
    return {
        "dev/f1": f1,
        "dev/accuracy": f1,
        "dev/degenerate": float(degenerate),
        "dev/one_class": float(one_class),
    }


def test_retrain_keeps_an_epoch_that_beats_the_constant_over_a_higher_scoring_constant(
    setup, monkeypatch
):
    """MRPC: "equivalent" for every pair scores F1 0.81; a student that learnt something and
    scores less must still be the one kept, and a one-class epoch never wins over one that
    tells the classes apart."""
    cfg, prepared, overrides = setup
    runs = {
        # epoch 0 (as searched), 1, 2, 3
        "learnt": ([_dev(0.81, degenerate=True, one_class=True), _dev(0.79, degenerate=False,
                   one_class=False), _dev(0.83, degenerate=True, one_class=True),
                   _dev(0.78, degenerate=False, one_class=False)], 1),
        "none learnt": ([_dev(0.81, degenerate=True, one_class=True), _dev(0.70, degenerate=True,
                        one_class=False), _dev(0.82, degenerate=True, one_class=True),
                        _dev(0.75, degenerate=True, one_class=False)], 3),
        "all fine": ([_dev(0.60, degenerate=False, one_class=False), _dev(0.70, degenerate=False,
                     one_class=False), _dev(0.65, degenerate=False, one_class=False),
                     _dev(0.62, degenerate=False, one_class=False)], 1),
    }  # fmt: skip
    for name, (script, expected) in runs.items():
        _scripted(monkeypatch, "retrain", script)
        budget = [*overrides, "search.epochs=1", "retrain.epochs=3"]
        result = run_one_task(load_config(None, budget), prepared)
        assert result.metrics["retrain/best_epoch"] == expected, name


def test_search_keeps_the_epoch_whose_student_beats_the_constant(setup, monkeypatch):
    cfg, prepared, overrides = setup
    _scripted(
        monkeypatch,
        "search",
        [
            _dev(0.74, degenerate=False, one_class=False),
            _dev(0.81, degenerate=True, one_class=True),
            _dev(0.40, degenerate=True, one_class=False),
        ],
    )
    search_only = [
        *overrides,
        "search.epochs=3",
        "search.arch_warmup_fraction=0",
        "retrain.epochs=0",
    ]
    result = run_one_task(load_config(None, search_only), prepared)
    assert result.metrics["search/best_epoch"] == 1.0
    assert result.metrics["search/best_dev"] == 0.74


def test_the_result_reads_the_constant_check_of_the_kept_epoch_without_predicting_again(
    setup, monkeypatch
):
    """The retrain's evaluation of its best epoch already holds the constant check of the same
    weights: the trial's result uses it instead of running the dev set a second time."""
    cfg, prepared, overrides = setup
    kept = _dev(0.79, degenerate=False, one_class=False) | {
        "dev/majority_share": 0.6,
        "dev/constant_baseline": 0.5,
    }
    worse = _dev(0.70, degenerate=False, one_class=False) | {
        "dev/majority_share": 0.7,
        "dev/constant_baseline": 0.5,
    }
    _scripted(monkeypatch, "retrain", [worse, kept])

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the dev set was predicted again")

    monkeypatch.setattr("orchestrator.method.pipeline.predict", no_second_pass)
    budget = [*overrides, "search.epochs=1", "retrain.epochs=1"]
    result = run_one_task(load_config(None, budget), prepared)
    metrics = result.metrics
    assert metrics["retrain/best_epoch"] == 1.0
    assert metrics["dev/majority_share"] == 0.6 and metrics["student/degenerate"] == 0.0
    teacher = prepared.teacher_score
    if teacher is not None and teacher > 0.5:
        assert metrics["retention_above_baseline"] == pytest.approx((0.79 - 0.5) / (teacher - 0.5))


# --- derive-time candidates (search.candidate_param_free_caps) -----------------------------


def _two_candidates(monkeypatch) -> None:
    """The searched genotype and its twin with one convolution on every kept edge: two
    candidates whatever α the tiny search ends with."""

    def candidates(searched, supernet, cfg, seq_len):
        op = "std_conv_3" if "std_conv_3" not in searched.edge_ops().values() else "avg_pool_3"
        edges = tuple(Edge(e.target, e.source, op) for e in searched.edges)
        return [searched, Genotype(edges, searched.num_cells, searched.nodes_per_cell)]

    monkeypatch.setattr("orchestrator.method.pipeline.candidate_genotypes", candidates)


def _ranked(overrides, *extra) -> list[str]:
    return [*overrides, "search.epochs=2", "retrain.epochs=2", *extra]


def test_every_candidate_is_retrained_and_the_one_best_on_dev_is_kept(setup, monkeypatch):
    cfg, prepared, overrides = setup
    _two_candidates(monkeypatch)
    cfg = load_config(None, _ranked(overrides))
    runner, events = TrialRunner(cfg, prepared), []
    result = run_one_task(cfg, prepared, runner=runner, on_epoch=events.append)

    phases = [(e.phase, e.epoch, e.part) for e in events]
    assert phases == [
        ("search", 1, ""),
        ("search", 2, ""),
        *[("retrain", epoch, f"candidate {c}/2") for c in (1, 2) for epoch in (1, 2)],
    ]
    assert [e.metrics.get("derive/candidate") for e in events[2:]] == [0.0, 0.0, 1.0, 1.0]
    assert runner.completed_epochs == 6
    scores = result.history["candidates"]
    assert len(scores) == 2 and scores[0]["genotype"] != scores[1]["genotype"]
    metric = prepared.primary_metric
    keys = [selection_key(s, metric) for s in scores]
    chosen = keys.index(max(keys))
    assert result.metrics["derive/candidates"] == 2.0
    assert result.metrics["derive/chosen"] == float(chosen)
    assert result.genotype.summary() == scores[chosen]["genotype"]
    assert result.metrics[metric] == scores[chosen][metric]
    assert result.metrics["retrain/best_epoch"] == scores[chosen]["retrain_best_epoch"]
    # The student handed back holds the kept candidate's weights: it scores what was recorded.
    result.student.eval()
    again = evaluate(
        prepared.task,
        lambda b: result.student(*b.student_inputs()),
        runner.dev_loader,
        prefix="dev",
    )
    assert again[metric] == pytest.approx(scores[chosen][metric], abs=1e-6)


def test_one_candidate_reports_it_and_runs_as_before(setup):
    cfg, prepared, _ = setup
    result = run_one_task(cfg, prepared)
    assert result.metrics["derive/candidates"] == 1.0 and result.metrics["derive/chosen"] == 0.0
    assert [s["genotype"] for s in result.history["candidates"]] == [result.genotype.summary()]


def test_a_flops_bound_no_candidate_fits_keeps_one_cell_and_says_it_is_over(setup):
    cfg, prepared, overrides = setup
    cfg = load_config(None, [*overrides, "search.max_student_flops=1"])
    result = run_one_task(cfg, prepared)
    assert result.genotype.num_cells == 1 and result.metrics["derive/candidates"] == 1.0
    assert result.metrics["student/flops"] == result.student.flops(cfg.data.max_seq_length) > 1
    assert result.metrics["derive/within_budget"] == 0.0 and result.over_budget
    roomy = load_config(None, [*overrides, "search.max_student_flops=1e12"])
    fits = run_one_task(roomy, prepared)
    assert fits.metrics["derive/within_budget"] == 1.0 and not fits.over_budget


@pytest.mark.parametrize("stop_after", [3, 4, 5])  # in candidate 0, at its end, in candidate 1
def test_a_runner_restored_between_candidates_finishes_like_an_uninterrupted_one(
    setup, tmp_path, monkeypatch, stop_after
):
    """Stopped in the first candidate's retrain, the second candidate still inherits the
    search's best weights, which the checkpoint must carry until the last candidate starts."""
    cfg, prepared, overrides = setup
    _two_candidates(monkeypatch)
    cfg = load_config(None, _ranked(overrides))
    whole = run_one_task(cfg, prepared)
    state = _interrupted(cfg, prepared, stop_after, tmp_path)
    assert ("state" in state["search"]["best"]) == (stop_after < 5)
    _assert_resumes_like(whole, cfg, prepared, state, stop_after)

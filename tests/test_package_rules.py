"""Package rules: searchspace/ and losses/ stay pure PyTorch (no framework imports; safetensors
for the student's weights file), and the project's packages resolve from this checkout."""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PURE_PACKAGES = ("searchspace", "losses")
# safetensors is the weights' file format (searchspace/package.py), not a framework.
ALLOWED = {"torch", "safetensors", "__future__", *PURE_PACKAGES} | set(sys.stdlib_module_names)
FRAMEWORKS = ("ray", "optuna", "mlflow", "transformers", "datasets")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def _python_files(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def test_repo_layout_is_what_the_rules_assume():
    assert (REPO / "pyproject.toml").is_file()
    for package in PURE_PACKAGES:
        assert (REPO / package / "__init__.py").is_file()
        assert len(_python_files(package)) >= 3


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_packages_import_only_torch_and_stdlib(package):
    offenders = []
    for path in _python_files(package):
        for line, module in _imports(path):
            if module not in ALLOWED:
                offenders.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert not offenders, "\n".join(offenders)


def test_import_checker_catches_framework_imports(tmp_path):
    """Control: the AST scan sees plain, dotted, from- and nested imports."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\nimport ray.tune\nfrom optuna import trial\n"
        "def f():\n    import mlflow\n    from . import sibling\n",
        encoding="utf-8",
    )
    modules = {m for _, m in _imports(sample)}
    assert modules == {"os", "ray", "optuna", "mlflow"}
    assert modules - ALLOWED == {"ray", "optuna", "mlflow"}


@pytest.mark.parametrize("package", ["searchspace", "losses", "orchestrator", "cluster"])
def test_packages_resolve_inside_this_checkout(package):
    module = importlib.import_module(package)
    # __path__ covers regular and namespace packages (a namespace package has no __file__ and
    # could merge portions from several sys.path entries: there must be exactly this one).
    locations = {Path(p).resolve() for p in module.__path__}
    assert locations == {REPO / package}, f"{package} resolves to {locations}, not {REPO}"
    if module.__file__ is not None:
        assert Path(module.__file__).resolve() == REPO / package / "__init__.py"


@pytest.fixture(scope="module")
def clean_interpreter_report() -> dict:
    """Import the packages in a fresh interpreter (no pytest sys.path changes) and report."""
    code = (
        "import importlib, json, sys\n"
        "import searchspace, losses\n"
        "import searchspace.supernet, searchspace.derived, losses.objective\n"
        f"frameworks = {FRAMEWORKS!r}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in frameworks)\n"
        "paths = {name: list(importlib.import_module(name).__path__)\n"
        "         for name in ('searchspace', 'losses', 'orchestrator', 'cluster')}\n"
        "print(json.dumps({'loaded': loaded, 'paths': paths}))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", ["searchspace", "losses", "orchestrator", "cluster"])
def test_packages_resolve_inside_this_checkout_in_a_clean_interpreter(
    package, clean_interpreter_report
):
    paths = {Path(p).resolve() for p in clean_interpreter_report["paths"][package]}
    assert paths == {REPO / package}


def test_importing_pure_packages_pulls_in_no_framework(clean_interpreter_report):
    # The imports ran before orchestrator was touched, so only searchspace/losses count here.
    assert clean_interpreter_report["loaded"] == [], clean_interpreter_report["loaded"]


# Where each framework may be imported (module-level or not): the few, named places.
FRAMEWORK_HOMES = {
    "ray": ("orchestrator/sweep/", "cluster/"),
    "optuna": ("orchestrator/sweep/",),
    "mlflow": ("orchestrator/sweep/",),
    # student_model.py runs inside the MLflow model (the tokenizer of a logged student).
    "transformers": ("orchestrator/teacher/model.py", "orchestrator/sweep/student_model.py"),
    "datasets": ("orchestrator/tasks/data.py",),
    # knowledge.py: the cache's Parquet files; storage.py: locations as pyarrow filesystems.
    "pyarrow": ("orchestrator/teacher/knowledge.py", "orchestrator/storage.py"),
    "onnx": ("orchestrator/student/onnx_export.py",),
    "onnxruntime": ("orchestrator/student/onnx_export.py",),
}


def _project_files() -> list[Path]:
    return [p for package in ("orchestrator", "cluster") for p in _python_files(package)]


def test_frameworks_are_imported_only_in_their_named_places():
    offenders = []
    for path in _project_files():
        where = str(path.relative_to(REPO))
        for line, module in _imports(path):
            homes = FRAMEWORK_HOMES.get(module)
            if homes is not None and not where.startswith(homes):
                offenders.append(f"{where}:{line} imports {module}")
    assert not offenders, "\n".join(offenders)


def test_orchestrator_never_imports_cluster_at_module_level():
    offenders = []
    for path in _python_files("orchestrator"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only: cli.py may import it inside a function
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "cluster" for name in names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders


def test_the_method_layer_runs_without_ray_optuna_or_mlflow():
    code = (
        "import sys, json\n"
        "import orchestrator.method.pipeline, orchestrator.cli, orchestrator.preflight\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'ray', 'optuna', 'mlflow'})))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []

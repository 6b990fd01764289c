"""``adabert submit`` and ``adabert jobs``: sweeps as Ray jobs (Ray's Job Submission SDK).

Only the project's tracked files are shipped (``git ls-files``, staged into a temporary folder
so untracked ``.env`` files, credentials, caches, sweeps and ``.venv`` never leave the machine;
files that look like secrets are refused even when tracked). The job runs
``adabert sweep --address auto`` on the cluster. See cluster/README.md for tunnels and tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.errors import UserInputError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Used when the shipped folder is not a git checkout (nothing to ask which files are tracked).
EXCLUDES = [".venv", ".git", "sweeps", "runs", ".adabert", "bench/results", "mlruns", "*.db"]
# Never shipped, tracked or not: the usual names of secrets.
SECRET_PATTERNS = (
    ".env", ".env.*", "*.env", "credentials*", "*credentials.json", "*.pem", "*.key",
    "id_rsa*", "id_ed25519*", ".netrc", "*.p12", "auth_token",
)  # fmt: skip
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
STOP_GRACE_SECONDS = 60


def register(subparsers) -> None:
    submit = subparsers.add_parser("submit", help="run a sweep on a Ray cluster as a Ray job")
    submit.add_argument("config", help="sweep TOML inside this project folder, or 'demo'")
    _address_option(submit)
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--smoke-test", action="store_true")
    submit.add_argument(
        "--no-wait", action="store_true", help="print the job id and return once it is queued"
    )
    submit.add_argument("--working-dir", default=str(PROJECT_ROOT))
    submit.add_argument(
        "--results-root",
        help="absolute folder on the cluster for the sweep folder and the teacher cache (on "
        "shared storage for a multi-node cluster); default ~/adabert on a one-node cluster",
    )
    submit.add_argument(
        "--storage",
        default=os.environ.get("ADABERT_STORAGE") or None,
        help="a URI (s3://, gs://) every node reaches, for checkpoints, the teacher cache and "
        "MLflow artifacts; with MLflow and Optuna servers (sweep.tracking_uri, "
        "sweep.optuna_storage) a multi-node cluster needs no shared file system "
        "(default $ADABERT_STORAGE)",
    )
    submit.set_defaults(handler=_submit_command)

    jobs = subparsers.add_parser("jobs", help="list, follow or stop submitted sweeps")
    actions = jobs.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every job of the cluster")
    _address_option(listing)
    listing.set_defaults(handler=_jobs_list)
    for name, handler, text in (
        ("status", _jobs_status, "a job's status"),
        ("logs", _jobs_logs, "a job's logs (--follow: until it ends)"),
        ("stop", _jobs_stop, "stop a job (its sweep closes its records as on Ctrl-C)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("job_id")
        _address_option(action)
        if name == "logs":
            action.add_argument("--follow", action="store_true")
        action.set_defaults(handler=handler)


def _address_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265"),
        help="the cluster's dashboard / Jobs API address (default $RAY_ADDRESS)",
    )


DEFAULT_RESULTS_ROOT = "~/adabert"  # expanded on the cluster: the head node's home


def entrypoint(
    config: str,
    overrides: list[str],
    smoke_test: bool,
    results_root: str = DEFAULT_RESULTS_ROOT,
    storage: str | None = None,
) -> str:
    words = ["python", "-m", "orchestrator", "sweep", config, "--address", "auto"]
    words += ["--results-root", results_root]
    words += ["--storage", storage] if storage else []
    words += [item for value in overrides for item in ("--set", value)]
    words += ["--smoke-test"] if smoke_test else []
    return shlex.join(words)


def alive_nodes(address: str) -> int | None:
    """Alive nodes of the cluster behind a dashboard address (None when it cannot be asked)."""
    try:
        from ray.util.state import list_nodes

        return sum(node.state == "ALIVE" for node in list_nodes(address=address, timeout=10))
    except Exception:  # an older head without the state API: the job decides
        return None


def results_root_for(args: argparse.Namespace, config: Path | str | None = None) -> str:
    """Where the submitted sweep writes: never the job's temporary working directory. On a
    multi-node cluster every node must reach it: a shared file system (``--results-root``,
    ``sweep.root``), or ``--storage`` plus MLflow and Optuna servers."""
    explicit = args.results_root or any(
        item.split("=", 1)[0].strip() == "sweep.root" for item in args.set
    )
    if args.results_root and not args.results_root.startswith(("/", "~")):
        raise UserInputError(f"--results-root must be an absolute path, got {args.results_root}")
    if not explicit and not (args.storage and _stores_are_servers(config, args.set)):
        nodes = alive_nodes(args.address)
        if nodes is not None and nodes > 1:
            raise UserInputError(
                f"the cluster at {args.address} has {nodes} nodes: give a shared location with "
                "--results-root /shared/adabert (the same path on every node), or --storage "
                "s3://bucket/adabert with sweep.tracking_uri and sweep.optuna_storage on servers"
            )
    return args.results_root or DEFAULT_RESULTS_ROOT


def _stores_are_servers(config: Path | str | None, overrides: list[str]) -> bool:
    """Both stores of the sweep are servers (not SQLite files on the head)."""
    if config is None:
        return False
    from orchestrator.sweep.config import load_sweep_config

    sweep = load_sweep_config(str(config), list(overrides)).sweep
    stores = (sweep.tracking_uri, sweep.optuna_storage)
    return all(url and not url.startswith(("sqlite", "file:")) for url in stores)


def _config_in_working_dir(config: str, working_dir: Path) -> str:
    from orchestrator.sweep.config import BUILTIN_CONFIGS

    if config in BUILTIN_CONFIGS:
        return config
    path = Path(config).resolve()
    if not path.is_file():
        raise UserInputError(f"sweep config not found: {config}")
    try:
        return str(path.relative_to(working_dir.resolve()))
    except ValueError as exc:
        raise UserInputError(
            f"sweep config {config} is outside the shipped folder {working_dir}"
        ) from exc


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _refused(error: BaseException) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    return any(word in text for word in ("authentication", "unauthenticated", "401", "token"))


def _cluster_error(address: str, error: BaseException) -> UserInputError:
    if _refused(error):
        return UserInputError(
            f"the Ray cluster at {address} refused this client's token (set RAY_AUTH_MODE=token "
            f"and RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to the head node's token): "
            f"{_first_line(error)}"
        )
    return UserInputError(f"cannot reach the Ray Jobs API at {address}: {_first_line(error)}")


def connect(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # the SDK raises ConnectionError, RuntimeError, AuthenticationError
        raise _cluster_error(address, exc) from exc


def _is_secret(relative: str) -> bool:
    name = Path(relative).name
    return any(fnmatch.fnmatch(name, pattern) for pattern in SECRET_PATTERNS)


def tracked_files(folder: Path) -> list[str] | None:
    """The files git tracks under ``folder`` (with their working-tree content), or None when
    ``folder`` is not inside a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(folder), "ls-files", "-z", "--cached"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    names = [name for name in listed.decode().split("\0") if name]
    return [name for name in names if (folder / name).is_file()]


def shippable_files(folder: Path) -> list[str]:
    """The tracked files of ``folder``; a folder outside git is refused."""
    files = tracked_files(folder)
    if files is None:
        raise UserInputError(
            f"{folder} is not a git checkout: adabert submit ships only tracked files "
            "(use `ray job submit --working-dir` to ship a folder as it is)"
        )
    return files


def stage_working_dir(
    folder: Path, staging: Path, files: list[str] | None = None
) -> tuple[int, int]:
    """Copy what may be shipped from ``folder`` to ``staging``: (files, bytes)."""
    files = shippable_files(folder) if files is None else files
    count = size = 0
    for relative in files:
        if _is_secret(relative):
            continue
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / relative, target)
        count += 1
        size += target.stat().st_size
    return count, size


def submit_job(client, command: str, *, working_dir: Path, address: str = "") -> str:
    """Ship ``working_dir`` as it is and run ``command`` in it on the cluster; the job id."""
    try:
        return client.submit_job(
            entrypoint=command,
            runtime_env={
                "working_dir": str(working_dir),
                # Only this variable: the sweep's own ray.init sets its workers' environment,
                # and Ray refuses to merge a job's env_vars with a driver's that name the same
                # variable. `jobs stop` sends SIGTERM and kills after this many seconds (Ray's
                # default is 3): time for the sweep to close its MLflow and Optuna records.
                "env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_GRACE_SECONDS)},
                "excludes": EXCLUDES,
            },
        )
    except Exception as exc:
        if isinstance(exc, UserInputError):
            raise
        raise _cluster_error(address or "the cluster", exc) from exc


def status_of(client, job_id: str) -> str:
    return str(client.get_job_status(job_id)).split(".")[-1]


def wait_for(client, job_id: str, *, poll_seconds: float = 2.0) -> str:
    while True:
        status = status_of(client, job_id)
        if status in TERMINAL:
            return status
        time.sleep(poll_seconds)


def follow(client, job_id: str, out=None) -> str:
    """Print the job's logs as they come until it ends; its final status."""
    out = out or sys.stdout

    async def stream() -> None:
        async for lines in client.tail_job_logs(job_id):
            print(lines, end="", file=out, flush=True)

    asyncio.run(stream())
    return wait_for(client, job_id, poll_seconds=0.5)


def _submit_command(args: argparse.Namespace) -> int:
    working_dir = Path(args.working_dir).resolve()
    config = _config_in_working_dir(args.config, working_dir)
    files = shippable_files(working_dir)  # before contacting the cluster
    client = connect(args.address)
    from orchestrator.sweep.cli import shared_storage_overrides
    from orchestrator.sweep.config import BUILTIN_CONFIGS

    if args.storage:
        shared_storage_overrides(args.storage, [])  # a URI without credentials, or one line
    local_config = config if config in BUILTIN_CONFIGS else working_dir / config
    root = results_root_for(args, local_config)
    command = entrypoint(config, list(args.set), args.smoke_test, root, args.storage)
    with tempfile.TemporaryDirectory(prefix="adabert-ship-") as staging:
        count, size = stage_working_dir(working_dir, Path(staging), files)
        print(f"shipping {count} tracked files, {size / 1e6:.1f} MB, from {working_dir}")
        job_id = submit_job(client, command, working_dir=Path(staging), address=args.address)
    print(f"submitted job {job_id} to {args.address}: {command}")
    if args.no_wait:
        print(job_id)
        print(f"follow it: adabert jobs logs --follow {job_id} --address {args.address}")
        return 0
    try:
        status = follow(client, job_id)
    except KeyboardInterrupt:
        print(
            f"\nstopped following; job {job_id} runs on (adabert jobs stop {job_id})",
            file=sys.stderr,
        )
        return 130
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def _call(address: str, action):
    client = connect(address)
    try:
        return client, action(client)
    except Exception as exc:
        if isinstance(exc, UserInputError):
            raise
        if "does not exist" in str(exc) or "not found" in str(exc).lower():
            raise UserInputError(f"no such job on {address}: {_first_line(exc)}") from exc
        raise _cluster_error(address, exc) from exc


def _jobs_list(args: argparse.Namespace) -> int:
    _, jobs = _call(args.address, lambda client: client.list_jobs())
    for job in sorted(jobs, key=lambda j: j.start_time or 0):
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime((job.start_time or 0) / 1000))
        name = job.submission_id or job.job_id
        print(f"{name}\t{str(job.status).split('.')[-1]}\t{started}\t{job.entrypoint}")
    return 0


def _jobs_status(args: argparse.Namespace) -> int:
    _, status = _call(args.address, lambda client: status_of(client, args.job_id))
    print(status)
    return 0


def _jobs_logs(args: argparse.Namespace) -> int:
    if args.follow:
        client, _ = _call(args.address, lambda client: status_of(client, args.job_id))
        status = follow(client, args.job_id)
        print(f"job {args.job_id}: {status}")
        return 0
    _, logs = _call(args.address, lambda client: client.get_job_logs(args.job_id))
    print(logs, end="")
    return 0


def _jobs_stop(args: argparse.Namespace) -> int:
    client, stopped = _call(args.address, lambda client: client.stop_job(args.job_id))
    status = wait_for(client, args.job_id, poll_seconds=0.5)
    print(f"job {args.job_id}: {status}" + ("" if stopped else " (it had already ended)"))
    return 0

"""Storage locations given as a local path or a URI (``s3://``, ``gs://``, ``file://``, ...).

URIs go through pyarrow's filesystems, the layer Ray Tune uses for its own ``storage_path``, so
one location string means the same place to Tune, to the teacher-knowledge cache and to the
sweep's records. Credentials never belong in a location: pyarrow reads them from the
environment (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``, ...).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.errors import UserInputError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(location: str) -> bool:
    """``s3://bucket/x`` or ``file:///x`` is a URI; ``/x``, ``x`` and ``C:\\x`` are paths."""
    return bool(_SCHEME.match(location))


def join(location: str, *parts: str) -> str:
    """A child of ``location``; URIs keep their scheme and use "/" whatever the OS."""
    if not is_uri(location):
        return str(Path(location).joinpath(*parts))
    return "/".join([location.rstrip("/"), *(p.strip("/") for p in parts)])


def location_of(filesystem, path: str) -> str:
    """The inverse of pyarrow's ``from_uri``: a local path as is, else ``<scheme>://<path>``."""
    scheme = filesystem.type_name
    return path if scheme == "local" else f"{scheme}://{path.lstrip('/')}"


def _filesystem(location: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(location)


def check_no_credentials(location: str, what: str) -> None:
    """A URI with a user, password or query (``s3://KEY:SECRET@bucket``, ``?access_key=``) is
    refused, without echoing it: those belong in the environment, not in recorded settings."""
    if not is_uri(location):
        return
    parts = urlsplit(location)
    if parts.username or parts.password or parts.query:
        raise UserInputError(
            f"{what}: a {parts.scheme}:// location must not carry credentials or options; set them "
            "in the environment (e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)"
        )


def check_location(location: str, what: str) -> None:
    """A location that pyarrow cannot open, or where a probe object cannot be written and
    deleted, is a one-line error naming ``what``; the probe is not left behind."""
    check_no_credentials(location, what)
    try:
        fs, path = _filesystem(location)
        probe = f"{path.rstrip('/')}/.adabert-probe-{uuid.uuid4().hex}"
        fs.create_dir(path.rstrip("/") or "/", recursive=True)
        with fs.open_output_stream(probe) as stream:
            stream.write(b"probe")
        fs.delete_file(probe)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... by backend
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(f"{what}: cannot write to {location}: {reason}") from None


def exists(location: str) -> bool:
    import pyarrow.fs

    fs, path = _filesystem(location)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def download(location: str, folder: Path) -> None:
    """Copy the tree at ``location`` into the local ``folder`` (created)."""
    import pyarrow.fs

    fs, path = _filesystem(location)
    folder.mkdir(parents=True, exist_ok=True)
    pyarrow.fs.copy_files(path, str(folder), source_filesystem=fs,
                          destination_filesystem=pyarrow.fs.LocalFileSystem())  # fmt: skip


def upload(folder: Path, location: str, *, last: str | None = None) -> None:
    """Copy the local tree ``folder`` to ``location``; the file named ``last`` goes after every
    other one, so a reader that waits for it never sees a partial copy (object stores have no
    atomic rename of a folder)."""
    fs, path = _filesystem(location)
    base = path.rstrip("/")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(folder).as_posix() == last)
    for file in files:
        target = f"{base}/{file.relative_to(folder).as_posix()}"
        fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        with file.open("rb") as source, fs.open_output_stream(target) as stream:
            shutil.copyfileobj(source, stream, 1 << 20)


@contextlib.contextmanager
def local_copy(location: str) -> Iterator[Path]:
    """A local folder with the tree at ``location``: the folder itself for a path, a temporary
    download (removed afterwards) for a URI."""
    if not is_uri(location):
        yield Path(location)
        return
    with tempfile.TemporaryDirectory(prefix="adabert-") as tmp:
        download(location, Path(tmp))
        yield Path(tmp)

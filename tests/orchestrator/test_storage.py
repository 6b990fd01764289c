"""Locations as paths or URIs (orchestrator/storage.py): joins, credential refusal, the probe
write, uploads that put their completion marker last, and downloads."""

from __future__ import annotations

import pyarrow.fs
import pytest

from orchestrator import storage
from orchestrator.errors import UserInputError


@pytest.mark.parametrize(
    ("location", "uri"),
    [("s3://bucket/x", True), ("gs://b", True), ("file:///tmp/x", True), ("/tmp/x", False),
     ("runs", False), ("C:\\runs", False), ("", False)],
)  # fmt: skip
def test_is_uri(location, uri):
    assert storage.is_uri(location) is uri


def test_join_keeps_the_scheme_and_uses_slashes():
    assert storage.join("s3://bucket/root/", "tune", "/task") == "s3://bucket/root/tune/task"
    assert storage.join("/a/b", "c", "d") == "/a/b/c/d"


def test_location_of_inverts_from_uri(tmp_path):
    local = pyarrow.fs.LocalFileSystem()
    assert storage.location_of(local, str(tmp_path)) == str(tmp_path)
    fs, path = pyarrow.fs.FileSystem.from_uri(f"file://{tmp_path}/x")
    assert storage.location_of(fs, path) == f"{tmp_path}/x"

    class FakeS3:
        type_name = "s3"

    assert storage.location_of(FakeS3(), "bucket/tune/t") == "s3://bucket/tune/t"


@pytest.mark.parametrize(
    "location",
    ["s3://AKIAEXAMPLE:hunter2@bucket/x", "s3://bucket/x?secret_key=hunter2",
     "gs://user@bucket/x"],
)  # fmt: skip
def test_credentials_in_a_location_are_refused_without_echoing_them(location):
    with pytest.raises(UserInputError) as error:
        storage.check_no_credentials(location, "sweep.storage")
    message = str(error.value)
    assert "sweep.storage" in message and "environment" in message
    assert "hunter2" not in message and "AKIA" not in message and "\n" not in message


def test_check_location_writes_and_removes_a_probe(tmp_path):
    storage.check_location(f"file://{tmp_path}/new/folder", "run.cache_dir")
    assert list((tmp_path / "new" / "folder").iterdir()) == []


@pytest.mark.parametrize("kind", ["under a file", "unknown scheme"])
def test_check_location_fails_in_one_line(tmp_path, kind):
    (tmp_path / "a-file").write_text("x")
    location = {
        "under a file": f"file://{tmp_path}/a-file/cache",
        "unknown scheme": "nosuchfs://bucket/cache",
    }[kind]
    with pytest.raises(UserInputError) as error:
        storage.check_location(location, "run.cache_dir")
    message = str(error.value)
    assert message.startswith("run.cache_dir: cannot write to ") and "\n" not in message


class _RecordingFilesystem:
    """What ``upload`` writes, in order."""

    def __init__(self):
        self.written = []

    def create_dir(self, path, recursive=False):
        pass

    def open_output_stream(self, path):
        import io

        written = self.written

        class Stream(io.BytesIO):
            def close(self):
                written.append(path)
                super().close()

        return Stream()


def test_upload_writes_the_marker_last(tmp_path, monkeypatch):
    folder = tmp_path / "entry"
    (folder / "teacher").mkdir(parents=True)
    for name in ("meta.json", "a.parquet", "z.parquet", "teacher/model.safetensors"):
        (folder / name).write_text(name)
    recorder = _RecordingFilesystem()
    monkeypatch.setattr(storage, "_filesystem", lambda location: (recorder, "bucket/entry"))
    storage.upload(folder, "s3://bucket/entry", last="meta.json")
    assert recorder.written[-1] == "bucket/entry/meta.json"
    assert sorted(recorder.written) == sorted(
        f"bucket/entry/{n}"
        for n in ("meta.json", "a.parquet", "z.parquet", "teacher/model.safetensors")
    )


def test_upload_then_local_copy_round_trips(tmp_path):
    folder = tmp_path / "src"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "w.bin").write_bytes(b"\x00\x01weights")
    (folder / "meta.json").write_text("{}")
    remote = f"file://{tmp_path}/remote/entry"
    storage.upload(folder, remote, last="meta.json")
    assert storage.exists(f"{remote}/meta.json") and not storage.exists(f"{remote}/nothing")
    with storage.local_copy(remote) as copy:
        assert (copy / "sub" / "w.bin").read_bytes() == b"\x00\x01weights"
        kept = copy
    assert not kept.exists()  # the temporary download is removed
    with storage.local_copy(str(folder)) as same:
        assert same == folder

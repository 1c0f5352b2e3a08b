"""A "verified" download is verified: the shared object cache, the hash cache and `get`.

The machine-wide object cache is shared by every registry of the user, and a downloaded file
is a hardlink to its cache entry: root (the Docker default) can edit it in place despite its
read-only mode. Nothing in the cache is placed unless it provably is what the pointer says,
a same-size edit is never mistaken for the old content, and a failed `get` places nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hostile import MODELBOX, assert_refused, bytes_read, fingerprint, modelbox

from modelbox.objects import default_cache_dir

if TYPE_CHECKING:
    from conftest import Run
    from s3server import S3Server

BUCKET = "modelbox-security-cache"
MODEL = "team/m"


@pytest.fixture(params=["local", "s3"])
def store_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The registries' store: each one's embedded folder, or a fresh prefix of SeaweedFS."""
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        server.create_bucket(BUCKET)
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("MODELBOX_STORE", f"s3://{BUCKET}/{uuid.uuid4().hex}")
    return str(request.param)


def _registry(path: Path, run: Run, *versions: str) -> tuple[str, str]:
    assert run("init", path).code == 0
    assert run("--repo", path, "model", "create", MODEL).code == 0
    for version in versions:
        assert run("--repo", path, "version", "create", MODEL, version).code == 0
    return ("--repo", str(path))


def _old_file(path: Path, data: bytes) -> Path:
    """A file written an hour ago: old enough for the hash cache to remember it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    past = time.time() - 3600
    os.utime(path, (past, past))
    return path


def _entry(data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return default_cache_dir() / "objects" / "sha256" / digest[:2] / digest[2:]


def _edit_in_place(path: Path, data: bytes) -> None:
    """What root (or the owner, after a chmod) can do to a read-only file: write new bytes
    of the same size into the same inode, then put its mode and mtime back."""
    before = path.stat()
    assert len(data) == before.st_size
    path.chmod(0o644)
    with open(path, "r+b") as stream:
        stream.write(data)
    path.chmod(before.st_mode & 0o777)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns)


def _flip_a_bit(data: bytes, at: int = 1000) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_a_bit_flipped_in_a_cache_entry_is_never_placed(
    tmp_path: Path, run: Run, store_env: str
) -> None:
    data = os.urandom(300_000)
    repo = _registry(tmp_path / "reg", run, "v1")
    assert run(*repo, "artifact", "add", f"{MODEL}@v1", _old_file(tmp_path / "w.bin", data),
               "-q").code == 0
    assert run(*repo, "get", f"{MODEL}@v1", "-o", tmp_path / "first", "-q").code == 0
    (tmp_path / "first" / "w.bin").unlink()  # the entry is now the cache's alone
    _edit_in_place(_entry(data), _flip_a_bit(data))

    result = run(*repo, "get", f"{MODEL}@v1", "-o", tmp_path / "out", "-q")

    assert result.code == 0, result.err
    assert (tmp_path / "out" / "w.bin").read_bytes() == data
    assert _entry(data).read_bytes() == data  # evicted and fetched again from the store


def test_a_same_size_replacement_of_a_cache_entry_is_never_placed(
    tmp_path: Path, run: Run
) -> None:
    data = os.urandom(200_000)
    repo = _registry(tmp_path / "reg", run, "v1")
    assert run(*repo, "artifact", "add", f"{MODEL}@v1", _old_file(tmp_path / "w.bin", data),
               "-q").code == 0
    assert run(*repo, "get", f"{MODEL}@v1", "-o", tmp_path / "first", "-q").code == 0
    entry = _entry(data)
    before = entry.stat()
    forged = entry.with_name("forged")
    forged.write_bytes(os.urandom(len(data)))
    forged.chmod(0o444)
    os.utime(forged, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(forged, entry)

    result = run(*repo, "get", f"{MODEL}@v1", "-o", tmp_path / "out", "-q")

    assert result.code == 0, result.err
    assert (tmp_path / "out" / "w.bin").read_bytes() == data


@pytest.mark.parametrize("kind", ["file", "packed"])
def test_an_edited_download_never_reaches_another_registry(
    tmp_path: Path, run: Run, kind: str
) -> None:
    # Two registries, each with its own store, share this machine's object cache.
    data = os.urandom(300_000 if kind == "file" else 20_000)
    source = tmp_path / "src"
    if kind == "file":
        _old_file(source / "w.bin", data)
        added, placed = source / "w.bin", Path("w.bin")
    else:  # a small file of a folder artifact travels in a pack
        _old_file(source / "d" / "w.bin", data)
        _old_file(source / "d" / "other.bin", os.urandom(20_000))
        added, placed = source / "d", Path("d/w.bin")
    first = _registry(tmp_path / "a", run, "v1")
    second = _registry(tmp_path / "b", run, "v1")
    for repo in (first, second):
        assert run(*repo, "artifact", "add", f"{MODEL}@v1", added, "-q").code == 0
    assert run(*first, "get", f"{MODEL}@v1", "-o", tmp_path / "out-a", "-q").code == 0
    assert (tmp_path / "out-a" / placed).samefile(_entry(data))  # a hardlink: the entry itself

    _edit_in_place(tmp_path / "out-a" / placed, _flip_a_bit(data))

    result = run(*second, "get", f"{MODEL}@v1", "-o", tmp_path / "out-b", "-q")
    assert result.code == 0, result.err
    assert (tmp_path / "out-b" / placed).read_bytes() == data
    again = run(*first, "get", f"{MODEL}@v1", "-o", tmp_path / "out-a2", "-q")
    assert again.code == 0, again.err
    assert (tmp_path / "out-a2" / placed).read_bytes() == data


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_same_size_edit_with_its_mtime_put_back_is_added_anew(
    tmp_path: Path, run: Run, kind: str
) -> None:
    repo = _registry(tmp_path / "reg", run, "v1", "v2")
    old, new = os.urandom(50_000), os.urandom(50_000)
    path = _old_file(tmp_path / "src" / "w.bin", old)
    added = path if kind == "file" else path.parent
    assert run(*repo, "artifact", "add", f"{MODEL}@v1", added, "-q").code == 0

    _edit_in_place(path, new)  # `touch -r`: same size, same mtime, same inode
    result = run(*repo, "artifact", "add", f"{MODEL}@v2", added, "-q")

    assert result.code == 0, result.err
    assert run(*repo, "get", f"{MODEL}@v2", "-o", tmp_path / "out", "-q").code == 0
    assert (tmp_path / "out" / path.relative_to(added.parent)).read_bytes() == new
    if kind == "file":
        [listed] = json.loads(run(*repo, "artifact", "list", f"{MODEL}@v2", "--json").out)
        assert listed["sha256"] == hashlib.sha256(new).hexdigest()


def _store_object(reg: Path, data: bytes) -> str:
    """Where the object of ``data`` lives: a path of the embedded store, or an S3 URL."""
    digest = hashlib.sha256(data).hexdigest()
    root = os.environ.get("MODELBOX_STORE") or str(reg / ".git" / "modelbox" / "store")
    return f"{root}/sha256/{digest[:2]}/{digest[2:]}"


def _damage(location: str, data: bytes, fault: str, server: S3Server | None) -> None:
    if location.startswith("s3://"):
        assert server is not None
        client = server.client()
        if fault == "missing":
            client.rm_file(location)
        else:
            client.pipe_file(location, _flip_a_bit(data))
        return
    path = Path(location)
    if fault == "missing":
        path.unlink()
    else:
        _edit_in_place(path, _flip_a_bit(data))


@pytest.mark.parametrize("fault", ["corrupt", "missing"])
@pytest.mark.parametrize("dest_state", ["absent", "older-copy"])
def test_a_failed_get_places_nothing(
    tmp_path: Path, run: Run, store_env: str, fault: str, dest_state: str,
    request: pytest.FixtureRequest,
) -> None:
    good, bad = os.urandom(100_000), os.urandom(100_000)
    folder = {f"f{n}.bin": os.urandom(5_000 + n) for n in range(5)}
    reg = tmp_path / "reg"
    repo = _registry(reg, run, "v1", "v2")
    for name, content in folder.items():
        _old_file(tmp_path / "src" / "d" / name, content)
    _old_file(tmp_path / "src" / "good.bin", good)
    _old_file(tmp_path / "src" / "bad.bin", bad)
    assert run(*repo, "artifact", "add", f"{MODEL}@v1", tmp_path / "src" / "good.bin",
               "-q").code == 0
    assert run(*repo, "artifact", "add", f"{MODEL}@v2", tmp_path / "src" / "good.bin",
               tmp_path / "src" / "bad.bin", tmp_path / "src" / "d", "-q").code == 0
    # good.bin is cached (and so placed first by an unstaged get).
    assert run(*repo, "get", f"{MODEL}@v1", "-o", tmp_path / "warm", "-q").code == 0
    dest = tmp_path / "out"
    if dest_state == "older-copy":
        dest.mkdir()
        (dest / "good.bin").write_bytes(b"an older copy the user still has")
        (dest / "notes.txt").write_text("mine\n")
    server = request.getfixturevalue("s3_server") if store_env == "s3" else None
    _damage(_store_object(reg, bad), bad, fault, server)
    before = fingerprint(dest)

    result = run(*repo, "get", f"{MODEL}@v2", "-o", dest, "-q")

    assert_refused(result.code, result.err, hashlib.sha256(bad).hexdigest())
    assert fingerprint(dest) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".mbtmp-")] == []
    # The cache may keep what was verified on the way (a retry needs it), nothing else.
    for entry in (default_cache_dir() / "objects" / "sha256").glob("*/*"):
        assert hashlib.sha256(entry.read_bytes()).hexdigest() == entry.parent.name + entry.name


@pytest.mark.stress
def test_a_killed_get_leaves_everything_or_nothing(tmp_path: Path, run: Run) -> None:
    files = {f"shard-{n:02d}.bin": os.urandom(2 << 20) for n in range(40)}
    for name, content in files.items():
        _old_file(tmp_path / "src" / "model" / name, content)
    repo = _registry(tmp_path / "reg", run, "v1")
    assert run(*repo, "artifact", "add", f"{MODEL}@v1", tmp_path / "src" / "model",
               "-q").code == 0
    env = dict(os.environ)
    argv = [MODELBOX, *repo, "get", f"{MODEL}@v1", "-q"]

    def cold_get(attempt: int, dest: Path) -> subprocess.Popen[bytes]:
        shutil.rmtree(tmp_path / "cold-cache", ignore_errors=True)  # a real download each time
        env["MODELBOX_CACHE_DIR"] = str(tmp_path / "cold-cache")
        return subprocess.Popen(
            [*argv, "-o", str(dest)], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    started = time.monotonic()
    assert cold_get(99, tmp_path / "timed").wait() == 0
    whole = time.monotonic() - started
    rng = random.Random(13)
    interrupted = 0
    for attempt in range(20):
        dest = tmp_path / f"out-{attempt}"
        proc = cold_get(attempt, dest)
        time.sleep(rng.uniform(0.2, 1.3) * whole)
        proc.send_signal(signal.SIGKILL)
        interrupted += proc.wait() == -signal.SIGKILL
        # Everything or nothing under the final names: never a partial set.
        if dest.exists():
            placed = sorted(p.name for p in (dest / "model").iterdir())
            assert placed == sorted(files)
            assert all((dest / "model" / n).read_bytes() == files[n] for n in placed)
    assert interrupted  # at least one kill landed mid-get

    # The next get cleans up after the killed ones and completes.
    dest = tmp_path / "out-0"
    result = run(*repo, "get", f"{MODEL}@v1", "-o", dest, "-q")
    assert result.code == 0, result.err
    assert {p.name: p.read_bytes() for p in (dest / "model").iterdir()} == files
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".mbtmp-")] == []
    status = subprocess.run(["git", "status", "--porcelain"], cwd=tmp_path / "reg",
                            capture_output=True, text=True, check=True)
    assert status.stdout == ""
    assert run(*repo, "check").code == 0


@pytest.mark.parametrize("obstacle", ["folder-at-a-file", "file-at-a-folder"])
def test_a_get_that_cannot_place_one_file_places_none(
    tmp_path: Path, run: Run, obstacle: str
) -> None:
    repo = _registry(tmp_path / "reg", run, "v1")
    _old_file(tmp_path / "src" / "a.bin", os.urandom(10_000))
    _old_file(tmp_path / "src" / "z" / "w.bin", os.urandom(10_000))
    assert run(*repo, "artifact", "add", f"{MODEL}@v1", tmp_path / "src" / "a.bin",
               tmp_path / "src" / "z", "-q").code == 0
    dest = tmp_path / "out"
    if obstacle == "folder-at-a-file":
        (dest / "z" / "w.bin").mkdir(parents=True)
    else:
        dest.mkdir()
        (dest / "z").write_text("a file where the folder goes\n")
    before = fingerprint(dest)

    result = run(*repo, "get", f"{MODEL}@v1", "-o", dest, "-q")

    assert_refused(result.code, result.err, str(dest / "z"))
    assert fingerprint(dest) == before  # a.bin, which could go, did not go alone


def test_a_tracked_file_that_changed_fails_the_get_before_anything_is_placed(
    tmp_path: Path, run: Run, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = s3_server
    server.create_bucket(BUCKET)
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    remote = f"s3://{BUCKET}/{uuid.uuid4().hex}/tracked.bin"
    server.client().pipe_file(remote, os.urandom(5_000))
    repo = _registry(tmp_path / "reg", run, "v1")
    assert run(*repo, "artifact", "add", f"{MODEL}@v1",
               _old_file(tmp_path / "src" / "a.bin", os.urandom(10_000)), "-q").code == 0
    assert run(*repo, "artifact", "track", f"{MODEL}@v1", remote).code == 0
    server.client().pipe_file(remote, os.urandom(6_000))  # changed since it was tracked
    dest = tmp_path / "out"

    result = run(*repo, "get", f"{MODEL}@v1", "-o", dest, "-q")

    assert_refused(result.code, result.err, remote)
    assert not dest.exists()


def test_a_cache_entry_left_as_it_was_is_used_without_reading_it(
    tmp_path: Path, run: Run
) -> None:
    # The defence costs a hash only when an entry may have changed, never on every get.
    data = os.urandom(16 << 20)
    repo = _registry(tmp_path / "reg", run, "v1")
    assert run(*repo, "artifact", "add", f"{MODEL}@v1", _old_file(tmp_path / "w.bin", data),
               "-q").code == 0
    assert run(*repo, "get", f"{MODEL}@v1", "-o", tmp_path / "first", "-q").code == 0

    read_before = bytes_read()
    assert run(*repo, "get", f"{MODEL}@v1", "-o", tmp_path / "second", "-q").code == 0
    assert bytes_read() - read_before < 4 << 20
    assert (tmp_path / "second" / "w.bin").samefile(tmp_path / "first" / "w.bin")

    (tmp_path / "first" / "w.bin").unlink()  # moves the entry's ctime: hashed once more
    read_before = bytes_read()
    assert run(*repo, "get", f"{MODEL}@v1", "-o", tmp_path / "third", "-q").code == 0
    assert bytes_read() - read_before >= len(data)
    assert (tmp_path / "third" / "w.bin").samefile(tmp_path / "second" / "w.bin")


@pytest.mark.parametrize("impostor", ["fifo", "symlink", "folder"])
def test_a_cache_entry_that_is_not_a_file_is_replaced_not_read(
    tmp_path: Path, run: Run, impostor: str
) -> None:
    # An empty file's entry has size 0, as a FIFO does: reading one would hang the get.
    repo = _registry(tmp_path / "reg", run, "v1")
    assert run(*repo, "artifact", "add", f"{MODEL}@v1", _old_file(tmp_path / "e.txt", b""),
               "-q").code == 0
    assert run(*repo, "get", f"{MODEL}@v1", "-o", tmp_path / "first", "-q").code == 0
    entry = _entry(b"")
    entry.unlink()
    if impostor == "fifo":
        os.mkfifo(entry)
    elif impostor == "symlink":
        secret = _old_file(tmp_path / "secret", b"")
        entry.symlink_to(secret)
    else:
        entry.mkdir()

    result = modelbox(*repo, "get", f"{MODEL}@v1", "-o", tmp_path / "out", "-q", timeout=30)

    assert result.code == 0, result.err
    placed = tmp_path / "out" / "e.txt"
    assert placed.read_bytes() == b"" and not placed.is_symlink()
    assert entry.is_file() and not entry.is_symlink()


def test_a_rename_that_fails_midway_says_what_was_placed(tmp_path: Path, run: Run) -> None:
    # Every check passes (files where files go) but the kernel refuses one rename: an
    # immutable file (chattr +i, which binds root too) cannot be replaced.
    repo = _registry(tmp_path / "reg", run, "v1")
    for name in ("a.bin", "z.bin"):
        _old_file(tmp_path / "src" / name, os.urandom(10_000))
    assert run(*repo, "artifact", "add", f"{MODEL}@v1", tmp_path / "src" / "a.bin",
               tmp_path / "src" / "z.bin", "-q").code == 0
    dest = tmp_path / "out"
    dest.mkdir()
    for name in ("a.bin", "z.bin"):
        (dest / name).write_bytes(b"older")
    if subprocess.run(["chattr", "+i", dest / "z.bin"], capture_output=True,
                      check=False).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        result = run(*repo, "get", f"{MODEL}@v1", "-o", dest, "-q")
    finally:
        subprocess.run(["chattr", "-i", dest / "z.bin"], check=True)

    assert_refused(result.code, result.err, str(dest / "z.bin"),
                   f"placed before that: {dest / 'a.bin'}")
    assert (dest / "a.bin").read_bytes() == (tmp_path / "src" / "a.bin").read_bytes()
    assert (dest / "z.bin").read_bytes() == b"older"
    assert [p.name for p in dest.iterdir() if p.name.startswith(".mbtmp-")] == []

"""Hashing a file into a local store in one read (``ObjectStore.put_hashing``): what a
checkpoint ingest does with a file the store has never seen."""

from __future__ import annotations

import errno
import fcntl
import io
import mmap
import os
import stat
from pathlib import Path

import pytest

from modelbox.errors import ArtifactError
from modelbox.objects import HashCache, ObjectStore, hash_file, open_store
from modelbox.objects._files import TEMP_PREFIX, DirectWriter
from modelbox.objects.hashing import copy_hashing


def temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def test_a_file_is_stored_under_its_digest_whole_and_read_only(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store"))
    source = tmp_path / "ckpt.bin"
    source.write_bytes(os.urandom(3 << 20) + b"tail")
    digest = store.put_hashing(source)
    assert digest == hash_file(source)
    assert digest is not None
    stored = Path(store.key(digest.sha256))
    assert stored.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o444
    assert temps(tmp_path / "store") == []
    assert store.put_files([(source, digest)]) == 0  # nothing left to upload


def test_a_remote_store_says_it_cannot(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "ckpt.bin"
    source.write_bytes(b"weights")
    digest = store.put_hashing(source)
    if store.url.startswith("s3://"):
        assert digest is None
        assert store.missing([hash_file(source).sha256])  # nothing was sent
    else:
        assert digest == hash_file(source)


def test_an_object_the_store_holds_is_left_as_it_was(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store"))
    source = tmp_path / "ckpt.bin"
    source.write_bytes(b"weights" * 1000)
    first = store.put_hashing(source)
    assert first is not None
    held = os.stat(store.key(first.sha256))
    assert store.put_hashing(source) == first
    again = os.stat(store.key(first.sha256))
    assert (again.st_ino, again.st_mtime_ns) == (held.st_ino, held.st_mtime_ns)
    assert temps(tmp_path / "store") == []


def test_the_digest_is_remembered_once_the_file_is_old_enough(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store"))
    source = tmp_path / "ckpt.bin"
    source.write_bytes(b"weights")
    os.utime(source, (1_000_000_000, 1_000_000_000))  # not "racily clean"
    cache = HashCache(tmp_path / "hashes.db")
    try:
        digest = store.put_hashing(source, cache)
        assert digest is not None
        assert cache.lookup(source.resolve(), os.stat(source)) == digest.sha256
    finally:
        cache.close()


def test_a_source_that_is_not_a_regular_file_leaves_nothing(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store"))
    os.mkfifo(tmp_path / "fifo")
    for source in (tmp_path / "fifo", tmp_path / "missing.bin"):
        with pytest.raises(ArtifactError, match=str(source.name)):
            store.put_hashing(source)
    assert temps(tmp_path / "store") == []
    assert not (tmp_path / "store" / "sha256").exists() or not any(
        p.is_file() for p in (tmp_path / "store" / "sha256").rglob("*"))


def test_a_source_that_changes_while_it_is_copied_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "ckpt.bin"
    source.write_bytes(bytes(6 << 20))
    copied = io.BytesIO()

    def write(chunk: memoryview) -> None:  # a trainer writing again into the file
        if not copied.tell():
            with source.open("r+b") as stream:
                stream.seek(5 << 20)
                stream.write(b"late")
        copied.write(chunk)

    with pytest.raises(ArtifactError, match="changed while"):
        copy_hashing(source, write)


def test_a_failing_destination_raises_its_own_error(tmp_path: Path) -> None:
    source = tmp_path / "ckpt.bin"
    source.write_bytes(bytes(3 << 20))

    def write(chunk: memoryview) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left") as caught:
        copy_hashing(source, write)
    assert not isinstance(caught.value, BufferError)


def _direct(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0))


def _takes_direct(folder: Path) -> bool:
    probe = folder / f"probe-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | getattr(os, "O_DIRECT", 0)))
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)
    return hasattr(os, "O_DIRECT")


@pytest.mark.parametrize("where", ["disk", "tmpfs"])
def test_a_direct_writer_writes_every_byte_and_stops_skipping_the_cache_when_unaligned(
    tmp_path: Path, where: str
) -> None:
    folder = tmp_path if where == "disk" else Path("/dev/shm")
    if not folder.is_dir():
        pytest.skip("no /dev/shm here")
    target = folder / f"direct-{os.getpid()}-{where}.bin"
    data = os.urandom(3 << 20) + b"an unaligned tail"
    aligned = mmap.mmap(-1, 1 << 20)  # page-aligned memory, as copy_hashing gives
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write = DirectWriter(fd)
        for start in range(0, 3 << 20, 1 << 20):
            aligned[:] = data[start:start + (1 << 20)]
            write(memoryview(aligned))
        assert _direct(fd) == _takes_direct(folder)  # aligned chunks skip the cache
        write(memoryview(data[3 << 20:]))
        assert not _direct(fd)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        assert target.read_bytes() == data
    finally:
        target.unlink()

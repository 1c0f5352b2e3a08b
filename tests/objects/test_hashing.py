"""Hashing files, and the persistent hash cache that makes re-hashing cost one stat."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelbox.errors import ArtifactError
from modelbox.objects import FileDigest, HashCache, default_cache_dir, hash_file
from modelbox.objects.hashing import CHUNK_SIZE

AN_HOUR_AGO_NS = time.time_ns() - 3600 * 10**9


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[HashCache]:
    with HashCache(tmp_path / "hashes.sqlite") as cache:
        yield cache


def write(path: Path, data: bytes, *, mtime_ns: int | None = AN_HOUR_AGO_NS) -> Path:
    path.write_bytes(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE - 7])
def test_hash_file_matches_hashlib(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = write(tmp_path / "f", data)
    assert hash_file(path) == FileDigest(hashlib.sha256(data).hexdigest(), size)


def test_a_cached_hash_is_returned_without_reading_the_file(
    tmp_path: Path, cache: HashCache
) -> None:
    path = write(tmp_path / "model.bin", b"A" * 1000)
    hash_file(path, cache=cache)
    # A record that the content contradicts: only a cache that skips reading returns it.
    # (Rewriting the file can no longer show it: the rewrite moves its ctime.)
    cache.store(path, path.stat(), "f" * 64)
    assert hash_file(path, cache=cache) == FileDigest("f" * 64, 1000)


def test_a_same_size_edit_with_its_mtime_put_back_makes_the_file_hash_again(
    tmp_path: Path, cache: HashCache
) -> None:
    path = write(tmp_path / "model.bin", b"A" * 1000)
    hash_file(path, cache=cache)
    write(path, b"B" * 1000)  # size, mtime and inode as before; the ctime moved
    assert hash_file(path, cache=cache).sha256 == hashlib.sha256(b"B" * 1000).hexdigest()


def test_a_changed_mtime_makes_the_file_hash_again(tmp_path: Path, cache: HashCache) -> None:
    path = write(tmp_path / "model.bin", b"A" * 1000)
    hash_file(path, cache=cache)
    write(path, b"B" * 1000, mtime_ns=AN_HOUR_AGO_NS + 1)
    assert hash_file(path, cache=cache).sha256 == hashlib.sha256(b"B" * 1000).hexdigest()


def test_a_replaced_file_with_the_same_stat_times_hashes_again(
    tmp_path: Path, cache: HashCache
) -> None:
    path = write(tmp_path / "model.bin", b"A" * 1000)
    hash_file(path, cache=cache)
    replacement = write(tmp_path / "new.bin", b"B" * 1000)
    os.replace(replacement, path)  # a new inode
    assert hash_file(path, cache=cache).sha256 == hashlib.sha256(b"B" * 1000).hexdigest()


def test_the_cache_persists_across_instances(tmp_path: Path) -> None:
    path = write(tmp_path / "model.bin", b"A" * 1000)
    with HashCache(tmp_path / "hashes.sqlite") as cache:
        original = hash_file(path, cache=cache)
    with HashCache(tmp_path / "hashes.sqlite") as cache:
        assert cache.lookup(path, path.stat()) == original.sha256


def test_a_file_modified_just_now_is_not_cached(tmp_path: Path, cache: HashCache) -> None:
    # Its mtime could stay the same through another write within the same clock tick.
    path = write(tmp_path / "fresh.bin", b"A" * 1000, mtime_ns=None)
    hash_file(path, cache=cache)
    assert cache.lookup(path, path.stat()) is None


def test_several_processes_share_the_cache(tmp_path: Path) -> None:
    files = [write(tmp_path / f"f{n}", f"content {n}".encode()) for n in range(8)]
    script = (
        "import sys; from pathlib import Path; "
        "from modelbox.objects import HashCache, hash_file; "
        "cache = HashCache(Path(sys.argv[1])); "
        "[hash_file(Path(p), cache=cache) for p in sys.argv[2:]]"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "hashes.sqlite"), *map(str, files)]
        )
        for _ in range(4)
    ]
    assert [child.wait() for child in children] == [0] * 4
    with HashCache(tmp_path / "hashes.sqlite") as cache:
        for path in files:
            assert cache.lookup(path, path.stat()) == hash_file(path).sha256


def test_an_unusable_cache_does_not_stop_hashing(tmp_path: Path) -> None:
    broken = tmp_path / "hashes.sqlite"
    broken.write_bytes(b"this is not an sqlite database, not even close" * 100)
    path = write(tmp_path / "f", b"data")
    with HashCache(broken) as cache:
        assert hash_file(path, cache=cache).sha256 == hashlib.sha256(b"data").hexdigest()


def test_hashing_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"nope\.bin"):
        hash_file(tmp_path / "nope.bin")


def test_hashing_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a regular file"):
        hash_file(tmp_path)


def test_default_cache_dir_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELBOX_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("MODELBOX_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "modelbox"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "modelbox"

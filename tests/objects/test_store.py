"""The object store, run against a local folder and a real S3 server alike."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from modelbox.errors import (
    ArtifactError,
    InvalidValueError,
    ObjectCorruptError,
    ObjectMissingError,
)
from modelbox.objects import (
    FileDigest,
    HashCache,
    ObjectStore,
    default_cache_dir,
    hash_file,
    open_store,
)
from modelbox.objects._files import TEMP_PREFIX

Overwrite = Callable[[str, bytes], None]


def artifact(path: Path, data: bytes) -> tuple[Path, FileDigest]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, hash_file(path)


def cached(tmp_path: Path, digest: str) -> Path:
    """Where the local object cache keeps ``digest`` (``tmp_path`` is the test's)."""
    assert default_cache_dir().is_relative_to(tmp_path)
    return default_cache_dir() / "objects" / "sha256" / digest[:2] / digest[2:]


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_files_round_trip_through_the_store(store: ObjectStore, tmp_path: Path) -> None:
    items = [
        artifact(tmp_path / "src" / "empty.bin", b""),
        artifact(tmp_path / "src" / "small.json", b'{"a": 1}\n'),
        artifact(tmp_path / "src" / "big.bin", os.urandom(3 << 20)),
    ]
    assert store.put_files(items) == 3
    store.get_files([(d.sha256, d.size, tmp_path / "out" / p.name) for p, d in items])
    for path, _ in items:
        assert (tmp_path / "out" / path.name).read_bytes() == path.read_bytes()


def test_a_file_larger_than_one_part_round_trips(store: ObjectStore, tmp_path: Path) -> None:
    # Over the single-PUT limit: a multipart upload on S3.
    path, digest = artifact(tmp_path / "weights.bin", os.urandom(19 << 20))
    assert store.put_files([(path, digest)], jobs=1) == 1
    store.get_files([(digest.sha256, digest.size, tmp_path / "out.bin")])
    assert hash_file(tmp_path / "out.bin") == digest


def test_putting_again_uploads_nothing_the_store_has(store: ObjectStore, tmp_path: Path) -> None:
    first = [artifact(tmp_path / f"{n}.bin", f"file {n}".encode()) for n in range(3)]
    assert store.put_files(first) == 3
    second = [*first, artifact(tmp_path / "new.bin", b"new")]
    assert store.put_files(second) == 1
    assert store.put_files(second) == 0


def test_the_same_content_under_two_names_is_uploaded_once(
    store: ObjectStore, tmp_path: Path
) -> None:
    items = [artifact(tmp_path / "a.bin", b"same"), artifact(tmp_path / "b.bin", b"same")]
    assert store.put_files(items) == 1


def test_missing_reports_exactly_the_absent_digests(store: ObjectStore, tmp_path: Path) -> None:
    present = [artifact(tmp_path / f"p{n}", f"present {n}".encode()) for n in range(40)]
    store.put_files(present)
    absent = {hashlib.sha256(f"absent {n}".encode()).hexdigest() for n in range(40)}
    present_digests = {d.sha256 for _, d in present}
    # Few digests are asked about one by one, many with a listing: check both ways.
    assert store.missing([*list(present_digests)[:3], *list(absent)[:3]]) == set(list(absent)[:3])
    assert store.missing(present_digests | absent) == absent
    assert store.missing([]) == set()


def test_missing_lists_the_store_instead_of_asking_per_object(
    s3_env: object, tmp_path: Path
) -> None:
    store = open_store("s3://modelbox-test/bulk-listing")
    digests = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(200)]
    calls: list[str] = []
    events = store._backend.fs.s3.meta.events  # type: ignore[attr-defined]
    events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    assert store.missing(digests) == set(digests)
    assert "HeadObject" not in calls
    assert calls.count("ListObjectsV2") == 1


def test_get_places_a_read_only_hardlink_to_the_cached_object(
    store: ObjectStore, tmp_path: Path
) -> None:
    path, digest = artifact(tmp_path / "model.pt", b"weights")
    store.put_files([(path, digest)])
    dest = tmp_path / "checkout" / "model.pt"
    store.get_files([(digest.sha256, digest.size, dest)])
    in_cache = cached(tmp_path, digest.sha256)
    assert os.path.samefile(dest, in_cache)
    assert dest.stat().st_nlink == 2
    assert stat.S_IMODE(dest.stat().st_mode) == 0o444


def test_get_creates_the_parent_folders_of_dest(store: ObjectStore, tmp_path: Path) -> None:
    path, digest = artifact(tmp_path / "x.bin", b"x")
    store.put_files([(path, digest)])
    dest = tmp_path / "deep" / "er" / "still" / "x.bin"
    store.get_files([(digest.sha256, digest.size, dest)])
    assert dest.read_bytes() == b"x"


def test_one_object_can_be_placed_at_several_destinations(
    store: ObjectStore, tmp_path: Path
) -> None:
    path, digest = artifact(tmp_path / "x.bin", b"shared")
    store.put_files([(path, digest)])
    dests = [tmp_path / "a" / "x.bin", tmp_path / "b" / "x.bin"]
    store.get_files([(digest.sha256, digest.size, dest) for dest in dests])
    assert all(dest.read_bytes() == b"shared" for dest in dests)


def test_get_replaces_an_existing_dest(store: ObjectStore, tmp_path: Path) -> None:
    path, digest = artifact(tmp_path / "x.bin", b"new content")
    store.put_files([(path, digest)])
    dest = tmp_path / "out" / "x.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    store.get_files([(digest.sha256, digest.size, dest)])
    assert dest.read_bytes() == b"new content"


def test_a_bit_flipped_object_is_refused_and_nothing_is_placed_or_cached(
    store: ObjectStore, tmp_path: Path, overwrite: Overwrite
) -> None:
    data = os.urandom(4096)
    path, digest = artifact(tmp_path / "x.bin", data)
    store.put_files([(path, digest)])
    flipped = bytes([data[0] ^ 0x01]) + data[1:]
    overwrite(store.key(digest.sha256), flipped)
    dest = tmp_path / "out" / "x.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"previous")

    with pytest.raises(ObjectCorruptError) as caught:
        store.get_files([(digest.sha256, digest.size, dest)])

    assert digest.sha256 in str(caught.value)
    assert store.key(digest.sha256) in str(caught.value)
    assert caught.value.actual == hashlib.sha256(flipped).hexdigest()
    assert dest.read_bytes() == b"previous"
    assert not cached(tmp_path, digest.sha256).exists()
    assert not list(cached(tmp_path, digest.sha256).parent.glob(f"{TEMP_PREFIX}*"))
    assert not list(dest.parent.glob(f"{TEMP_PREFIX}*"))


def test_a_truncated_object_is_refused(
    store: ObjectStore, tmp_path: Path, overwrite: Overwrite
) -> None:
    path, digest = artifact(tmp_path / "x.bin", os.urandom(10_000))
    store.put_files([(path, digest)])
    overwrite(store.key(digest.sha256), path.read_bytes()[:5_000])
    with pytest.raises(ObjectCorruptError):
        store.get_files([(digest.sha256, digest.size, tmp_path / "out.bin")])
    assert not (tmp_path / "out.bin").exists()
    assert not cached(tmp_path, digest.sha256).exists()


def test_a_missing_object_is_reported_with_its_digest_and_store(
    store: ObjectStore, tmp_path: Path
) -> None:
    digest = hashlib.sha256(b"never uploaded").hexdigest()
    with pytest.raises(ObjectMissingError) as caught:
        store.get_files([(digest, 14, tmp_path / "out.bin")])
    assert digest in str(caught.value)
    assert store.url in str(caught.value)
    assert not (tmp_path / "out.bin").exists()


def test_a_rerun_after_an_interrupted_download_completes_and_cleans_up(
    store: ObjectStore, tmp_path: Path
) -> None:
    path, digest = artifact(tmp_path / "x.bin", os.urandom(100_000))
    store.put_files([(path, digest)])
    dest = tmp_path / "out" / "x.bin"
    in_cache = cached(tmp_path, digest.sha256)
    # What a killed download leaves: half-written temp files in the cache and beside dest.
    pid = dead_pid()
    stale = [
        in_cache.parent / f"{TEMP_PREFIX}host-{pid}-0badf00d-{in_cache.name}",
        dest.parent / f"{TEMP_PREFIX}{_host()}-{pid}-0badf00d-{dest.name}",
        in_cache.parent / f"{TEMP_PREFIX}{_host()}-{pid}-deadbeef-{in_cache.name}",
    ]
    for leftover in stale:
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"half")

    store.get_files([(digest.sha256, digest.size, dest)])

    assert dest.read_bytes() == path.read_bytes()
    assert in_cache.read_bytes() == path.read_bytes()
    # The temps of a dead process on this host are removed; another host's is left alone.
    assert [leftover.exists() for leftover in stale] == [True, False, False]


def test_a_killed_download_is_completed_by_the_next_run(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store"))
    path, digest = artifact(tmp_path / "big.bin", os.urandom(64 << 20))
    store.put_files([(path, digest)])
    dest = tmp_path / "out" / "big.bin"
    script = (
        "import sys; from pathlib import Path; from modelbox.objects import open_store; "
        f"open_store({str(tmp_path / 'store')!r}).get_files("
        f"[({digest.sha256!r}, {digest.size}, Path({str(dest)!r}))], jobs=1)"
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    temps = cached(tmp_path, digest.sha256).parent
    while child.poll() is None and not list(temps.glob(f"{TEMP_PREFIX}*")):
        time.sleep(0.001)
    child.kill()
    assert child.wait() == -9, "the download ended before it could be interrupted"
    assert list(temps.glob(f"{TEMP_PREFIX}*")), "the killed download left no temp file"

    store.get_files([(digest.sha256, digest.size, dest)])

    assert hash_file(dest) == digest
    assert not list(temps.glob(f"{TEMP_PREFIX}*"))


def test_a_corrupted_cached_copy_is_replaced(store: ObjectStore, tmp_path: Path) -> None:
    path, digest = artifact(tmp_path / "x.bin", b"good bytes")
    store.put_files([(path, digest)])
    store.get_files([(digest.sha256, digest.size, tmp_path / "first.bin")])
    in_cache = cached(tmp_path, digest.sha256)
    (tmp_path / "first.bin").unlink()
    in_cache.chmod(0o644)
    in_cache.write_bytes(b"evil bytes")  # same size: the changed ctime gives it away

    store.get_files([(digest.sha256, digest.size, tmp_path / "checked.bin")])
    assert (tmp_path / "checked.bin").read_bytes() == b"good bytes"
    assert in_cache.read_bytes() == b"good bytes"


def test_verify_hashes_even_a_cached_copy_recorded_as_good(
    store: ObjectStore, tmp_path: Path
) -> None:
    path, digest = artifact(tmp_path / "x.bin", b"good bytes")
    store.put_files([(path, digest)])
    store.get_files([(digest.sha256, digest.size, tmp_path / "first.bin")])
    in_cache = cached(tmp_path, digest.sha256)
    (tmp_path / "first.bin").unlink()
    in_cache.chmod(0o644)
    in_cache.write_bytes(b"evil bytes")
    # A record saying the entry is good as it is now: only a full check can tell.
    with HashCache(default_cache_dir() / "hashes.sqlite") as hashes:
        hashes.store(in_cache, in_cache.stat(), digest.sha256)

    store.get_files([(digest.sha256, digest.size, tmp_path / "trusting.bin")])
    assert (tmp_path / "trusting.bin").read_bytes() == b"evil bytes"
    store.get_files([(digest.sha256, digest.size, tmp_path / "checked.bin")], verify=True)
    assert (tmp_path / "checked.bin").read_bytes() == b"good bytes"


def test_a_cached_copy_of_the_wrong_size_is_fetched_again(
    store: ObjectStore, tmp_path: Path
) -> None:
    path, digest = artifact(tmp_path / "x.bin", b"0123456789")
    store.put_files([(path, digest)])
    store.get_files([(digest.sha256, digest.size, tmp_path / "first.bin")])
    in_cache = cached(tmp_path, digest.sha256)
    (tmp_path / "first.bin").unlink()
    in_cache.chmod(0o644)
    in_cache.write_bytes(b"01234")
    store.get_files([(digest.sha256, digest.size, tmp_path / "again.bin")])
    assert (tmp_path / "again.bin").read_bytes() == b"0123456789"


def test_a_source_that_changed_since_hashing_is_not_uploaded(
    store: ObjectStore, tmp_path: Path
) -> None:
    path, digest = artifact(tmp_path / "x.bin", b"A" * 1000)
    path.write_bytes(b"B" * 1000)  # same size, new content
    with pytest.raises(ArtifactError, match=re.escape(str(path))):
        store.put_files([(path, digest)])
    assert store.missing([digest.sha256]) == {digest.sha256}


def test_a_large_source_that_changed_aborts_its_multipart_upload(
    store: ObjectStore, tmp_path: Path
) -> None:
    path, digest = artifact(tmp_path / "x.bin", bytes(17 << 20))
    with path.open("r+b") as stream:
        stream.seek(16 << 20)
        stream.write(b"late change")
    with pytest.raises(ArtifactError, match="changed"):
        store.put_files([(path, digest)])
    assert store.missing([digest.sha256]) == {digest.sha256}
    assert_nothing_half_written(store)


def test_a_source_that_grew_since_hashing_is_not_uploaded(
    store: ObjectStore, tmp_path: Path
) -> None:
    path, digest = artifact(tmp_path / "x.bin", b"short")
    path.write_bytes(b"much longer now")
    with pytest.raises(ArtifactError, match=re.escape(str(path))):
        store.put_files([(path, digest)])


def test_an_unreadable_source_is_an_artifact_error(store: ObjectStore, tmp_path: Path) -> None:
    digest = FileDigest(hashlib.sha256(b"").hexdigest(), 0)
    with pytest.raises(ArtifactError, match=r"gone\.bin"):
        store.put_files([(tmp_path / "gone.bin", digest)])


def test_bytes_round_trip_and_are_verified(
    store: ObjectStore, tmp_path: Path, overwrite: Overwrite
) -> None:
    digest = store.put_bytes(b'{"files": []}')
    assert digest == hashlib.sha256(b'{"files": []}').hexdigest()
    assert store.put_bytes(b'{"files": []}') == digest
    assert store.open_bytes(digest) == b'{"files": []}'
    overwrite(store.key(digest), b'{"files": [1]}')
    with pytest.raises(ObjectCorruptError):
        store.open_bytes(digest)


def test_open_bytes_of_a_missing_object_says_so(store: ObjectStore) -> None:
    with pytest.raises(ObjectMissingError):
        store.open_bytes(hashlib.sha256(b"nothing").hexdigest())


def test_digests_can_be_listed_and_deleted(store: ObjectStore, tmp_path: Path) -> None:
    assert list(store.iter_digests()) == []
    items = [artifact(tmp_path / f"{n}", f"object {n}".encode()) for n in range(5)]
    store.put_files(items)
    digests = {d.sha256 for _, d in items}
    assert set(store.iter_digests()) == digests
    gone = sorted(digests)[:2]
    store.delete([*gone, hashlib.sha256(b"never there").hexdigest()])
    assert set(store.iter_digests()) == digests - set(gone)
    assert store.missing(digests) == set(gone)


def test_keys_follow_the_format_1_layout(store: ObjectStore) -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    assert store.key(digest) == f"{store.url}/sha256/{digest[:2]}/{digest[2:]}"
    with pytest.raises(InvalidValueError):
        store.key("not-a-digest")


def test_progress_is_shown_only_when_asked(
    store: ObjectStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = artifact(tmp_path / "a.bin", b"a" * 1000)
    store.put_files([first])
    assert capsys.readouterr().err == ""  # stderr is no terminal here
    store.put_files([artifact(tmp_path / "b.bin", b"b" * 1000)], progress=True)
    assert "1/1 files" in capsys.readouterr().err


def _host() -> str:
    import re
    import socket

    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16]


def test_one_failed_upload_stops_the_others_and_leaves_no_partial_object(
    store: ObjectStore, tmp_path: Path
) -> None:
    good = [artifact(tmp_path / f"good{n}.bin", os.urandom(9 << 20)) for n in range(3)]
    bad_path, bad_digest = artifact(tmp_path / "bad.bin", b"x" * 100)
    bad_path.write_bytes(b"y" * 100)
    with pytest.raises(ArtifactError, match=re.escape(str(bad_path))):
        store.put_files([(bad_path, bad_digest), *good], jobs=4)
    # Whatever was uploaded is whole; nothing else is left behind.
    for digest in set(store.iter_digests()):
        path = next(p for p, d in good if d.sha256 == digest)
        store.get_files([(digest, path.stat().st_size, tmp_path / "check" / digest)])
    assert_nothing_half_written(store)


def assert_nothing_half_written(store: ObjectStore) -> None:
    """No temp file in a local store, no multipart upload left open on S3."""
    if store.url.startswith("s3://"):
        fs = store._backend.fs  # type: ignore[attr-defined]
        bucket, prefix, _ = fs.split_path(store.url)
        pending = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
        assert not pending.get("Uploads")
    else:
        assert not list(Path(store.url).rglob(f"{TEMP_PREFIX}*"))

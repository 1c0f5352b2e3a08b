"""Transfers of many and of large objects: ranged downloads, bulk batches, interruptions."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from s3server import S3Server

from modelbox.errors import ArtifactError, InvalidValueError, ObjectCorruptError
from modelbox.objects import FileDigest, ObjectStore, default_cache_dir, hash_file, open_store
from modelbox.objects._files import TEMP_PREFIX
from modelbox.objects._s3 import RANGE_SIZE

from .conftest import BUCKET

Overwrite = Callable[[str, bytes], None]
LARGE = 2 * RANGE_SIZE + 12345  # three ranges, the last one short


def artifact(path: Path, data: bytes) -> tuple[Path, FileDigest]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, hash_file(path)


def temps_under(*folders: Path) -> list[Path]:
    return [path for top in folders if top.exists() for path in top.rglob(f"{TEMP_PREFIX}*")]


def objects_dir() -> Path:
    return default_cache_dir() / "objects"


def test_a_large_object_round_trips_in_ranges(store: ObjectStore, tmp_path: Path) -> None:
    path, digest = artifact(tmp_path / "big.bin", os.urandom(LARGE))
    store.put_files([(path, digest)])
    dests = [tmp_path / "a" / "big.bin", tmp_path / "b" / "big.bin"]
    store.get_files([(digest.sha256, digest.size, dest) for dest in dests])
    assert all(hash_file(dest) == digest for dest in dests)
    assert not temps_under(objects_dir(), tmp_path / "a", tmp_path / "b")


def test_a_bit_flipped_in_the_middle_of_a_large_object_is_refused(
    store: ObjectStore, tmp_path: Path, overwrite: Overwrite
) -> None:
    data = bytearray(os.urandom(LARGE))
    path, digest = artifact(tmp_path / "big.bin", bytes(data))
    store.put_files([(path, digest)])
    data[RANGE_SIZE + 1000] ^= 0x10  # in the second range
    overwrite(store.key(digest.sha256), bytes(data))
    dest = tmp_path / "out" / "big.bin"

    with pytest.raises(ObjectCorruptError) as caught:
        store.get_files([(digest.sha256, digest.size, dest)])

    assert caught.value.digest == digest.sha256
    assert store.key(digest.sha256) in str(caught.value)
    assert caught.value.actual == hashlib.sha256(data).hexdigest()
    assert not dest.exists()
    assert not (objects_dir() / "sha256" / digest.sha256[:2] / digest.sha256[2:]).exists()
    assert not temps_under(objects_dir(), tmp_path / "out")


def test_a_truncated_large_object_is_refused(
    store: ObjectStore, tmp_path: Path, overwrite: Overwrite
) -> None:
    data = os.urandom(LARGE)
    path, digest = artifact(tmp_path / "big.bin", data)
    store.put_files([(path, digest)])
    short = data[: RANGE_SIZE + 100]  # the third range is gone, the second cut short
    overwrite(store.key(digest.sha256), short)

    with pytest.raises(ObjectCorruptError) as caught:
        store.get_files([(digest.sha256, digest.size, tmp_path / "out.bin")])

    assert caught.value.actual == hashlib.sha256(short).hexdigest()
    assert not (tmp_path / "out.bin").exists()
    assert not temps_under(objects_dir(), tmp_path)


def test_a_pointer_with_the_wrong_size_is_refused(store: ObjectStore, tmp_path: Path) -> None:
    for name, data in (("small.bin", b"0123456789"), ("big.bin", os.urandom(LARGE))):
        path, digest = artifact(tmp_path / name, data)
        store.put_files([(path, digest)])
        with pytest.raises(InvalidValueError, match="pointer is wrong"):
            store.get_files([(digest.sha256, digest.size + 1, tmp_path / "out" / name)])
        assert not (tmp_path / "out" / name).exists()


def test_one_corrupt_object_among_many_is_named_and_not_placed(
    store: ObjectStore, tmp_path: Path, overwrite: Overwrite
) -> None:
    items = [artifact(tmp_path / "src" / f"{n}.bin", os.urandom(1000 + n)) for n in range(60)]
    store.put_files(items)
    _, bad = items[37]
    overwrite(store.key(bad.sha256), b"tampered")
    out = tmp_path / "out"

    with pytest.raises(ObjectCorruptError) as caught:
        store.get_files([(d.sha256, d.size, out / p.name) for p, d in items])

    assert caught.value.digest == bad.sha256
    assert not (out / "37.bin").exists()
    assert not temps_under(objects_dir(), out)
    # Whatever was placed is whole and right.
    for path, digest in items:
        placed = out / path.name
        if placed.exists():
            assert hash_file(placed) == digest


def test_many_small_objects_and_large_ones_in_one_batch(
    store: ObjectStore, tmp_path: Path
) -> None:
    items = [artifact(tmp_path / "src" / f"{n}.bin", os.urandom(n * 997)) for n in range(120)]
    items += [artifact(tmp_path / "src" / f"big{n}.bin", os.urandom(LARGE - n)) for n in range(3)]
    assert store.put_files(items, jobs=5) == len(items)
    assert store.missing(d.sha256 for _, d in items) == set()
    out = tmp_path / "out"
    store.get_files([(d.sha256, d.size, out / p.name) for p, d in items], jobs=5)
    for path, digest in items:
        assert hash_file(out / path.name) == digest


def test_many_files_land_in_new_nested_folders_at_once(store: ObjectStore, tmp_path: Path) -> None:
    items = [artifact(tmp_path / "src" / f"{n}.bin", os.urandom(100 + n)) for n in range(64)]
    store.put_files(items)
    out = tmp_path / "out"
    wanted = [(d.sha256, d.size, out / f"d{n % 4}" / f"e{n % 3}" / p.name)
              for n, (p, d) in enumerate(items)]
    store.get_files(wanted, jobs=8)
    for digest, size, dest in wanted:
        assert dest.stat().st_size == size
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == digest


# Interruptions (Ctrl-C) in a child process, then a re-run.

_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from modelbox.objects import FileDigest, open_store

    plan = json.loads(Path(sys.argv[1]).read_text())
    store = open_store(plan["store"])
    if plan["action"] == "get":
        store.get_files([(d, s, Path(p)) for d, s, p in plan["items"]])
    else:
        store.put_files([(Path(p), FileDigest(d, s)) for d, s, p in plan["items"]])
    """
)


def _interrupt(tmp_path: Path, plan: Mapping[str, object], started: Callable[[], bool]) -> bool:
    """Run the plan in a child, send it SIGINT once ``started()``, check that it stopped.

    False when the child finished before the signal landed (a fast or idle machine): the
    caller tries again from scratch; an interrupted child must have stopped on Ctrl-C.
    """
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "plan.json")], stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while child.poll() is None and not started():
        assert time.monotonic() < deadline, "the transfer never started"
        time.sleep(0.002)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    if child.returncode == 0:
        return False
    assert b"KeyboardInterrupt" in stderr, stderr.decode()[-2000:]
    return True


_ATTEMPTS = 3


@pytest.mark.usefixtures("s3_env")
def test_ctrl_c_stops_a_download_cleanly_and_a_rerun_completes(tmp_path: Path) -> None:
    store = open_store(f"s3://{BUCKET}/{tmp_path.name}-get")
    items = [artifact(tmp_path / "src" / f"{n}.bin", os.urandom(4096 + n)) for n in range(300)]
    items.append(artifact(tmp_path / "src" / "big.bin", os.urandom(128 << 20)))
    store.put_files(items)
    out = tmp_path / "out"
    wanted = [(d.sha256, d.size, str(out / p.name)) for p, d in items]

    for _ in range(_ATTEMPTS):
        shutil.rmtree(objects_dir(), ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        if _interrupt(
            tmp_path,
            {"store": store.url, "action": "get", "items": wanted},
            lambda: bool(temps_under(objects_dir())),
        ):
            break
    else:
        pytest.fail(f"the download ended before it could be interrupted, {_ATTEMPTS} times")

    assert not temps_under(objects_dir(), out), "an interrupted download left temp files"
    store.get_files([(d, s, Path(p)) for d, s, p in wanted])
    for path, digest in items:
        assert hash_file(out / path.name) == digest


def test_ctrl_c_aborts_a_multipart_upload_and_a_rerun_completes(
    s3_env: S3Server, tmp_path: Path
) -> None:
    items = [artifact(tmp_path / "src" / "big.bin", os.urandom(192 << 20))]
    items += [artifact(tmp_path / "src" / f"{n}.bin", os.urandom(1000 + n)) for n in range(20)]
    fs = s3_env.client()

    for attempt in range(_ATTEMPTS):
        store = open_store(f"s3://{BUCKET}/{tmp_path.name}-put{attempt}")
        bucket, prefix, _ = fs.split_path(store.url)

        def uploading(bucket: str = bucket, prefix: str = prefix) -> bool:
            pending = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
            return bool(pending.get("Uploads"))

        plan = {
            "store": store.url,
            "action": "put",
            "items": [(d.sha256, d.size, str(p)) for p, d in items],
        }
        if _interrupt(tmp_path, plan, uploading):
            break
    else:
        pytest.fail(f"the upload ended before it could be interrupted, {_ATTEMPTS} times")

    assert not uploading(), "an interrupted multipart upload was left open"
    assert items[0][1].sha256 in store.missing([items[0][1].sha256])
    assert store.put_files(items) >= 1
    assert store.missing(d.sha256 for _, d in items) == set()


# Memory

_RSS_CHILD = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from modelbox.objects import hash_file, open_store

    store = open_store(sys.argv[1])
    small, big = Path(sys.argv[2]), Path(sys.argv[3])
    warm = hash_file(small)
    store.put_files([(small, warm)])  # everything is imported and connected now
    store.get_files([(warm.sha256, warm.size, small.with_suffix(".out"))])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    digest = hash_file(big)
    store.put_files([(big, digest)])
    store.get_files([(digest.sha256, digest.size, big.with_suffix(".out"))])
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) // 1024)
    """
)


@pytest.mark.usefixtures("s3_env")
def test_a_large_transfer_holds_a_bounded_amount_of_memory(tmp_path: Path) -> None:
    size = 320 << 20  # held whole, it would show
    small = tmp_path / "small.bin"
    small.write_bytes(b"warm up")
    big = tmp_path / "big.bin"
    with big.open("wb") as stream:
        for _ in range(size // (1 << 20)):
            stream.write(os.urandom(1 << 20))
    result = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, f"s3://{BUCKET}/{tmp_path.name}-rss", str(small),
         str(big)],
        capture_output=True, text=True, check=True,
    )
    grown_mb = int(result.stdout.strip().splitlines()[-1])
    assert grown_mb < 100, f"peak RSS grew by {grown_mb} MB for a {size >> 20} MiB file"
    assert hash_file(big.with_suffix(".out")) == hash_file(big)


def test_placing_over_a_folder_is_refused_and_over_a_file_replaces_it(
    store: ObjectStore, tmp_path: Path
) -> None:
    path, digest = artifact(tmp_path / "src" / "x.bin", b"content")
    store.put_files([(path, digest)])
    folder = tmp_path / "out" / "folder"
    (folder / "inside").mkdir(parents=True)
    with pytest.raises(ArtifactError, match="it is a folder"):
        store.get_files([(digest.sha256, digest.size, folder)])
    existing = tmp_path / "out" / "existing.bin"
    existing.write_bytes(b"old")
    dangling = tmp_path / "out" / "dangling.bin"
    dangling.symlink_to(tmp_path / "nowhere")
    store.get_files([(digest.sha256, digest.size, dest) for dest in (existing, dangling)])
    assert existing.read_bytes() == dangling.read_bytes() == b"content"
    assert not dangling.is_symlink()
    store.get_files([(digest.sha256, digest.size, existing)])  # already the cached file
    assert existing.read_bytes() == b"content"
    assert not temps_under(tmp_path / "out")

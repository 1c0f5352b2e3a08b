"""Packs: small files stored several to an object, on both stores."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hostile import bytes_read

from modelbox.errors import ArtifactError, ObjectCorruptError, ObjectMissingError
from modelbox.objects import HashCache, ObjectStore, default_cache_dir, hash_file
from modelbox.objects._files import TEMP_PREFIX
from modelbox.objects.packs import (
    PACK_MAX,
    PACK_MIN,
    PACKED_MAX,
    Layout,
    Packed,
    Slot,
    lay_out,
    plan,
)

Overwrite = Callable[[str, bytes], None]


def folder(root: Path, sizes: list[int]) -> list[Path]:
    paths = []
    for index, size in enumerate(sizes):
        path = root / f"d{index % 7}" / f"f{index:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        paths.append(path)
    old = 1_600_000_000  # hashed long after their last change: the hash cache keeps them
    for path in paths:
        os.utime(path, (old, old))
    return sorted(paths)


def names(root: Path, paths: list[Path]) -> list[str]:
    return [path.relative_to(root).as_posix() for path in paths]


def store_all(
    store: ObjectStore, root: Path, paths: list[Path], cache: HashCache
) -> tuple[Layout, list[Packed]]:
    layout = lay_out(paths, names(root, paths), cache)
    store.put_files([(paths[i], digest) for i, digest in layout.loose])
    packed = store.put_packs([job for _, job in layout.packs], hashes=cache)
    return layout, packed


def placements(
    root: Path, paths: list[Path], layout: Layout, packed: list[Packed], out: Path
) -> tuple[list[tuple[str, int, Path]], dict[str, Slot]]:
    rel = names(root, paths)
    items = [(d.sha256, d.size, out / rel[i]) for i, d in layout.loose]
    slots: dict[str, Slot] = {}
    for (indices, _), pack in zip(layout.packs, packed, strict=True):
        size = sum(d.size for d in pack.digests)
        offset = 0
        for index, digest in zip(indices, pack.digests, strict=True):
            items.append((digest.sha256, digest.size, out / rel[index]))
            slots[digest.sha256] = Slot(pack.sha256, offset, size)
            offset += digest.size
    return items, slots


def temps_under(*folders: Path) -> list[Path]:
    return [path for top in folders if top.exists() for path in top.rglob(f"{TEMP_PREFIX}*")]


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[HashCache]:
    with HashCache(tmp_path / "hashes.sqlite") as hashes:
        yield hashes


def test_which_files_share_a_pack_depends_on_paths_and_sizes_only() -> None:
    files = [(f"shard/{n:05d}.bin", 65536) for n in range(2000)]
    groups = plan(files)
    assert [i for group in groups for i in group] == list(range(2000))
    sizes = [sum(files[i][1] for i in group) for group in groups]
    assert all(size <= PACK_MAX for size in sizes)
    assert all(size >= PACK_MIN for size in sizes[:-1])
    assert 2000 * 65536 // PACK_MAX <= len(groups) <= 2000 * 65536 // PACK_MIN
    # Another file in the middle moves the cuts of its neighbourhood only.
    grown = plan([*files[:1000], ("shard/00999a.bin", 65536), *files[1000:]])
    before = {tuple(files[i][0] for i in g) for g in groups}
    after = {tuple(([*files[:1000], ("shard/00999a.bin", 0), *files[1000:]])[i][0] for i in g)
             for g in grown}
    assert len(before - after) <= 3


def test_a_file_too_large_for_a_pack_starts_a_new_one() -> None:
    files = [("a", PACKED_MAX), ("b", PACK_MAX - PACKED_MAX + 1), ("c", 10)]
    assert plan(files) == [[0], [1, 2]]


@pytest.mark.smoke
def test_a_folder_of_small_files_round_trips_as_a_few_objects(
    store: ObjectStore, tmp_path: Path, cache: HashCache
) -> None:
    root = tmp_path / "src"
    paths = folder(root, [20_000 + n for n in range(400)] + [0, 0, 3 * PACKED_MAX])
    layout, packed = store_all(store, root, paths, cache)

    assert len(layout.loose) == 1  # the large file
    assert 1 < len(packed) < 10
    assert set(store.iter_digests()) == {p.sha256 for p in packed} | {layout.loose[0][1].sha256}
    out = tmp_path / "out"
    items, slots = placements(root, paths, layout, packed, out)
    store.get_files(items, slots=slots)
    for path in paths:
        assert (out / path.relative_to(root)).read_bytes() == path.read_bytes()
    assert not temps_under(default_cache_dir() / "objects", out)


def test_storing_an_unchanged_folder_again_reads_and_sends_nothing(
    store: ObjectStore, tmp_path: Path, cache: HashCache
) -> None:
    root = tmp_path / "src"
    paths = folder(root, [30_000] * 300)
    _, first = store_all(store, root, paths, cache)
    read_before = bytes_read()

    layout = lay_out(paths, names(root, paths), cache)
    assert layout.recalled() == first
    assert store.put_packs([job for _, job in layout.packs], hashes=cache) == first
    # The kernel's count of this process's reads: not the 9 MB of the files.
    assert bytes_read() - read_before < 1_000_000


def test_changing_one_file_sends_only_its_pack(
    store: ObjectStore, tmp_path: Path, cache: HashCache
) -> None:
    root = tmp_path / "src"
    paths = folder(root, [40_000] * 500)
    _, first = store_all(store, root, paths, cache)
    paths[123].write_bytes(os.urandom(40_000))
    os.utime(paths[123], (1_600_000_100, 1_600_000_100))

    _, second = store_all(store, root, paths, cache)

    assert len(first) == len(second) > 2
    changed = [a for a, b in zip(first, second, strict=True) if a != b]
    assert len(changed) == 1
    assert len(set(store.iter_digests())) == len(first) + 1


@pytest.mark.smoke
def test_a_file_changed_before_it_was_packed_stores_nothing(
    store: ObjectStore, tmp_path: Path, cache: HashCache
) -> None:
    root = tmp_path / "src"
    paths = folder(root, [10_000] * 50)
    for path in paths:
        hash_file(path, cache=cache)
    layout = lay_out(paths, names(root, paths), cache)
    paths[7].write_bytes(os.urandom(10_000))  # a new mtime: read, and found changed

    with pytest.raises(ArtifactError, match="changed"):
        store.put_packs([job for _, job in layout.packs], hashes=cache)
    assert list(store.iter_digests()) == []


def test_a_corrupt_member_is_named_and_not_placed(
    store: ObjectStore, tmp_path: Path, cache: HashCache, overwrite: Overwrite
) -> None:
    root = tmp_path / "src"
    paths = folder(root, [5_000] * 40)
    layout, [pack] = store_all(store, root, paths, cache)
    data = bytearray(b"".join(path.read_bytes() for path in paths))
    data[17 * 5_000 + 3] ^= 0x01  # inside the 18th file
    overwrite(store.key(pack.sha256), bytes(data))
    out = tmp_path / "out"
    items, slots = placements(root, paths, layout, [pack], out)

    with pytest.raises(ObjectCorruptError) as caught:
        store.get_files(items, slots=slots)

    bad = pack.digests[17].sha256
    assert caught.value.digest == bad
    assert store.key(pack.sha256) in str(caught.value)
    assert not (out / names(root, paths)[17]).exists()
    assert not (default_cache_dir() / "objects" / "sha256" / bad[:2] / bad[2:]).exists()
    assert not temps_under(default_cache_dir() / "objects", out)
    for path in paths:  # whatever was placed is whole and right
        placed = out / path.relative_to(root)
        assert not placed.exists() or placed.read_bytes() == path.read_bytes()


def test_a_truncated_pack_is_refused(
    store: ObjectStore, tmp_path: Path, cache: HashCache, overwrite: Overwrite
) -> None:
    root = tmp_path / "src"
    paths = folder(root, [5_000] * 40)
    layout, [pack] = store_all(store, root, paths, cache)
    short = b"".join(path.read_bytes() for path in paths)[:100_000]
    overwrite(store.key(pack.sha256), short)
    out = tmp_path / "out"
    items, slots = placements(root, paths, layout, [pack], out)

    with pytest.raises(ObjectCorruptError) as caught:
        store.get_files(items, slots=slots)

    assert caught.value.digest == pack.sha256
    assert caught.value.actual == hashlib.sha256(short).hexdigest()
    assert not (out / names(root, paths)[39]).exists()


def test_a_missing_pack_is_named(store: ObjectStore, tmp_path: Path, cache: HashCache) -> None:
    root = tmp_path / "src"
    paths = folder(root, [5_000] * 10)
    layout, [pack] = store_all(store, root, paths, cache)
    store.delete([pack.sha256])
    items, slots = placements(root, paths, layout, [pack], tmp_path / "out")

    with pytest.raises(ObjectMissingError) as caught:
        store.get_files(items, slots=slots)
    assert caught.value.digest == pack.sha256


def test_only_the_members_not_cached_are_fetched(
    store: ObjectStore, tmp_path: Path, cache: HashCache, overwrite: Overwrite
) -> None:
    root = tmp_path / "src"
    paths = folder(root, [5_000] * 30)
    layout, [pack] = store_all(store, root, paths, cache)
    items, slots = placements(root, paths, layout, [pack], tmp_path / "first")
    store.get_files(items[:10] + items[20:], slots=slots)
    # The bytes before and after the members still missing are gone: only their span
    # may be read.
    data = b"".join(path.read_bytes() for path in paths)
    overwrite(store.key(pack.sha256), b"\0" * 50_000 + data[50_000:100_000] + b"\0" * 50_000)
    items, slots = placements(root, paths, layout, [pack], tmp_path / "second")

    store.get_files(items, slots=slots)

    for path in paths:
        assert (tmp_path / "second" / path.relative_to(root)).read_bytes() == path.read_bytes()

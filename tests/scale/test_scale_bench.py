"""The benchmark's cached scale registry is reused only while it is the registry it built.

``bench/benchkit/scale_cache.py`` keeps the registries of scenarios 10-13 between runs,
each with a stamp written last that names the registry branch's commit. Every test builds
a tiny one (3 models x 2 versions, through the real probe in a child process) in a cache
folder under tmp_path, then checks what a later run does: reuse it untouched, or build it
again when it was interrupted, written to, or re-seeded.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from benchkit import scale_cache
from benchkit.harness import Bench, Sizes

MODELS, VERSIONS = 3, 2


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setattr(scale_cache, "CACHE", folder)
    return folder


@contextlib.contextmanager
def bench(tmp_path: Path, **options: object) -> Iterator[Bench]:
    """A fresh run's shared state (what each `python bench/run.py` starts with)."""
    work = tmp_path / f"work{len(list(tmp_path.glob('work*')))}"
    work.mkdir()
    with contextlib.ExitStack() as stack:
        yield Bench(False, 1, 1, Sizes(scale=(MODELS, VERSIONS)), work, stack,
                    **options)  # type: ignore[arg-type]  # rebuild_scale / scale_from


def build(tmp_path: Path, **options: object) -> tuple[Path, dict[str, object]]:
    with bench(tmp_path, **options) as run:
        return scale_cache.registry(run, MODELS, VERSIONS)


def test_a_later_run_reuses_the_registry_it_stamped(tmp_path: Path, cache: Path) -> None:
    path, stamp = build(tmp_path)
    marker = path / ".git" / "bench-marker"
    marker.write_text("kept")
    again, stamp_again = build(tmp_path)
    assert again == path and marker.exists()
    assert stamp_again == stamp
    assert stamp["models"] == MODELS and stamp["source"] == "build-registry probe"


def test_a_registry_without_its_stamp_is_built_again(tmp_path: Path, cache: Path) -> None:
    path, _ = build(tmp_path)
    (path / ".git" / "bench-marker").write_text("interrupted build")
    (cache / f"{scale_cache.key(MODELS, VERSIONS)}.json").unlink()
    again, _ = build(tmp_path)
    assert not (again / ".git" / "bench-marker").exists()


def test_a_write_in_the_cached_registry_makes_it_stale(tmp_path: Path, cache: Path) -> None:
    path, stamp = build(tmp_path)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "a write in the cache"],
                   cwd=path, check=True)
    again, stamp_again = build(tmp_path)
    assert stamp_again["head"] != stamp["head"] or stamp_again["built"] != stamp["built"]
    head = subprocess.run(["git", "log", "-1", "--format=%s"], cwd=again, check=True,
                          capture_output=True, text=True).stdout.strip()
    assert head != "a write in the cache"


def test_a_stamp_of_another_layout_is_not_trusted(tmp_path: Path, cache: Path) -> None:
    path, _ = build(tmp_path)
    stamp_file = cache / f"{scale_cache.key(MODELS, VERSIONS)}.json"
    stamp = json.loads(stamp_file.read_text())
    stamp_file.write_text(json.dumps({**stamp, "layout": scale_cache.LAYOUT + 1}))
    (path / ".git" / "bench-marker").write_text("old layout")
    again, _ = build(tmp_path)
    assert not (again / ".git" / "bench-marker").exists()


def test_rebuild_and_seed_replace_the_cached_registry(tmp_path: Path, cache: Path) -> None:
    path, _ = build(tmp_path)
    (path / ".git" / "bench-marker").write_text("before --rebuild-scale")
    path, _ = build(tmp_path, rebuild_scale=True)
    assert not (path / ".git" / "bench-marker").exists()
    seed = tmp_path / "elsewhere"
    subprocess.run(["cp", "-a", str(path), str(seed)], check=True)
    (seed / ".git" / "bench-marker").write_text("the seed")
    seeded, seeded_stamp = build(tmp_path, scale_from=seed)
    assert (seeded / ".git" / "bench-marker").read_text() == "the seed"
    assert seeded_stamp["source"] == f"copy of {seed}" and seeded_stamp["built_by"] == "?"
    assert build(tmp_path, scale_from=seed)[1] == seeded_stamp  # the same seed: reused

"""Loose objects as git writes and reads them.

Written at git's zlib level (``core.looseCompression``, else ``core.compression``, else 1:
dulwich alone uses 6, three times slower on a large series document). Read into the work
tree without holding them in memory (``GitRepo.copy_blob``): a loose blob is inflated a
chunk at a time and its id checked as it goes, so a large series document reaches the
work tree at the memory cost of a chunk, and a damaged or swapped object is refused
rather than written."""

from __future__ import annotations

import io
import os
import subprocess
import zlib
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from core_helpers import assert_error, repo_state

from modelbox.errors import GitError
from modelbox.names import parse_model, parse_reference
from modelbox.refs.repo import GitRepo
from modelbox.registry import Registry, metric_points

if TYPE_CHECKING:
    from conftest import Run

# Larger than one chunk inflated (1 MiB) and one read (1 MiB): several rounds of each.
CONTENT = b"".join(b'{"step": %d, "value": 0.%d}\n' % (i, i * 7919) for i in range(150_000))


def _git(repo: Path, *argv: str, data: bytes | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *argv], input=data, check=True,
                          capture_output=True).stdout.decode().strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "repo")
    return tmp_path / "repo"


def _loose(repo: Path, sha: str) -> Path:
    return repo / ".git" / "objects" / sha[:2] / sha[2:]


def _copied(repo: Path, sha: str) -> bytes:
    out = io.BytesIO()
    with closing(GitRepo.open(repo)) as git:
        git.copy_blob(sha, out)
    return out.getvalue()


def test_a_large_loose_blob_is_copied_as_git_wrote_it(repo: Path) -> None:
    sha = _git(repo, "hash-object", "-w", "--stdin", data=CONTENT)
    assert _loose(repo, sha).is_file()
    assert _copied(repo, sha) == CONTENT
    empty = _git(repo, "hash-object", "-w", "--stdin", data=b"")
    assert _copied(repo, empty) == b""


def test_a_packed_blob_is_copied_too(repo: Path) -> None:
    sha = _git(repo, "hash-object", "-w", "--stdin", data=CONTENT)
    _git(repo, "update-ref", "refs/keep", _git(repo, "commit-tree", _git(
        repo, "mktree", data=f"100644 blob {sha}\tdoc.json\n".encode()), "-m", "x"))
    _git(repo, "repack", "-adq")
    _git(repo, "prune-packed")
    assert not _loose(repo, sha).exists()
    assert _copied(repo, sha) == CONTENT


def _plant(repo: Path, sha: str, raw: bytes) -> None:
    """Put ``raw`` (a whole loose object file) where the object ``sha`` lives."""
    path = _loose(repo, sha)
    os.chmod(path, 0o644)
    path.write_bytes(raw)


def test_a_loose_object_whose_content_is_not_its_id_is_refused(repo: Path) -> None:
    """A co-user's disk or a hostile copy swapped another blob in under this one's name:
    the bytes do not hash to the name, and nothing past them is trusted."""
    sha = _git(repo, "hash-object", "-w", "--stdin", data=CONTENT)
    other = CONTENT.replace(b"0.7919", b"6.6666")
    _plant(repo, sha, zlib.compress(b"blob %d\0" % len(other) + other))
    with pytest.raises(GitError, match=f"object {sha} .* is malformed .*does not match"):
        _copied(repo, sha)


@pytest.mark.parametrize("damage", ["truncated", "longer than said", "not zlib", "no header",
                                    "negative size"])
def test_a_damaged_loose_object_is_refused(repo: Path, damage: str) -> None:
    sha = _git(repo, "hash-object", "-w", "--stdin", data=CONTENT)
    raw = _loose(repo, sha).read_bytes()
    planted = {
        "truncated": raw[: len(raw) // 2],
        "longer than said": zlib.compress(b"blob %d\0" % (len(CONTENT) - 1) + CONTENT),
        "not zlib": b"\x00" * 64 + raw,
        "no header": zlib.compress(b"x" * 100),
        "negative size": zlib.compress(b"blob -5\0" + CONTENT),
    }[damage]
    _plant(repo, sha, planted)
    with pytest.raises(GitError, match=f"object {sha} .* is malformed"):
        _copied(repo, sha)


def test_an_object_that_is_not_a_blob_is_refused(repo: Path) -> None:
    tree = _git(repo, "mktree", data=b"")
    assert _loose(repo, tree).is_file()
    with pytest.raises(GitError, match="is not a blob"):
        _copied(repo, tree)


# zlib's second header byte names the level class: 0x01 fastest (1), 0x9c default (2-6),
# 0xda best (7-9); git writes 0x01 by default.
@pytest.mark.parametrize(("config", "flag"), [
    ({}, 0x01), ({"core.compression": "9"}, 0xDA),
    ({"core.compression": "9", "core.looseCompression": "1"}, 0x01),
    ({"core.looseCompression": "6"}, 0x9C)
])
def test_loose_objects_are_written_at_the_level_git_would_use(
        registry_path: Path, config: dict[str, str], flag: int) -> None:
    for key, value in config.items():
        _git(registry_path, "config", key, value)
    with closing(Registry.open(registry_path)) as registry:
        registry.create_model(parse_model("m"))
    commit = _git(registry_path, "rev-parse", "HEAD")
    assert _loose(registry_path, commit).read_bytes()[:2] == bytes([0x78, flag])
    assert _git(registry_path, "fsck", "--strict", "--no-progress") == ""


@pytest.mark.parametrize("key", ["core.compression", "core.looseCompression"])
def test_a_level_that_is_not_a_number_is_one_clear_error(
        registry_path: Path, run: Run, key: str) -> None:
    """dulwich reads it as the repository opens (git refuses to start too): one line."""
    before = repo_state(registry_path)
    _git(registry_path, "config", key, "fast")
    assert_error(run("--repo", str(registry_path), "model", "create", "m"),
                 "cannot be opened", "not valid", "'fast'")
    _git(registry_path, "config", "--unset", key)
    assert repo_state(registry_path) == before


@pytest.mark.parametrize("versions", [0, 70])  # few objects: loose; more than 64: a pack
def test_the_work_tree_gets_the_large_documents_a_batch_wrote(
        registry_path: Path, versions: int) -> None:
    """A batch keeps the large blobs it wrote (a series of megabytes) and writes the work
    tree from them, loose or packed: what the work tree holds is what git holds."""
    model = parse_model("m")
    points = [p for step in range(12_000)
              for p in metric_points({"loss": 1 / (step + 1)}, step=step, wallclock=1.0)]
    with closing(Registry.open(registry_path)) as registry:
        registry.create_model(model)
        with registry.batch():
            for n in range(versions):
                registry.create_version(model, f"v{n}")
            registry.append_metrics(parse_reference("m"), points)
    path = "models/default/m/_metrics.json"
    written = (registry_path / path).read_bytes()
    assert len(written) > 1024 * 1024
    assert written == subprocess.run(["git", "show", f"HEAD:{path}"], cwd=registry_path,
                                     check=True, capture_output=True).stdout
    assert _git(registry_path, "status", "--porcelain") == ""


def test_a_growing_document_leaves_no_old_versions_in_memory(registry_path: Path) -> None:
    """Each commit of a growing series writes a new blob of megabytes; a watcher makes one
    per checkpoint. None stays in the process's object cache once its batch has ended (it
    kept every version of up to 4 MB: 32 MB of stale documents for a whole run)."""
    model = parse_model("m")
    with closing(Registry.open(registry_path)) as registry:
        registry.create_model(model)
        for round_ in range(4):
            points = [p for step in range(round_ * 4_000, (round_ + 1) * 4_000 + 8_000)
                      for p in metric_points({"loss": 1 / (step + 1)}, step=step,
                                             wallclock=1.0)]
            registry.append_metrics(parse_reference("m"), points)
        cached = [sha for sha, (obj, size) in registry.repo._objects.items()
                  if size >= 1024 * 1024]
        assert cached == []
        assert registry.repo._retained == {}
    path = "models/default/m/_metrics.json"
    assert len((registry_path / path).read_bytes()) > 2 * 1024 * 1024

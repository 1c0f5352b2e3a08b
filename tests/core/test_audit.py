"""The audit log: every change one commit with trailers, read back by ``modelbox log``."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from core_helpers import assert_error, git_out

from modelbox.names import parse_model, parse_reference
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Run

M = parse_model("ai/vision/yolo")
AUTHOR = "Test User <test@example.com>"


@pytest.fixture
def registry(registry_path: Path) -> Iterator[Registry]:
    with closing(Registry.open(registry_path)) as reg:
        yield reg


def next_second() -> None:
    """Sleep into the next wall-clock second: commit times have one-second resolution."""
    time.sleep(1.02 - time.time() % 1)


def log_json(run: Run, root: Path, *target: str) -> list[dict[str, str | None]]:
    result = run("--repo", root, "log", *target, "--json")
    assert result.code == 0, result
    events: list[dict[str, str | None]] = json.loads(result.out)
    return events


def test_log_json_carries_who_when_what_before_and_after(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    registry.create_model(M)
    registry.create_version(M, "v1")
    registry.create_version(M, "v2")
    registry.tag(M, "v1", "staging")
    registry.tag(M, "v2", "staging")
    events = log_json(run, registry_path, str(M))
    assert [e["operation"] for e in events] == [
        "tag.move", "tag.assign", "version.create", "version.create", "model.create"
    ]
    newest = events[0]
    assert set(newest) >= {"commit", "author", "time", "operation", "target", "before", "after"}
    assert newest["commit"] == registry.head()
    assert newest["author"] == AUTHOR
    assert (newest["target"], newest["before"], newest["after"]) == (f"{M}:staging", "v1", "v2")
    assert newest["time"] is not None
    when = datetime.fromisoformat(newest["time"])
    assert when.tzinfo is not None
    assert abs(when.timestamp() - time.time()) < 60
    shas = git_out(registry_path, "log", "--format=%H", "-5").split()
    assert [e["commit"] for e in events] == shas


def test_log_of_a_version_shows_its_changes_and_its_tags(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    registry.create_model(M)
    registry.create_version(M, "v1", tags=["staging"])
    registry.create_version(M, "v2")
    registry.set_metadata(parse_reference(f"{M}@v1"), "epochs", 40)
    registry.tag(M, "v2", "staging")
    events = log_json(run, registry_path, f"{M}@v1")
    assert [(e["operation"], e["target"], e["before"], e["after"]) for e in events] == [
        ("tag.move", f"{M}:staging", "v1", "v2"),
        ("version.update", f"{M}@v1", None, "40"),
        ("version.create", f"{M}@v1", None, None),
        ("tag.assign", f"{M}:staging", None, "v1"),
    ]


def test_log_of_a_tag_is_its_history_whichever_command_moved_it(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    registry.create_model(M)
    registry.create_version(M, "v1", tags=["prod"])
    registry.create_version(M, "v2")
    registry.tag(M, "v2", "prod")
    registry.tag(M, "v1", "other")
    registry.untag(M, "prod")
    registry.tag(M, "v1", "prod")
    registry.archive_version(M, "v1", force=True)
    events = log_json(run, registry_path, f"{M}:prod")
    assert [(e["operation"], e["before"], e["after"]) for e in events] == [
        ("tag.remove", "v1", None),
        ("tag.assign", None, "v1"),
        ("tag.remove", "v2", None),
        ("tag.move", "v1", "v2"),
        ("tag.assign", None, "v1"),
    ]
    assert all(e["target"] == f"{M}:prod" for e in events)


def test_log_of_a_bare_model_name_uses_the_default_namespace(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    registry.create_model(parse_model("yolo"))
    registry.create_model(M)
    events = log_json(run, registry_path, "yolo")
    assert [e["target"] for e in events] == ["default/yolo"]
    everything = log_json(run, registry_path)
    assert [e["operation"] for e in everything] == ["model.create", "model.create", "registry.init"]
    assert len(log_json(run, registry_path, "-n", "1")) == 1


def test_commit_messages_carry_trailers_git_can_parse(
    registry: Registry, registry_path: Path
) -> None:
    registry.create_model(M)
    registry.create_version(M, "v1", tags=["staging"])
    registry.create_version(M, "v2")
    registry.tag(M, "v2", "staging")

    def trailers(rev: str) -> list[str]:
        message = git_out(registry_path, "log", "-1", "--format=%B", rev)
        parsed = subprocess.run(
            ["git", "interpret-trailers", "--parse"], input=message, capture_output=True,
            text=True, check=True, cwd=registry_path,
        )
        return parsed.stdout.splitlines()

    assert trailers("HEAD") == [
        "Modelbox-Operation: tag.move",
        f"Modelbox-Target: {M}:staging",
        "Modelbox-Before: v1",
        "Modelbox-After: v2",
    ]
    assert trailers("HEAD~2") == [
        "Modelbox-Operation: version.create",
        f"Modelbox-Target: {M}@v1",
        f"Modelbox-Tag: {M}:staging - -> v1",
    ]
    assert git_out(registry_path, "log", "-1", "--format=%an <%ae>|%cn <%ce>") == (
        f"{AUTHOR}|{AUTHOR}\n"
    )


def test_the_author_is_the_acting_git_identity(
    registry: Registry, registry_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Ada Lovelace")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "ada@example.com")
    registry.create_model(M)
    [event] = registry.log(str(M))
    assert event.author == "Ada Lovelace <ada@example.com>"
    assert git_out(registry_path, "log", "-1", "--format=%an <%ae>") == (
        "Ada Lovelace <ada@example.com>\n"
    )


def test_commits_not_written_by_modelbox_are_skipped_by_log(
    registry: Registry, registry_path: Path
) -> None:
    registry.create_model(M)
    (registry_path / "README.md").write_text("notes\n")
    git_out(registry_path, "add", "README.md")
    git_out(registry_path, "commit", "-q", "-m", "docs: add a readme")
    registry.create_version(M, "v1")
    assert [e.operation for e in registry.log(str(M))] == ["version.create", "model.create"]


def test_resolve_at_answers_which_version_carried_a_tag_at_a_past_time(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    registry.create_model(M)
    registry.create_version(M, "v1")
    registry.create_version(M, "v2")
    registry.tag(M, "v1", "candidate")
    next_second()
    registry.tag(M, "v2", "candidate")
    moved, assigned = log_json(run, registry_path, f"{M}:candidate")
    assert moved["time"] is not None and assigned["time"] is not None
    assert assigned["time"] < moved["time"]
    repo = ("--repo", str(registry_path))

    def at(when: str) -> tuple[int, str]:
        result = run(*repo, "resolve", f"{M}:candidate", "--at", when)
        return result.code, result.out

    assert at(assigned["time"]) == (0, "v1\n")
    assert at(moved["time"]) == (0, "v2\n")
    later = (datetime.fromisoformat(moved["time"]) + timedelta(days=1)).isoformat()
    assert at(later) == (0, "v2\n")
    earlier = (datetime.fromisoformat(assigned["time"]) - timedelta(seconds=1)).isoformat()
    assert_error(run(*repo, "resolve", f"{M}:candidate", "--at", earlier), "pointed to no version")
    assert_error(run(*repo, "resolve", f"{M}:candidate", "--at", "yesterday"), "'yesterday'")
    assert_error(run(*repo, "resolve", f"{M}@v1", "--at", moved["time"]), "MODEL:TAG")

    when = datetime.fromisoformat(assigned["time"])
    assert registry.resolve_at(parse_reference(f"{M}:candidate"), when) == "v1"


def test_resolve_at_after_an_untag_finds_no_version(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    registry.create_model(M)
    registry.create_version(M, "v1", tags=["candidate"])
    next_second()
    registry.untag(M, "candidate")
    now = datetime.now().astimezone().isoformat()
    result = run("--repo", registry_path, "resolve", f"{M}:candidate", "--at", now)
    assert_error(result, "pointed to no version")


def test_a_cold_commit_cache_is_filled_the_same_by_git_log_as_by_dulwich(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh clone has no commit cache: past a few hundred commits the walk reads the
    rest with one ``git log``; both readers must give the very same records."""
    from modelbox.refs import history

    registry.create_model(M)
    with registry.batch():
        for i in range(30):
            registry.create_version(M, f"v{i}", description="caf\u00e9\n\nline two")
            registry.tag(M, f"v{i}", "prod")
    head = registry.head()
    cache = registry.repo.git_dir / "modelbox" / "commits.jsonl"

    def walk(bulk_after: int) -> list[history.CommitRecord]:
        cache.unlink(missing_ok=True)
        monkeypatch.setattr(history, "_BULK_AFTER", bulk_after)
        return list(history.History(registry.repo).walk(head))

    one_by_one = walk(10_000)
    in_bulk = walk(3)
    assert len(one_by_one) > 30
    assert in_bulk == one_by_one
    by_git = history._git_log(registry.repo.git_dir, head or "")
    assert sorted(by_git, key=str) == sorted(one_by_one, key=str)
    again = list(history.History(registry.repo).walk(head))  # from the file it wrote
    assert again == one_by_one

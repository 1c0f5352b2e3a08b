"""The cache of every tag map's history (``.git/modelbox/tag-history.json``, modelbox.tagtimes):
whatever state it is in, the tag times are those a whole walk of the history gives."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from core_helpers import git_out

from modelbox import tagtimes
from modelbox.check import check
from modelbox.names import parse_model, parse_reference
from modelbox.refs import filelog
from modelbox.refs import repo as repo_module
from modelbox.refs.gitcli import git_program
from modelbox.registry import Registry

MODELS = [parse_model("ai/yolo"), parse_model("ai/bert")]
CACHE = Path(".git/modelbox/tag-history.json")


@pytest.fixture
def registry(registry_path: Path) -> Iterator[Registry]:
    """Two models with v1..v3 and a few tag moves."""
    with closing(Registry.open(registry_path)) as reg:
        for model in MODELS:
            reg.create_model(model)
            for version in ("v1", "v2", "v3"):
                reg.create_version(model, version)
        reg.tag(MODELS[0], "v1", "staging")
        reg.tag(MODELS[1], "v2", "candidate")
        yield reg


def head(registry: Registry) -> str:
    sha = registry.repo.ref(registry.branch_ref)
    assert sha is not None
    return sha


def walked(registry: Registry) -> dict[str, list[tuple[str, int, str | None]]]:
    """Every tag map's history from git itself: its own glob pathspec, no cache."""
    out: dict[str, list[tuple[str, int, str | None]]] = {}
    text = git_out(registry.repo.root or Path(), "log", "--first-parent", "--no-renames",
                   "--diff-merges=first-parent", "--format=%x00%H %ct", "--name-status",
                   head(registry), "--", ":(glob)models/**/_tags.json")
    for record in text.split("\0"):
        lines = record.strip().splitlines()
        if lines:
            sha, _, when = lines[0].partition(" ")
            for status, path in (line.split("\t", 1) for line in lines[1:] if line):
                blob = None if status == "D" else git_out(
                    registry.repo.root or Path(), "rev-parse", f"{sha}:{path}").strip()
                out.setdefault(path, []).append((sha, int(when), blob))
    assert out  # the fixture moved tags: an empty oracle would prove nothing
    return out


def tag_refs(root: Path) -> str:
    return git_out(root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/modelbox")


def cached(root: Path) -> dict[str, object]:
    data = json.loads((root / CACHE).read_text())
    assert isinstance(data, dict)
    return data


def test_check_keeps_the_walk_and_the_next_reader_brings_it_forward(
    registry: Registry, registry_path: Path
) -> None:
    assert not (registry_path / CACHE).exists()  # one map's own log: no whole walk
    assert check(registry) == []
    assert cached(registry_path)["commit"] == head(registry)

    registry.create_version(MODELS[0], "v4")  # no tag map written: the cache only moves on
    assert cached(registry_path)["commit"] == head(registry)
    held = head(registry)
    registry.tag(MODELS[0], "v2", "staging")
    registry.tag(MODELS[1], "v3", "candidate")
    assert cached(registry_path)["commit"] == held  # tag writes date from their commits
    assert check(registry) == []  # ... as the whole history does
    expected = walked(registry)
    assert tagtimes.history(registry.repo, head(registry), None) == expected
    data = cached(registry_path)
    assert data["commit"] == head(registry)  # brought forward by the commits since
    assert {p: [tuple(c) for c in cs] for p, cs in data["maps"].items()} == expected  # type: ignore[attr-defined]


def test_refs_made_with_the_cache_are_those_made_without_it(
    registry: Registry, registry_path: Path
) -> None:
    assert check(registry) == []
    registry.tag(MODELS[0], "v3", "staging")
    registry.tag(MODELS[1], "v1", "candidate")
    with_cache = tag_refs(registry_path)
    (registry_path / CACHE).unlink()
    assert registry.sync_refs() == {}  # rebuilt from a whole walk: nothing to change
    assert tag_refs(registry_path) == with_cache


def test_a_rewound_branch_is_walked_again(registry: Registry, registry_path: Path) -> None:
    registry.tag(MODELS[0], "v3", "staging")
    assert check(registry) == []  # the cache holds the head with staging on v3
    git_out(registry_path, "reset", "--hard", "-q", "HEAD~1")
    with closing(Registry.open(registry_path)) as reg:
        reg.tag(MODELS[0], "v2", "staging")  # a new commit the cached one is not under
        assert tagtimes.history(reg.repo, head(reg), None) == walked(reg)
        assert check(reg) == []


def test_a_cache_far_behind_is_brought_forward(
    registry: Registry, registry_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the few first parents walked by hand, git finds the cached commit on the chain:
    writes that moved no tag (a sweep's versions) no longer strand the cache, which made
    every later tag write walk its map's whole history (1.2-1.4 s at 100,000 commits)."""
    assert check(registry) == []
    monkeypatch.setattr(tagtimes, "_WALK", 2)
    for version in ("v4", "v5", "v6"):  # three commits past the walk of 2, no tag moved
        registry.create_version(MODELS[1], version)
    registry.tag(MODELS[1], "v5", "staging")
    git_out(registry_path, "update-ref", "-d", "refs/modelbox/tags/ai/bert/candidate")
    registry.tag(MODELS[1], "v6", "staging")  # a ref to date from history: the cache's
    assert cached(registry_path)["commit"] == head(registry)
    data = cached(registry_path)
    assert {p: [tuple(c) for c in cs] for p, cs in data["maps"].items()} == walked(registry)  # type: ignore[attr-defined]
    assert check(registry) == []


def test_only_the_first_parent_chain_holds_the_cached_commit(
    registry: Registry, registry_path: Path
) -> None:
    """A commit reached through a merge's second parent is not on the chain: the history
    of that side is not the branch's, so a cache made there is not brought forward."""
    base = head(registry)
    git_out(registry_path, "checkout", "-q", "-b", "side")
    git_out(registry_path, "commit", "-q", "--allow-empty", "-m", "side")
    side = git_out(registry_path, "rev-parse", "HEAD").strip()
    git_out(registry_path, "checkout", "-q", "-")
    git_out(registry_path, "commit", "-q", "--allow-empty", "-m", "main")
    git_out(registry_path, "merge", "-q", "--no-ff", "-m", "merge", "side")
    merge = git_out(registry_path, "rev-parse", "HEAD").strip()
    assert tagtimes._on_chain(registry.repo, merge, base)
    assert tagtimes._on_chain(registry.repo, merge, merge)
    assert not tagtimes._on_chain(registry.repo, merge, side)
    assert not tagtimes._on_chain(registry.repo, base, merge)  # a descendant, not a parent


def test_the_few_commits_since_the_cache_are_read_from_their_trees_as_git_lists_them(
    registry: Registry, registry_path: Path
) -> None:
    """Within the hand walk, the commits since the cache are diffed against their first
    parent from the trees (no git process): the same changes as ``git log --first-parent
    --raw`` lists, a merge (against its first parent), a deleted map and a map's mode
    change included."""
    assert check(registry) == []
    since = head(registry)
    registry.tag(MODELS[0], "v2", "staging")
    git_out(registry_path, "checkout", "-q", "-b", "side")
    bert_tags = registry_path / "models" / "ai" / "bert" / "_tags.json"  # on the side branch
    bert_tags.write_text(bert_tags.read_text().replace('"v2"', '"v3"'))
    git_out(registry_path, "commit", "-q", "-am", "side: move candidate")
    git_out(registry_path, "checkout", "-q", "-")
    git_out(registry_path, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    yolo = "models/ai/yolo/_tags.json"
    git_out(registry_path, "update-index", "--chmod=+x", yolo)
    git_out(registry_path, "commit", "-q", "-m", "mode")
    git_out(registry_path, "rm", "-q", "models/ai/bert/_tags.json")
    git_out(registry_path, "commit", "-q", "-m", "no tags for bert")
    now = head(registry)
    chain, found = tagtimes._first_parents(registry.repo, now, since)
    assert found and len(chain) == 4
    from_trees = tagtimes._changes(registry.repo, chain)
    assert from_trees == filelog.file_history(registry.repo, now, None, tagtimes.is_tag_map,
                                              since=since)
    assert set(from_trees) == {yolo, "models/ai/bert/_tags.json"}
    assert from_trees["models/ai/bert/_tags.json"][0][2] is None  # deleted: no blob after


def test_a_big_change_since_the_cache_is_left_to_git_log(
    registry: Registry, registry_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a few thousand changed files (a pulled merge), one git log lists the commits
    since the cache faster than the trees are diffed; the cache comes out the same."""
    assert check(registry) == []
    since = head(registry)
    registry.tag(MODELS[0], "v3", "staging")
    registry.create_version(MODELS[1], "v4")
    monkeypatch.setattr(tagtimes, "_DIFFED", 1)
    chain, found = tagtimes._first_parents(registry.repo, head(registry), since)
    assert found and tagtimes._changes(registry.repo, chain) is None
    tagtimes.history(registry.repo, head(registry), None)  # forward through git log
    data = cached(registry_path)
    assert data["commit"] == head(registry)
    assert {p: [tuple(c) for c in cs] for p, cs in data["maps"].items()} == walked(registry)  # type: ignore[attr-defined]


@pytest.mark.parametrize("cores", [2, 3, 4])
def test_a_walk_split_over_cores_lists_what_one_git_log_lists(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, cores: int
) -> None:
    """A long chain is walked as one git log per core over contiguous parts (parts of two
    commits here): the same changes, newest first, none twice or lost at a cut."""
    for version in ("v3", "v1", "v2"):
        registry.tag(MODELS[0], version, "staging")
        registry.tag(MODELS[1], version, "candidate")
    monkeypatch.setattr(filelog, "_PART", 2)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    cuts = filelog._split_points(git_program() or "git", registry.repo, head(registry), None)
    assert len(cuts) == cores - 1  # the parts really are several
    assert tagtimes.history(registry.repo, head(registry), None) == walked(registry)
    since = git_out(registry.repo.root or Path(), "rev-parse", "HEAD~5").strip()
    whole = filelog.file_history(registry.repo, head(registry), None, tagtimes.is_tag_map)
    recent = filelog.file_history(registry.repo, head(registry), None, tagtimes.is_tag_map,
                                  since=since)
    newer = set(git_out(registry.repo.root or Path(), "rev-list", f"{since}..HEAD").split())
    assert recent == {path: [c for c in changes if c[0] in newer]
                      for path, changes in whole.items()
                      if any(c[0] in newer for c in changes)}


HEAD = '{"kind": "tag-history", "format": 1, '
YOLO = '"models/ai/yolo/_tags.json"'


@pytest.mark.parametrize("damage", [
    "not json",
    HEAD + '"commit": "%s", "maps": {"../../etc/passwd": []}}',
    HEAD + '"commit": "%s", "maps": {' + YOLO + ': [["xyz", 1]]}}',
    HEAD + '"commit": "%s", "maps": {' + YOLO + ': [["%s", "1"]]}}',
    HEAD + '"commit": "%s", "maps": {' + YOLO + ': [["%s", 1, 2]]}}',
    HEAD + '"commit": "%s", "maps": {' + YOLO + ': {"a": 1}}}',
    # each sha is checked for its length and all together for hex: 39 + 41 hex passes one
    HEAD + '"commit": "%s", "maps": {' + YOLO + ': [["' + "a" * 39 + '", 1, "' + "b" * 41
    + '"]]}}',
    HEAD + '"commit": "%s", "maps": {' + YOLO + ': [["' + "A" * 40 + '", 1, null]]}}',
    HEAD + '"commit": "--output=%s..", "maps": {}}',
    HEAD + '"commit": "%s", "maps": []}',
    '{"kind": "tag-history", "format": 2, "commit": "%s", "maps": {}}',
])
def test_a_damaged_cache_is_passed_by(
    registry: Registry, registry_path: Path, damage: str
) -> None:
    """A cache that is not exactly what modelbox writes is ignored and rewritten, never
    trusted in part: an empty history of a map would date its tags 0. A commit that looks
    like an option is refused as malformed (it could not be on the chain either, so it
    would not reach git's command line even without that check)."""
    assert check(registry) == []
    sha = head(registry)
    text = damage.replace("%s", sha) if "--output" not in damage else damage.replace(
        "%s", str(registry_path.parent / "written"))
    (registry_path / CACHE).write_text(text)
    registry.tag(MODELS[0], "v3", "staging")
    assert tagtimes.history(registry.repo, head(registry), None) == walked(registry)
    assert check(registry) == []
    assert cached(registry_path)["commit"] == head(registry)
    assert not (registry_path.parent / "written..").exists()


class _Clock:
    """``time`` for the commits modelbox writes, ten seconds apart: dates that differ."""

    def __init__(self) -> None:
        self.now = 1_700_000_000

    def time(self) -> float:
        self.now += 10
        return float(self.now)

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)


def test_a_write_that_moves_no_tag_keeps_the_dates_its_refs_carry(
    registry: Registry, registry_path: Path
) -> None:
    """Metadata or metrics on a tagged version change its tag ref (the ref names the
    version's folder), not when the tag moved: the date is the old ref's, and no history
    is walked for it. The cache now names the new head, its maps untouched (they cannot
    have changed), so the next tag write has no commit to diff."""
    assert check(registry) == []
    held = cached(registry_path)
    before = tag_refs(registry_path)
    path = registry_path / CACHE
    os.utime(path, ns=(1, 1))
    registry.set_metadata(parse_reference("ai/yolo@v1"), "epochs", 10)
    assert tag_refs(registry_path) != before  # the staging ref follows v1's new folder
    now = cached(registry_path)
    assert now["commit"] == head(registry) != held["commit"]
    assert now["maps"] == held["maps"]
    assert path.stat().st_mtime_ns != 1  # written, not left alone
    assert {p: [tuple(c) for c in cs] for p, cs in now["maps"].items()} == walked(registry)  # type: ignore[attr-defined]
    assert check(registry) == []  # the dates are those a whole walk gives


def ref_dates(root: Path) -> dict[str, int]:
    text = git_out(root, "for-each-ref", "--format=%(refname) %(taggerdate:unix)",
                   "refs/modelbox/tags")
    return {name: int(when) for name, when in (line.split() for line in text.splitlines())}


def test_a_tag_write_dates_what_it_moved_by_its_own_commits(
    registry: Registry, registry_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tag write reads no history: the tag it moved is dated by its commit, the tags
    it left by their refs; the dates are those a whole walk gives (`check`)."""
    monkeypatch.setattr(repo_module, "time", _Clock())
    registry.tag(MODELS[0], "v2", "prod")
    assert check(registry) == []
    held = cached(registry_path)["commit"]
    before = ref_dates(registry_path)
    registry.tag(MODELS[0], "v3", "staging")
    after = ref_dates(registry_path)
    staging, prod = ("refs/modelbox/tags/ai/yolo/" + tag for tag in ("staging", "prod"))
    assert after[prod] == before[prod]
    assert after[staging] == int(git_out(registry_path, "log", "-1", "--format=%ct"))
    assert cached(registry_path)["commit"] == held  # no walk of the tag maps' history
    assert check(registry) == []


def test_a_batch_dates_each_tag_by_the_last_of_its_commits_that_moved_it(
    registry: Registry, registry_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moved twice, once, or away and back within one batch, among other changes: each
    tag's date is the one history gives, not the batch's first or last commit."""
    assert check(registry) == []
    held = cached(registry_path)["commit"]
    monkeypatch.setattr(repo_module, "time", _Clock())
    with registry.batch():
        registry.tag(MODELS[0], "v2", "staging")  # then again, below
        registry.tag(MODELS[0], "v3", "prod")  # once
        registry.set_metadata(parse_reference("ai/bert@v2"), "epochs", 10)
        registry.tag(MODELS[1], "v3", "candidate")  # away, and back below
        registry.tag(MODELS[0], "v3", "staging")
        registry.tag(MODELS[1], "v2", "candidate")
        registry.set_metadata(parse_reference("ai/yolo@v3"), "epochs", 11)
    assert cached(registry_path)["commit"] == held
    assert check(registry) == []
    assert tagtimes.history(registry.repo, head(registry), None) == walked(registry)


def test_a_cache_shared_with_a_hard_linked_copy_is_moved_in_a_file_of_its_own(
    registry: Registry, registry_path: Path, tmp_path: Path
) -> None:
    """The cache's commit is moved in place; a copy made with hard links (`cp -al`) shares
    the file, and must keep naming its own commit."""
    assert check(registry) == []
    linked = tmp_path / "linked.json"
    os.link(registry_path / CACHE, linked)
    before = linked.read_bytes()
    registry.set_metadata(parse_reference("ai/bert@v2"), "epochs", 10)
    assert cached(registry_path)["commit"] == head(registry)
    assert linked.read_bytes() == before
    assert (registry_path / CACHE).stat().st_nlink == 1


def test_a_cache_that_names_another_commit_is_not_renamed(
    registry: Registry, registry_path: Path
) -> None:
    """Only a cache holding the batch's base is moved to its head: one left behind (here,
    a commit back) keeps its commit, and the next read brings it forward by the diffs."""
    assert check(registry) == []
    registry.set_metadata(parse_reference("ai/bert@v2"), "epochs", 10)
    data = cached(registry_path)
    behind = git_out(registry_path, "rev-parse", "HEAD~1").strip()
    text = (registry_path / CACHE).read_text().replace(data["commit"], behind, 1)  # type: ignore[arg-type]
    (registry_path / CACHE).write_text(text)
    registry.set_metadata(parse_reference("ai/bert@v2"), "epochs", 11)
    assert cached(registry_path)["commit"] == behind
    assert tagtimes.history(registry.repo, head(registry), None) == walked(registry)
    assert cached(registry_path)["commit"] == head(registry)


def test_a_tag_moved_away_and_back_in_one_batch_is_dated_by_its_return(
    registry: Registry, registry_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The map ends as it began, but history says the tag moved: its date is the
    commit that moved it back, not the one its old ref carries."""
    assert check(registry) == []
    monkeypatch.setattr(repo_module, "time", _Clock())
    with registry.batch():
        registry.tag(MODELS[0], "v2", "staging")
        registry.tag(MODELS[0], "v1", "staging")
        registry.set_metadata(parse_reference("ai/yolo@v1"), "epochs", 10)
    assert check(registry) == []


def test_a_tag_ref_removed_by_hand_is_dated_from_history(
    registry: Registry, registry_path: Path
) -> None:
    ref = "refs/modelbox/tags/ai/yolo/staging"
    git_out(registry_path, "update-ref", "-d", ref)
    git_out(registry_path, "update-ref", "refs/modelbox/tags/ai/bert/candidate",
            git_out(registry_path, "rev-parse", "HEAD").strip())  # not a tag object
    registry.set_metadata(parse_reference("ai/yolo@v1"), "epochs", 10)
    registry.set_metadata(parse_reference("ai/bert@v2"), "epochs", 10)
    assert ref in tag_refs(registry_path)
    assert check(registry) == []

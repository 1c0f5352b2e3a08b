"""When each unique tag last moved: the commit time that dates its ``refs/modelbox/tags/*``
tag object. Derived from the registry branch's history alone (its first-parent chain), so
every clone derives the same, deterministic object (docs/design.md, "Tags as refs").

Every tag map's history is a ``git log`` over the whole first-parent chain: 14 s at
100,000 commits for all of them (``check``), 0.2-0.9 s for one (a tag write). So the
history of every map, once walked, is kept in ``.git/modelbox/tag-history.json`` with the
commit it holds, and a later commit whose first-parent chain holds that one adds only
the commits since (one ``git log A..B``, milliseconds). A cache that is missing,
unreadable or off the chain (a rewritten branch) is walked again (all maps) or passed by
(one map's own ``git log``); it is derived data, never needed for correctness. A
shallow clone keeps none: its history grows below the commit the cache would name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from modelbox import derived, layout
from modelbox.errors import ModelboxError
from modelbox.refs import GitRepo, gitcli
from modelbox.refs.filelog import Change, file_history

__all__ = ["advance", "history", "move_times", "recent", "write_times"]

_KIND = "tag-history"
# First parents walked with dulwich (~0.1-0.4 ms each) before asking git (~10-20 ms):
# most writes find the cached commit one step back.
_WALK = 8
# Changed files diffed from the trees before one git log is asked instead (~50 µs a file
# in Python; a write changes a handful).
_DIFFED = 2000
#: A write of up to this many commits dates the tags it moved from its own commits.
RECENT = _WALK
_SHA = re.compile(r"[0-9a-f]{40}\Z")
_HEX = re.compile(r"[0-9a-f]*")

Maps = dict[str, list[Change]]


def is_tag_map(path: str) -> bool:
    """Whether ``path`` is a ``_tags.json`` below ``models/`` (git's ``models/**/_tags.json``)."""
    return path.startswith(f"{layout.MODELS}/") and (
        path.endswith(f"/{layout.TAGS_FILE}") or path == f"{layout.MODELS}/{layout.TAGS_FILE}")


def history(repo: GitRepo, commit: str | None, paths: Sequence[str] | None) -> Maps:
    """``_tags.json`` path -> the commits (newest first, with their times) of ``commit``'s
    first-parent chain that changed it; every tag map when ``paths`` is None."""
    if commit is None:
        return {}
    if (repo.common_dir / "shallow").exists():
        # A shallow clone's history is cut where its history ends, and a cache made there
        # would outlive the cut.
        return file_history(repo, commit, paths, is_tag_map)
    maps = _cached(repo, commit)
    if maps is None:
        if paths is not None or gitcli.git_program() is None:
            # One map's own log (a whole walk is for check and sync); without git, the
            # walk reads named maps only.
            return file_history(repo, commit, paths, is_tag_map)
        maps = file_history(repo, commit, None, is_tag_map)
        _store(repo, commit, maps)
    return maps if paths is None else {p: maps[p] for p in paths if p in maps}


def _cached(repo: GitRepo, commit: str) -> Maps | None:
    """Every map's history at ``commit`` from the cache (brought forward, and stored, when
    the cached commit is on ``commit``'s first-parent chain); None if not."""
    loaded = _load(repo)
    if loaded is None:
        return None
    held, maps = loaded
    if held == commit:
        return maps
    chain, found = _first_parents(repo, commit, held)
    # A few commits since (most writes: one): their own changes, no git process.
    added = _changes(repo, chain) if found else None
    if added is None:
        reached = found or (found is None and _on_chain(repo, chain[-1], held))
        if not reached:
            return None
        added = file_history(repo, commit, None, is_tag_map, since=held)
    for path, commits in added.items():
        maps[path] = commits + maps.get(path, [])
    _store(repo, commit, maps)
    return maps


def _first_parents(repo: GitRepo, commit: str, ancestor: str,
                   ) -> tuple[list[str], bool | None]:
    """The first-parent chain from ``commit`` down to ``ancestor`` (not included), walked
    by hand for a few steps, and whether ``ancestor`` was reached: True; False where the
    chain ends first; None (undecided) after :data:`_WALK` steps, ``chain[-1]`` then being
    the commit reached, which git is asked about. Before, the search gave up after 200
    commits; 200 writes that moved no tag (a sweep's versions) then left the cache behind
    for good, and every later tag write walked its map's whole history again (1.2-1.4 s at
    100,000 commits)."""
    chain: list[str] = []
    sha = commit
    for _ in range(_WALK):
        try:
            parents = repo.commit_info(sha).parents
        except ModelboxError:  # a missing or damaged commit (a shallow clone's cut)
            return chain, False
        if not parents:
            return chain, False
        chain.append(sha)
        sha = parents[0].decode("ascii")
        if sha == ancestor:
            return chain, True
    chain.append(sha)
    return chain, None


def _changes(repo: GitRepo, chain: list[str]) -> Maps | None:
    """The tag maps each commit of ``chain`` (newest first) changed against its first
    parent, as ``git log --first-parent --raw`` lists them: from the trees (equal folders
    are skipped unread), not from a git process (two of them cost ~10 ms a write). None
    past :data:`_DIFFED` changed files (a pulled merge of thousands of versions), which
    one ``git log`` lists faster, when git is there."""
    out: Maps = {}
    seen = 0
    for sha in chain:
        info = repo.commit_info(sha)
        parent = repo.commit_info(info.parents[0].decode("ascii"))
        for change in repo.changed_paths(parent.tree.decode("ascii"),
                                         info.tree.decode("ascii")):
            seen += 1
            if seen > _DIFFED and gitcli.git_program() is not None:
                return None
            if is_tag_map(change.path):
                out.setdefault(change.path, []).append(
                    (sha, int(info.commit_time), change.new_sha))
    return out


def _on_chain(repo: GitRepo, commit: str, ancestor: str) -> bool:
    """``git rev-list --first-parent --parents COMMIT ^ANCESTOR`` lists the chain down to
    the first commit ``ancestor`` reaches; ``ancestor`` is on the chain when that commit's
    first parent is ``ancestor`` itself (or ``commit`` is ``ancestor``)."""
    git = gitcli.git_program()
    if git is None:
        return False
    # Not an ancestor at all (a rewritten branch): told at once from the commit-graph,
    # where the listing below would walk the whole chain to find nothing.
    if gitcli.run(git, repo.git_dir, ["merge-base", "--is-ancestor", ancestor,
                                      commit]).code != 0:
        return False
    res = gitcli.run(git, repo.git_dir, ["rev-list", "--first-parent", "--parents", commit,
                                         f"^{ancestor}", "--"])
    if res.code != 0:
        return False
    lines = res.out.splitlines()
    if not lines:
        return commit == ancestor
    last = lines[-1].split()
    return len(last) >= 2 and last[1] == ancestor


def _load(repo: GitRepo) -> tuple[str, Maps] | None:
    """The cache's commit and maps; None if missing or not exactly as :func:`_store`
    writes it (a file anyone with the clone can edit is read as untrusted)."""
    document = derived.load(_path(repo), _KIND)
    if document is None:
        return None
    held, raw = document.get("commit"), document.get("maps")
    if not isinstance(held, str) or not _SHA.match(held) or not isinstance(raw, dict):
        return None
    maps: Maps = {}
    shas: list[str] = []  # checked together below: one regex, not one call per entry
    for path, commits in raw.items():
        if not is_tag_map(path) or type(commits) is not list:
            return None
        out = maps[path] = []
        for entry in commits:
            if type(entry) is not list or len(entry) != 3:
                return None
            sha, when, blob = entry
            if type(sha) is not str or type(when) is not int or not (
                    blob is None or type(blob) is str):
                return None
            shas.append(sha)
            if blob is not None:
                shas.append(blob)
            out.append((sha, when, blob))
    # Every one 40 characters long and all of them together hex: each is a full sha.
    if any(len(sha) != 40 for sha in shas) or not _HEX.fullmatch("".join(shas)):
        return None
    return held, maps


def _store(repo: GitRepo, commit: str, maps: Maps) -> None:
    derived.save(_path(repo), _KIND, {
        "commit": commit,
        "maps": dict(sorted(maps.items()))})  # (json writes each tuple as a list)


def advance(repo: GitRepo, base: str, head: str) -> None:
    """``head`` descends from ``base`` by first parents that wrote no tag map (the caller,
    which made them, knows): every map's history at ``head`` is the one at ``base``, so a
    cache that holds ``base`` now says ``head``, its 40 bytes written in place (~30 µs;
    loading, bringing forward and storing it is ~7 ms at 100,000 versions, and the next
    reader would otherwise diff each of those commits' trees)."""
    derived.retarget(_path(repo), _KIND, "commit", base, head)


def _path(repo: GitRepo) -> Path:
    return derived.folder(repo.git_dir) / "tag-history.json"


def move_times(repo: GitRepo, tags: dict[str, str], commits: list[Change]) -> dict[str, int]:
    """tag -> the time of the oldest commit of the newest run of ``commits`` (a tag map's
    changes, newest first, each with the map's blob after it) in which the tag named what
    it names now (0 if history says nothing: a shallow clone's cut)."""
    return {tag: when or 0 for tag, (when, _) in _newest_runs(repo, tags, commits).items()}


def _newest_runs(repo: GitRepo, tags: dict[str, str], commits: list[Change],
                 ) -> dict[str, tuple[int | None, bool]]:
    """tag -> (the time of the oldest commit of the newest run of ``commits`` in which the
    tag named what it names now, None if none did; whether that run holds every one)."""
    maps: dict[str | None, dict[str, object]] = {}
    out = {}
    for tag, version in tags.items():
        when, whole = None, True
        for _, time, blob in commits:
            if blob not in maps:
                maps[blob] = _tags_in(repo, blob)
            if maps[blob].get(tag) != version:
                whole = False
                break
            when = time
        out[tag] = when, whole
    return out


def recent(repo: GitRepo, chain: list[str]) -> Maps | None:
    """The tag maps a write's own commits changed: ``chain`` is those commits, newest
    first, each the first-parent child of the next (at most :data:`RECENT`; a longer write
    goes through the history). None past :data:`_DIFFED` changed files."""
    if len(chain) > RECENT:
        return None
    return _changes(repo, chain)


def write_times(repo: GitRepo, tags: dict[str, str], commits: list[Change],
                before: str | None) -> dict[str, int | None]:
    """tag -> when it moved to what it names now, read from a write's own changes of its
    map (``commits``, newest first; see :func:`recent`) as :func:`move_times` reads the
    whole history; None where the tag named the same version before them too (the map's
    blob ``before`` the write), so that it moved earlier than the write: the date its ref
    carries says when, or the history does."""
    runs = _newest_runs(repo, tags, commits)
    base = _tags_in(repo, before) if any(whole for _, whole in runs.values()) else {}
    return {tag: None if whole and base.get(tag) == tags[tag] else when
            for tag, (when, whole) in runs.items()}


def _tags_in(repo: GitRepo, blob: str | None) -> dict[str, object]:
    """The tag map in ``blob`` (None: deleted), read leniently: history may hold a broken
    hand edit."""
    if blob is None:
        return {}
    try:
        tags = json.loads(repo.blob_data(blob)).get("tags", {})
    except (ModelboxError, ValueError, AttributeError):
        return {}
    return tags if isinstance(tags, dict) else {}

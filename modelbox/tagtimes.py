"""When each unique tag last moved: the commit time that dates its ``refs/modelbox/tags/*``
tag object. Derived from the registry branch's history alone (its first-parent chain), so
every clone derives the same, deterministic object (docs/design.md, "Tags as refs")."""

from __future__ import annotations

import json
from collections.abc import Sequence

from modelbox import layout
from modelbox.refs import GitRepo
from modelbox.refs.filelog import file_history

__all__ = ["history", "move_times"]

_GLOB = f"{layout.MODELS}/**/{layout.TAGS_FILE}"


def history(repo: GitRepo, commit: str | None, paths: Sequence[str] | None,
            ) -> dict[str, list[tuple[str, int]]]:
    """``_tags.json`` path -> the commits (newest first, with their times) of ``commit``'s
    first-parent chain that changed it; every tag map when ``paths`` is None."""
    if commit is None:
        return {}
    return file_history(repo, commit, paths, _GLOB)


def move_times(repo: GitRepo, path: str, tags: dict[str, str],
               commits: list[tuple[str, int]]) -> dict[str, int]:
    """tag -> the time of the oldest commit of the newest run of ``commits`` (the tag map
    ``path``'s changes, newest first) in which the tag named what it names now (0 if
    history says nothing: a shallow clone's cut)."""
    maps: dict[str, dict[str, object]] = {}
    out = {}
    for tag, version in tags.items():
        when = 0
        for sha, time in commits:
            if sha not in maps:
                maps[sha] = _tags_at(repo, sha, path)
            if maps[sha].get(tag) != version:
                break
            when = time
        out[tag] = when
    return out


def _tags_at(repo: GitRepo, commit: str, path: str) -> dict[str, object]:
    """The tag map at ``commit``, read leniently: history may hold a broken hand edit."""
    data = repo.snapshot(commit).read(path)
    try:
        tags = json.loads(data or b"{}").get("tags", {})
    except (ValueError, AttributeError):
        return {}
    return tags if isinstance(tags, dict) else {}

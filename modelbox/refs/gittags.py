"""Annotated Git tags under ``refs/tags/`` (GTO's promotion tags): read, write, check.

What the tags mean (GTO's grammar, which model moved where) is :mod:`modelbox.gittags`;
this module only knows Git objects: a tag's target commit, tagger and date.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dulwich.objects import Commit, Tag
from dulwich.walk import Walker

from modelbox.errors import GitError
from modelbox.refs import gitcli
from modelbox.refs.repo import GitRepo, _local_offset, _oid

__all__ = ["PREFIX", "TagInfo", "added_in", "create", "read", "read_all", "rename"]

PREFIX = "refs/tags/"


@dataclass(frozen=True)
class TagInfo:
    """An annotated tag: its ref's short name, object, target commit and tagger date."""

    name: str
    sha: str
    target: str
    time: int


def read(repo: GitRepo, name: str, sha: str) -> TagInfo | None:
    """The annotated tag object ``sha`` (the ref ``refs/tags/<name>``) pointing at a
    commit, or None for anything else (a lightweight tag, a tag of a tree or blob, an
    object this repository lacks): GTO ignores those too."""
    if not repo.has_object(sha):
        return None
    obj = repo.object(sha)
    if not isinstance(obj, Tag):
        return None
    kind, target = obj.object
    if kind is not Commit or obj.name.decode("utf-8", "replace") != name:
        return None
    return TagInfo(name, sha, target.decode(), int(obj.tag_time))


def read_all(repo: GitRepo, keep: Callable[[str], bool]) -> dict[str, TagInfo]:
    """Every annotated tag under ``refs/tags/`` whose short name ``keep`` accepts."""
    out = {}
    for ref, sha in repo.refs_under(PREFIX).items():
        name = ref[len(PREFIX):]
        if keep(name):
            info = read(repo, name, sha)
            if info is not None:
                out[name] = info
    return out


def create(repo: GitRepo, name: str, target: str, message: str, tagger: str,
           when: int) -> str:
    """Store an annotated tag ``name`` of the commit ``target`` by ``tagger`` (``Name
    <email>``) dated ``when`` and point ``refs/tags/<name>`` at it; return its sha.

    Raises:
        GitError: the ref exists already (a tag is never moved: GTO's tags are events).
    """
    if repo.ref(PREFIX + name) is not None:
        raise GitError(f"the Git tag {name} exists already")
    tag = Tag()
    tag.object = (Commit, _oid(target))
    tag.name = name.encode()
    tag.tagger = tagger.encode()
    tag.tag_time = when
    tag.tag_timezone = _local_offset(when)
    tag.message = message.encode() + b"\n"
    repo.raw.object_store.add_object(tag)
    sha = tag.id.decode()
    repo.set_ref(PREFIX + name, sha)
    return sha


def added_in(repo: GitRepo, head: str, path: str) -> str | None:
    """The oldest commit reachable from ``head`` that added the file ``path`` (where a
    version was registered), or None if no commit did."""
    git = gitcli.git_program()
    if git is not None:
        res = gitcli.run(git, repo.git_dir, ["log", "--format=%H", "--diff-filter=A",
                                              head, "--", path])
        if res.code != 0:
            raise GitError(f"git log failed in {repo.git_dir}: {res.err.strip()}")
        found = res.out.split()
        return found[-1] if found else None
    oldest = None
    for entry in Walker(repo.raw.object_store, [_oid(head)], paths=[path.encode()]):
        if repo.snapshot(entry.commit.id.decode()).exists(path):
            oldest = entry.commit.id.decode()
    return oldest


def rename(repo: GitRepo, old: str, new: str) -> str:
    """Remake the annotated tag ``old`` as ``new`` (same commit, tagger, date, message),
    point ``refs/tags/<new>`` at it and drop ``refs/tags/<old>``; return the new sha."""
    sha = repo.ref(PREFIX + old)
    obj = None if sha is None else repo.object(sha)
    if not isinstance(obj, Tag):
        raise GitError(f"the Git tag {old} is not an annotated tag")
    if repo.ref(PREFIX + new) is not None:
        raise GitError(f"the Git tag {new} exists already")
    tag = Tag()
    tag.object = obj.object
    tag.name = new.encode()
    tag.tagger = obj.tagger
    tag.tag_time, tag.tag_timezone = obj.tag_time, obj.tag_timezone
    tag.message = obj.message
    repo.raw.object_store.add_object(tag)
    made = tag.id.decode()
    repo.set_ref(PREFIX + new, made)
    repo.delete_ref(PREFIX + old)
    return made

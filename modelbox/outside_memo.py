"""``modelbox check``'s warnings about tags moved outside modelbox, remembered per head.

Those warnings come from every commit reachable from the branch head
(:func:`modelbox.check.outside_moves`): at 100,000 commits, walking them costs seconds on
every check. What a commit can reach never changes, so the warnings of the last head
checked are kept in ``.git/modelbox/check-outside.json``:

* the same head: the same warnings;
* a head that descends from it (new commits, a pull): the new commits' warnings, walked
  alone, before the remembered ones;
* any other head (a reset, a rebase, another branch): a whole walk, remembered anew.

The file also names the engine (:func:`modelbox.verdicts.engine`) and the digest of
``.git/shallow`` (deepening a shallow clone reaches more commits), and carries the SHA-256
of its content: a file of another engine or history, or edited, torn or truncated, is
ignored and written anew. It is written through a temporary file and a rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

from modelbox.check import Problem, outside_moves
from modelbox.verdicts import engine

if TYPE_CHECKING:
    from modelbox.registry import Registry

__all__ = ["FILE", "outside_warnings"]

FILE = "check-outside.json"


def outside_warnings(registry: Registry, head: str | None) -> list[Problem]:
    """:func:`~modelbox.check.outside_moves` of every commit reachable from ``head``."""
    from modelbox.refs.remote import is_ancestor, new_commits

    if head is None:
        return []
    repo = registry.repo
    path = repo.git_dir / "modelbox" / FILE
    key = _key(registry)
    known = _read(path, key)
    if known is not None and known[0] == head:
        return known[1]
    if known is not None and repo.has_object(known[0]) and is_ancestor(repo, known[0], head):
        fresh = outside_moves(registry, registry.history.records(
            new_commits(repo, head, [known[0]])))
        problems = list(dict.fromkeys([*fresh, *known[1]]))
    else:
        problems = outside_moves(registry, registry.history.walk(head))
    _write(path, key, head, problems)
    return problems


def _key(registry: Registry) -> str:
    shallow = registry.repo.git_dir / "shallow"
    try:
        cut = hashlib.sha256(shallow.read_bytes()).hexdigest()
    except OSError:
        cut = "-"
    return f"{engine()} {cut}"


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _read(path: os.PathLike[str], key: str) -> tuple[str, list[Problem]] | None:
    try:
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
        payload = stored["payload"]
        if stored["sha256"] != _digest(payload) or payload["key"] != key:
            return None
        return str(payload["head"]), [Problem(str(p), str(m), warning=True)
                                      for p, m in payload["warnings"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, damaged or foreign: walk again


def _write(path: os.PathLike[str], key: str, head: str, problems: list[Problem]) -> None:
    if any(not p.warning for p in problems):
        return  # outside_moves gives warnings only; anything else is not kept
    payload = {"key": key, "head": head, "warnings": [[p.path, p.message] for p in problems]}
    target = os.fspath(path)
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"payload": payload, "sha256": _digest(payload)}, f)
        os.replace(tmp, target)
    except OSError:  # a read-only git dir: walk again next time
        with contextlib.suppress(OSError):
            os.unlink(tmp)

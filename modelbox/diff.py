"""What changed in the registry between two commits: the review summary of a pull request.

Both sides are committed trees read through :class:`~modelbox.refs.Snapshot`; only the
paths that differ are looked at (equal subtrees are skipped unread), so a diff costs what
changed, not the size of the registry. A revision is a branch, a remote-tracking branch, a
full ref name, ``HEAD``, a full commit sha, any of them followed by ``~N`` / ``^N``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from modelbox import layout, limits
from modelbox.errors import InvalidValueError, ModelboxError
from modelbox.names import parse_model
from modelbox.refs import GitRepo, Snapshot
from modelbox.registry import Registry

__all__ = ["RegistryDiff", "default_revisions", "diff", "resolve_revision", "to_markdown"]

_SHA = re.compile(r"^[0-9a-f]{40}$")
_SUFFIX = re.compile(r"([~^])(\d*)")
_ARTIFACTS = f"/{layout.ARTIFACTS_DIR}/"


# -- revisions -------------------------------------------------------------------------
def resolve_revision(repo: GitRepo, rev: str) -> str:
    """The commit sha ``rev`` names; raise InvalidValueError if it names none."""
    match = re.search(r"(?:[~^]\d*)+$", rev)
    name, suffix = (rev[: match.start()], match.group()) if match and match.start() else (rev, "")
    sha = _lookup(repo, name)
    if sha is None:
        raise InvalidValueError(
            f"{rev!r} names no branch, ref or commit here; give a branch name, a full ref "
            "or a full 40-character commit sha (`git rev-parse REV` prints one)"
        )
    sha = _peel(repo, sha, rev)
    for op, digits in _SUFFIX.findall(suffix):
        count = int(digits) if digits else 1
        steps = [0] * count if op == "~" else [count - 1] if count else []
        for index in steps:
            parents = repo.commit_info(sha).parents
            if index >= len(parents):
                raise InvalidValueError(f"{rev!r}: {sha[:10]} has no such parent")
            sha = parents[index].decode()
    return sha


def _lookup(repo: GitRepo, name: str) -> str | None:
    if _SHA.match(name):
        return name if repo.has_object(name) else None
    candidates = [name] if name.startswith("refs/") or name == "HEAD" else [
        f"refs/heads/{name}", f"refs/remotes/{name}", f"refs/tags/{name}", f"refs/{name}",
    ]
    for candidate in candidates:
        sha = repo.ref(candidate)
        if sha is not None:
            return sha
    return None


def _peel(repo: GitRepo, sha: str, rev: str) -> str:
    """Follow annotated tags to the commit; refuse anything that is not a commit."""
    for _ in range(10):
        target = repo.tag_target(sha)
        if target is None:
            break
        sha = target[0]
    try:
        repo.commit_info(sha)
    except ModelboxError:
        raise InvalidValueError(f"{rev!r} does not name a commit") from None
    return sha


def default_revisions(registry: Registry) -> tuple[str, str]:
    """``(BASE, HEAD)`` when none is given.

    HEAD: the target branch (``--branch``), else the checked-out branch, else the registry
    branch. BASE: the registry branch when HEAD is another branch (a proposal is compared
    with what it would change); for the registry branch itself, its upstream
    (``origin/<branch>``: what a push would publish) when there is one, else itself.
    """
    repo = registry.repo
    head = registry.target_branch or repo.head_branch() or registry.branch
    if head != registry.branch:
        return registry.branch, head
    upstream = f"refs/remotes/origin/{registry.branch}"
    return (upstream if repo.ref(upstream) else registry.branch), head


# -- the diff --------------------------------------------------------------------------
@dataclass
class RegistryDiff:
    """Everything that changed, each list sorted; :meth:`to_json` is the JSON output."""

    base: tuple[str, str | None]  # (revision as given, commit)
    head: tuple[str, str | None]
    models: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    other_files: list[str] = field(default_factory=list)
    # namespace owners set, changed or removed: who reviews what from now on
    namespaces: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.models or self.tags or self.versions or self.artifacts
                    or self.other_files or self.namespaces)

    def to_json(self) -> dict[str, Any]:
        return {
            "base": {"rev": self.base[0], "commit": self.base[1]},
            "head": {"rev": self.head[0], "commit": self.head[1]},
            "models": self.models, "tags": self.tags, "versions": self.versions,
            "artifacts": self.artifacts, "other_files": self.other_files,
            "namespaces": self.namespaces,
        }


def diff(registry: Registry, base: str | None = None, head: str | None = None) -> RegistryDiff:
    """Compare the registry at ``base`` with the registry at ``head``.

    Missing revisions default as :func:`default_revisions` says. Raises InvalidValueError
    for a revision that names no commit, ManifestError for a document that does not parse.
    """
    repo = registry.repo
    default_base, default_head = default_revisions(registry)
    base, head = base or default_base, head or default_head
    old = repo.snapshot(resolve_revision(repo, base))
    new = repo.snapshot(resolve_revision(repo, head))
    out = RegistryDiff((base, old.commit), (head, new.commit))
    models: dict[str, set[str]] = {}  # model -> the kinds of files of it that changed
    for change in repo.changed_paths(old.tree, new.tree):
        path = change.path
        if not path.startswith(layout.MODELS + "/"):
            out.other_files.append(path)
            continue
        model = path[len(layout.MODELS) + 1 :].split("/_", 1)[0]
        if path == layout.namespace_file(model):
            out.namespaces.append(_owner_change(old, new, model, path))
        elif _ARTIFACTS in f"/{path}" and path.endswith(".json"):
            out.artifacts.append(_artifact(old, new, path))
        else:
            models.setdefault(model, set()).add(path)
    for model, paths in sorted(models.items()):
        _model_changes(out, old, new, model, paths)
    out.artifacts.sort(key=lambda a: (a["target"], a["path"]))
    return out


def _doc(snap: Snapshot, path: str) -> dict[str, Any] | None:
    data = snap.read(path)
    if data is None:
        return None
    try:
        doc = limits.loads(data, "")
    except ValueError:
        return None  # `modelbox check` reports a broken document; a diff shows what it can
    return doc if isinstance(doc, dict) else None


def _owner_change(old: Snapshot, new: Snapshot, namespace: str, path: str) -> dict[str, Any]:
    def owners(snap: Snapshot) -> list[str]:
        found = (_doc(snap, path) or {}).get("owners")
        return [str(o) for o in found] if isinstance(found, list) else []

    return {"namespace": namespace, "before": owners(old), "after": owners(new)}


def _model_changes(
    out: RegistryDiff, old: Snapshot, new: Snapshot, model: str, paths: set[str]
) -> None:
    name = parse_model(model)
    model_file = layout.model_file(name)
    if model_file in paths:
        before, after = _doc(old, model_file), _doc(new, model_file)
        if before is None or after is None:
            out.models.append({"model": model, "change": "created" if after else "deleted",
                               "owner": (after or before or {}).get("owner", "")})
    prefix = layout.versions_dir(name) + "/"
    for path in sorted(paths):
        if not (path.startswith(prefix) and path.endswith("/" + layout.VERSION_FILE)):
            continue
        version = path[len(prefix) : -len(layout.VERSION_FILE) - 1]
        before, after = _doc(old, path), _doc(new, path)
        change = _version_change(before, after)
        if change is not None:
            out.versions.append({"model": model, "version": version, "change": change,
                                 "metrics": dict((after or before or {}).get("metrics", {}))})
    tags_file = layout.tags_file(name)
    if tags_file in paths:
        before_tags = (_doc(old, tags_file) or {}).get("tags", {})
        after_tags = (_doc(new, tags_file) or {}).get("tags", {})
        for tag in sorted(before_tags.keys() | after_tags.keys()):
            left, right = before_tags.get(tag), after_tags.get(tag)
            if left == right:
                continue
            change = "added" if left is None else "removed" if right is None else "moved"
            out.tags.append({"model": model, "tag": tag, "before": left, "after": right,
                             "change": change,
                             "metrics": _metric_deltas(old, new, model, left, right)
                             if right is not None else []})


def _version_change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str | None:
    if before is None:
        return "created"
    if after is None:
        return "deleted"
    if bool(before.get("archived")) != bool(after.get("archived")):
        return "archived" if after.get("archived") else "restored"
    return None


def _metrics_of(snaps: list[Snapshot], model: str, version: str | None) -> dict[str, Any]:
    """The version's metric summary, from the first snapshot that has the version."""
    if version is None:
        return {}
    path = layout.version_file(parse_model(model), version)
    for snap in snaps:
        doc = _doc(snap, path)
        if doc is not None:
            return dict(doc.get("metrics", {}))
    return {}


def _metric_deltas(
    old: Snapshot, new: Snapshot, model: str, left: str | None, right: str | None
) -> list[dict[str, Any]]:
    """Per metric key: the value on the version the tag left, on the one it now names
    (a removed tag names no version: no metrics)."""
    before = _metrics_of([old, new], model, left)
    after = _metrics_of([new, old], model, right)
    out = []
    for key in sorted(before.keys() | after.keys()):
        a, b = before.get(key), after.get(key)
        delta = None
        if _number(a) and _number(b):
            delta = round(float(b) - float(a), 12)
        out.append({"key": key, "before": a, "after": b, "delta": delta})
    return out


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _artifact(old: Snapshot, new: Snapshot, path: str) -> dict[str, Any]:
    owner, _, rest = path.partition(_ARTIFACTS)
    model_path = owner[len(layout.MODELS) + 1 :]
    model, _, version_part = model_path.partition("/" + layout.VERSIONS_DIR + "/")
    target = f"{model}@{version_part}" if version_part else model
    before, after = _doc(old, path), _doc(new, path)
    doc = after or before or {}
    change = "added" if before is None else "removed" if after is None else "changed"
    entry: dict[str, Any] = {
        "target": target, "path": str(doc.get("path", rest[: -len(".json")])),
        "change": change, "size": doc.get("size"), "sha256": doc.get("sha256"),
        "uri": doc.get("uri"), "directory": bool(doc.get("directory")),
    }
    if change == "changed" and before is not None:
        entry["size_before"] = before.get("size")
        entry["sha256_before"] = before.get("sha256")
    return entry


# -- Markdown --------------------------------------------------------------------------
def to_markdown(result: RegistryDiff) -> str:
    """The diff as Markdown for a pull-request comment (GitHub/GitLab flavoured)."""
    lines = [f"### modelbox: `{result.base[0]}` -> `{result.head[0]}`", ""]
    lines.append(f"Comparing {_commit(result.base)} with {_commit(result.head)}.")
    lines.append("")
    if result.empty:
        lines.append("No registry changes.")
        return "\n".join(lines) + "\n"
    if result.tags:
        lines += ["#### Tags", "", "| Model | Tag | Before | After | Metrics |",
                  "| --- | --- | --- | --- | --- |"]
        for tag in result.tags:
            metrics = "<br>".join(_metric_line(m) for m in tag["metrics"]) or ""
            lines.append(f"| `{tag['model']}` | `{tag['tag']}` | {_opt(tag['before'])} "
                         f"| {_opt(tag['after'])} | {metrics} |")
        lines.append("")
    if result.namespaces:
        lines += ["#### Namespace owners", "", "| Namespace | Before | After |",
                  "| --- | --- | --- |"]
        lines += [f"| `{space['namespace']}` | {_cell(' '.join(space['before'])) or '—'} "
                  f"| {_cell(' '.join(space['after'])) or '—'} |"
                  for space in result.namespaces]
        lines.append("")
    if result.models or result.versions:
        lines += ["#### Models and versions", ""]
        for model in result.models:
            owner = f" (owner {_cell(model['owner'])})" if model["owner"] else ""
            lines.append(f"- model `{model['model']}` {model['change']}{owner}")
        for version in result.versions:
            metrics = ", ".join(f"{k} {_value(v)}" for k, v in sorted(version["metrics"].items()))
            shown = f": {_cell(metrics)}" if metrics and version["change"] == "created" else ""
            lines.append(f"- `{version['model']}@{version['version']}` "
                         f"{version['change']}{shown}")
        lines.append("")
    if result.artifacts:
        lines += ["#### Artifacts", "", "| Target | Artifact | Change | Size |",
                  "| --- | --- | --- | --- |"]
        for art in result.artifacts:
            size = _size(art["size"])
            if art["change"] == "changed":
                size = f"{_size(art.get('size_before'))} -> {size}"
            what = _cell(art["path"]) + ("/" if art["directory"] else "")
            lines.append(f"| `{art['target']}` | `{what}` | {art['change']} | {size} |")
        lines.append("")
    if result.other_files:
        lines += ["#### Other files", ""]
        lines += [f"- `{_cell(path)}`" for path in result.other_files]
        lines.append("")
    return "\n".join(lines)


def _commit(side: tuple[str, str | None]) -> str:
    return f"`{side[1][:10]}`" if side[1] else "(no commit)"


def _opt(version: str | None) -> str:
    return f"`{version}`" if version else "—"


def _metric_line(metric: dict[str, Any]) -> str:
    before, after, delta = metric["before"], metric["after"], metric["delta"]
    if before is None:
        return f"{_cell(metric['key'])} {_value(after)}"
    text = f"{_cell(metric['key'])} {_value(before)} -> {_value(after)}"
    if delta is not None:
        text += f" ({delta:+g})"
    return text


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if _number(value):
        return f"{value:g}"
    text = str(value)
    return _cell(text if len(text) <= 24 else text[:21] + "...")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _size(size: Any) -> str:
    if not isinstance(size, int):
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"

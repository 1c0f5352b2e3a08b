"""Registry invariants: what ``modelbox check`` verifies on the registry branch.

Each problem names the file (or ref) and says what is wrong and how to fix it. Tag refs are
derived data, so their drift is reported as fixable (``modelbox check --fix`` or
``modelbox refs sync``); everything else needs a commit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from modelbox import layout
from modelbox.documents import parse_settings, parse_tags
from modelbox.errors import ManifestError, ModelboxError
from modelbox.manifests import ArtifactPointer, ModelManifest, VersionManifest, parse
from modelbox.names import RESERVED_TAGS
from modelbox.refs import Snapshot
from modelbox.registry import Registry, ref_collisions

T = TypeVar("T")
_MODEL_ENTRIES = {
    layout.MODEL_FILE, layout.TAGS_FILE, layout.VERSIONS_DIR, layout.METRICS_FILE,
    layout.ARTIFACTS_DIR, layout.EVENTS_FILE,
}
_VERSION_ENTRIES = {
    layout.VERSION_FILE, layout.METRICS_FILE, layout.ARTIFACTS_DIR, layout.EVENTS_FILE,
}


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    fixable: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def check(registry: Registry) -> list[Problem]:
    """Every invariant violation on the registry branch, plus tag-ref drift."""
    snap = registry.snapshot()
    problems: list[Problem] = []
    data = snap.read(layout.SETTINGS)
    if data is None:
        problems.append(Problem(layout.SETTINGS, "missing; restore it with git"))
    else:
        _guard(problems, lambda: parse_settings(layout.SETTINGS, data))
    stack = [layout.MODELS]
    while stack:
        directory = stack.pop()
        entries = dict(snap.listdir(directory))
        owned = {n for n in entries if n.startswith("_")}
        if owned and layout.MODEL_FILE not in owned:
            problems.append(Problem(directory, "has modelbox files but no _model.json"))
        elif layout.MODEL_FILE in owned:
            problems.extend(_check_model(snap, directory, entries))
        for name in sorted(owned - _MODEL_ENTRIES):
            problems.append(Problem(f"{directory}/{name}", "unknown modelbox entry; remove it"))
        stack.extend(f"{directory}/{n}" for n, is_dir in entries.items()
                     if is_dir and not n.startswith("_"))
    problems.extend(_check_refs(registry))
    return problems


def _guard(problems: list[Problem], read: Callable[[], T]) -> T | None:
    """Run ``read``; turn a manifest error into a Problem instead of raising it."""
    try:
        return read()
    except ManifestError as exc:
        problems.append(Problem(exc.path, exc.problem))
    except ModelboxError as exc:
        problems.append(Problem(layout.SETTINGS, str(exc)))
    return None


def _check_model(snap: Snapshot, directory: str, entries: dict[str, bool]) -> list[Problem]:
    problems: list[Problem] = []
    expected = directory[len(layout.MODELS) + 1 :]
    path = f"{directory}/{layout.MODEL_FILE}"
    model = _guard(problems, lambda: parse(ModelManifest, path, snap.read(path) or b""))
    if isinstance(model, ModelManifest) and model.full_name != expected:
        problems.append(Problem(path, f"names model {model.full_name} but sits at {expected}; "
                                "move the folder or fix namespace/name"))
    if "/" not in expected:
        problems.append(Problem(path, "a model needs a namespace folder (models/NS/NAME)"))
    versions: dict[str, VersionManifest] = {}
    vdir = f"{directory}/{layout.VERSIONS_DIR}"
    for name, is_dir in snap.listdir(vdir):
        vpath = f"{vdir}/{name}/{layout.VERSION_FILE}"
        if not is_dir or snap.read(vpath) is None:
            problems.append(Problem(f"{vdir}/{name}", "a version folder without _version.json"))
            continue
        data = snap.read(vpath) or b""
        version = _guard(problems, functools.partial(parse, VersionManifest, vpath, data))
        problems.extend(_check_entries(snap, f"{vdir}/{name}", _VERSION_ENTRIES))
        if isinstance(version, VersionManifest):
            versions[name] = version
            if (version.model, version.version) != (expected, name):
                problems.append(Problem(vpath, f"names {version.model}@{version.version} but "
                                        f"sits at {expected}@{name}; fix model/version"))
    problems.extend(_check_artifacts(snap, directory))
    tpath = f"{directory}/{layout.TAGS_FILE}"
    tag_data = snap.read(tpath)
    tags = _guard(problems, lambda: parse_tags(tpath, tag_data)) if tag_data else {}
    for tag, version_name in (tags if isinstance(tags, dict) else {}).items():
        if tag in RESERVED_TAGS:
            problems.append(Problem(tpath, f"tags.{tag}: '{tag}' is computed and cannot be stored"))
        target = versions.get(version_name)
        if target is None:
            problems.append(Problem(tpath, f"tags.{tag}: points to {version_name}, which does "
                                    f"not exist; `modelbox untag {expected} {tag}`"))
        elif target.archived:
            problems.append(Problem(tpath, f"tags.{tag}: points to the archived version "
                                    f"{version_name}; move or remove the tag"))
    return problems


def _check_entries(snap: Snapshot, directory: str, known: set[str]) -> list[Problem]:
    problems = [
        Problem(f"{directory}/{name}", "unknown entry in a version folder; remove it")
        for name, _ in snap.listdir(directory) if name not in known
    ]
    return problems + _check_artifacts(snap, directory)


def _check_artifacts(snap: Snapshot, owner: str) -> list[Problem]:
    """Every pointer parses, sits where its path says, and names a stored or tracked file."""
    root = f"{owner}/{layout.ARTIFACTS_DIR}"
    problems: list[Problem] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        for name, is_dir in snap.listdir(folder):
            full = f"{folder}/{name}"
            if is_dir:
                stack.append(full)
                continue
            if not name.endswith(".json"):
                problems.append(Problem(full, "not a pointer file: commit a pointer "
                                        "(`modelbox artifact add`), not the artifact itself"))
                continue
            data = snap.read(full) or b""
            pointer = _guard(problems, functools.partial(parse, ArtifactPointer, full, data))
            if not isinstance(pointer, ArtifactPointer):
                continue
            expected = full[len(root) + 1 : -len(".json")]
            if pointer.path != expected:
                problems.append(Problem(full, f"path: says {pointer.path!r} but the file sits "
                                        f"at {expected!r}; rename one of them"))
            if (pointer.sha256 is None) == (pointer.uri is None):
                problems.append(Problem(full, "a pointer needs exactly one of sha256 (stored) "
                                        "or uri (tracked)"))
    return problems


def _check_refs(registry: Registry) -> list[Problem]:
    desired = registry.all_desired_refs()
    actual = registry.repo.refs_under(layout.TAG_REF_PREFIX)
    collisions = ref_collisions(desired)
    if collisions:  # no sync can fix these: a manifest must change first
        return [
            Problem(short, f"collides with {long}: Git cannot hold both tag refs; untag "
                    f"{short} or rename the model")
            for short, long in collisions
        ]
    problems = []
    for name in sorted(desired.keys() | actual.keys()):
        if name not in actual:
            problems.append(Problem(name, "tag ref is missing", fixable=True))
        elif name not in desired:
            problems.append(Problem(name, "tag ref names no tag in the manifests", fixable=True))
        elif desired[name] != actual[name]:
            problems.append(Problem(name, "tag ref is out of date", fixable=True))
    return [
        Problem(p.path, p.message + "; run `modelbox refs sync`", fixable=True) for p in problems
    ]

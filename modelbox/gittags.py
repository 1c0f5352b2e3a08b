"""GTO-format Git tags: promotions that forges show and CI can trigger on (docs/gto.md).

With the registry setting ``git_tags`` on, the registry branch's state is mirrored into
annotated tags under ``refs/tags/`` in the grammar GTO 1.10 writes and parses:

==========================  ======================================  ==================
modelbox                    Git tag                                 points at
==========================  ======================================  ==================
version registered          ``team/m@v1.2.0`` (``#N`` if re-made)   registering commit
version archived / deleted  ``team/m@v1.2.0!#N``                    registering commit
tag ``production`` set      ``team/m#production#N``                 the version's
tag moved off / removed     ``team/m#production!#N``                the old version's
==========================  ======================================  ==================

GTO finds a stage's version by the commit the tag points at, so every tag of a version
points at the commit that registered it. ``N`` counts a model's tags (GTO's counter: one
more than the highest of that model). GTO orders events by tagger date, in seconds, so
the tags one model gets are dated at least a second apart (never earlier than the commit
that caused them). Names GTO cannot hold get no tag, with one note per model: versions
not named ``vX.Y.Z`` (``v1``, ``sweep-17``), models and tags with a ``.``.

:func:`reconcile` compares what the tags say (GTO's reading) with the registry branch and
makes the missing tags, so a write, a write finished by recovery, a pull of commits
someone merged on a forge, and a push whose counters collided all end the same way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modelbox import derived, layout
from modelbox.errors import ModelboxError
from modelbox.names import ModelName, parse_model
from modelbox.refs import gittags as git

if TYPE_CHECKING:
    from modelbox.refs import Snapshot
    from modelbox.registry import Registry

__all__ = ["TAGS_CHANGED", "Parsed", "admit", "artifact", "is_gto_ref",
           "is_semver", "local_refs", "parse", "reconcile", "reconcile_changed", "renumber",
           "valid_fetched"]

logger = logging.getLogger(__name__)

# GTO's grammar (gto/constants.py), restated: a name starts and ends with a letter or
# digit and holds letters, digits, '-', '_', '/'; a version is 'v' + SemVer 2.0.
_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-/_]*[a-zA-Z0-9])?"
_IDENT = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = (r"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
           rf"(?:-{_IDENT}(?:\.{_IDENT})*)?(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?")
_NAME_RE = re.compile(rf"^{_NAME}$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_VERSION_RE = re.compile(rf"^v{_SEMVER}$")
_TAG_RE = re.compile(
    rf"^(?P<artifact>{_NAME})"
    rf"(?:(?:#(?P<stage>{_NAME})|@(?P<version>v{_SEMVER}))(?P<cancel>!?)"
    r"|@(?P<other>deprecated|created))"
    r"(?:#(?P<counter>[0-9]+))?$"
)
#: in ``fresh`` (model -> what a write changed), beside version names: its tags changed
TAGS_CHANGED = ":tags"
#: a fetched tag's counter above this is refused: it would push every later one past it
MAX_COUNTER = 10**9
_MAX_NAME = 255


@dataclass(frozen=True)
class Parsed:
    """One GTO tag name: ``action`` is register, deregister, assign, unassign, deprecate
    or create."""

    artifact: str
    action: str
    version: str | None = None
    stage: str | None = None
    counter: int | None = None


def parse(name: str) -> Parsed | None:
    """The GTO tag ``name`` parsed, or None if GTO would not read it as one."""
    if len(name) > _MAX_NAME:
        return None
    m = _TAG_RE.match(name)
    if m is None:
        return None
    cancel = m["cancel"] == "!"
    counter = int(m["counter"]) if m["counter"] else None
    if m["stage"]:
        return Parsed(m["artifact"], "unassign" if cancel else "assign", stage=m["stage"],
                      counter=counter)
    if m["version"]:
        return Parsed(m["artifact"], "deregister" if cancel else "register",
                      version=m["version"], counter=counter)
    return Parsed(m["artifact"], "deprecate" if m["other"] == "deprecated" else "create",
                  counter=counter)


def artifact(model: ModelName) -> str | None:
    """The GTO artifact name of ``model`` (``team/name``, the same), or None if GTO's
    names cannot hold it (a '.' in it)."""
    name = str(model)
    return name if _NAME_RE.match(name) else None


def is_semver(version: str) -> bool:
    """Whether GTO can hold the version name (``v1.2.0``, ``v2.0.0-rc.1``)."""
    return bool(_VERSION_RE.match(version))


def _is_stage(tag: str) -> bool:
    return bool(_NAME_RE.match(tag))


# -- what the tags say ---------------------------------------------------------------
@dataclass
class _State:
    """One artifact as GTO reads its tags."""

    names: set[str] = field(default_factory=set)
    counter: int = 0
    last_time: int = 0
    commit: dict[str, str] = field(default_factory=dict)  # version -> its commit
    registered: dict[str, bool] = field(default_factory=dict)
    stages: dict[tuple[str, str], bool] = field(default_factory=dict)  # (version, stage)

    def active(self, stage: str) -> set[str]:
        return {v for (v, s), on in self.stages.items() if s == stage and on}

    def stage_names(self) -> set[str]:
        return {s for (_, s), on in self.stages.items() if on}


def _states(tags: dict[str, git.TagInfo]) -> dict[str, _State]:
    out: dict[str, _State] = {}
    events = []
    for info in tags.values():
        parsed = parse(info.name)
        if parsed is None:
            continue
        state = out.setdefault(parsed.artifact, _State())
        state.names.add(info.name)
        state.counter = max(state.counter, parsed.counter or 0)
        state.last_time = max(state.last_time, info.time)
        events.append((info.time, parsed.counter or 0, info.name, parsed, info))
    for _, _, _, parsed, info in sorted(events, key=lambda e: e[:3]):
        state = out[parsed.artifact]
        by_commit = {c: v for v, c in state.commit.items()}
        if parsed.action in ("register", "deregister") and parsed.version:
            state.commit.setdefault(parsed.version, info.target)
            state.registered[parsed.version] = parsed.action == "register"
        elif parsed.action in ("assign", "unassign") and parsed.stage:
            version = by_commit.get(info.target)
            if version is not None:
                state.stages[(version, parsed.stage)] = parsed.action == "assign"
    return out


def _read(registry: Registry, models: set[str] | None = None) -> dict[str, git.TagInfo]:
    """The GTO tags (of ``models`` only, when given: the others' are not read)."""
    def keep(name: str) -> bool:
        parsed = parse(name)
        return parsed is not None and (models is None or parsed.artifact in models)

    return git.read_all(registry.repo, keep)


# -- making the tags -----------------------------------------------------------------
@dataclass
class _Plan:
    name: str
    target: str
    message: str


def reconcile(registry: Registry, models: Iterable[str] | None = None, *,
              fresh: dict[str, set[str]] | None = None, quiet: bool = False) -> list[str]:
    """Make the GTO tags that ``models`` (every model when None) lack on the registry
    branch; return their names. ``fresh`` (model -> versions this write changed) decides
    which unmappable names get their note; ``quiet`` prints none. The caller holds the
    lock. Does nothing unless the registry's ``git_tags`` setting is on."""
    head = registry.registry_head()
    # The setting as the registry branch has it now (a pull may have just turned it on).
    if head is None or not registry.git_tags_on():
        return []
    snap = registry.repo.snapshot(head)
    every = models is None
    if models is None:
        start = len(layout.MODELS) + 1
        from modelbox.registry import manifest_paths

        models = [path[start : -len(layout.MODEL_FILE) - 1]
                  for path in manifest_paths(snap, layout.MODELS, layout.MODEL_FILE)]
    models = set(models)
    states = _states(_read(registry, None if every else models))
    when = registry.repo.commit_info(head).commit_time
    made: list[str] = []
    for text in sorted(models):
        try:
            model = parse_model(text)
        except ModelboxError:
            continue  # a folder no model can have: `check` reports it
        name = artifact(model)
        news = (fresh or {}).get(text, set())
        if name is None:
            if news and not quiet:
                logger.warning("%s gets no Git tags: GTO names allow "
                               "letters, digits, '-', '_', '/' only (docs/gto.md)", model)
            continue
        state = states.setdefault(name, _State())
        planner = _Planner(registry, snap, head, model, name, state)
        plans = planner.plan(news)
        skipped = planner.skipped
        if skipped and not quiet:
            logger.warning("%s gets no Git tag for %s: GTO needs "
                           "versions named vX.Y.Z and tags without '.' (docs/gto.md)",
                           model, ", ".join(sorted(skipped)[:3])
                           + (", ..." if len(skipped) > 3 else ""))
        at = max(int(when), state.last_time + 1)
        for plan in plans:
            # Asked only when a tag is due: a pull by someone with no identity set makes
            # none otherwise (IdentityError is a GitError: the caller warns, tags wait).
            identity = registry.repo.identity()
            git.create(registry.repo, plan.name, plan.target, plan.message, identity, at)
            state.last_time, at = at, at + 1
            made.append(plan.name)
    if every:
        derived.save(_mark(registry), _MARK_KIND, {"head": head})
    return made


_MARK_KIND = "gittags-reconciled"


def _mark(registry: Registry) -> Path:
    """The cache naming the registry head at which every model was last reconciled."""
    return derived.folder(registry.repo.git_dir) / "gittags-reconciled.json"


def reconcile_changed(registry: Registry, also: Iterable[str] = ()) -> list[str]:
    """:func:`reconcile` after a pull: only the models whose tag map or versions changed
    since the registry head at which every model was last reconciled (a cache under
    ``.git/modelbox/``), and ``also``; every model when that head is unknown (no cache,
    a torn one, an object this clone lacks) or the registry settings changed since (the
    setting may have been off in between). A pull of a few commits into a registry of
    100,000 versions reads what they changed, not every version manifest."""
    head = registry.registry_head()
    if head is None or not registry.git_tags_on():
        return []
    mark = derived.load(_mark(registry), _MARK_KIND)
    base = mark.get("head") if mark else None
    repo = registry.repo
    if not (isinstance(base, str) and _SHA_RE.match(base) and repo.has_object(base)):
        return reconcile(registry, None, quiet=True)
    from modelbox.changed import tagged_models

    try:
        if (repo.snapshot(base).read(layout.SETTINGS)
                != repo.snapshot(head).read(layout.SETTINGS)):
            return reconcile(registry, None, quiet=True)
        models = tagged_models(repo, base, head)
    except ModelboxError:  # not a commit, or a tree this clone lacks: the long way
        return reconcile(registry, None, quiet=True)
    made = reconcile(registry, models | set(also), quiet=True)
    # Unchanged since base, every other model is as reconciled at head as it was there.
    derived.save(_mark(registry), _MARK_KIND, {"head": head})
    return made


class _Planner:
    """The tags one model lacks, in GTO's order of meaning: what moved off a version,
    then deregistrations, registrations, and what moved onto a version."""

    def __init__(self, registry: Registry, snap: Snapshot, head: str, model: ModelName,
                 name: str, state: _State) -> None:
        self.registry, self.head, self.model, self.name, self.state = (
            registry, head, model, name, state)
        self.versions = {v.version: v.archived
                         for v in registry.versions_in(snap, model, archived=True)}
        self.tags = registry.tags_in(snap, model)
        self.skipped: set[str] = set()
        self.tags_changed = False

    def plan(self, news: set[str]) -> list[_Plan]:
        self.skipped = {v for v in news if v in self.versions and not is_semver(v)}
        self.tags_changed = TAGS_CHANGED in news
        return self._unassign() + self._registrations() + self._assign()

    def _counter(self) -> int:
        self.state.counter += 1
        return self.state.counter

    def _commit_of(self, version: str) -> str | None:
        if version not in self.state.commit:
            path = layout.version_file(self.model, version)
            found = git.added_in(self.registry.repo, self.head, path)
            if found is None:
                return None
            self.state.commit[version] = found
        return self.state.commit[version]

    def _unassign(self) -> list[_Plan]:
        state, name, out = self.state, self.name, []
        for stage in sorted(state.stage_names()):
            want = self.tags.get(stage) if _is_stage(stage) else None
            leaving = sorted(state.active(stage) - {want})
            if leaving and want is not None and not is_semver(want):
                self.skipped.add(want)
            for old in leaving:
                out.append(_Plan(f"{name}#{stage}!#{self._counter()}", state.commit[old],
                                 f"Unassigning stage '{stage}' to artifact '{name}' "
                                 f"version '{old}'"))
                state.stages[(old, stage)] = False
        return out

    def _registrations(self) -> list[_Plan]:
        state, name = self.state, self.name
        drop: list[_Plan] = []
        add: list[_Plan] = []
        for version in sorted(set(self.versions) | set(state.registered)):
            if not is_semver(version):
                continue
            live = version in self.versions and not self.versions[version]
            registered = state.registered.get(version, False)
            if registered and not live:
                drop.append(_Plan(f"{name}@{version}!#{self._counter()}",
                                  state.commit[version],
                                  f"Deregistering artifact {name} version {version}"))
                state.registered[version] = False
            elif live and not registered:
                target = self._commit_of(version)
                if target is None:
                    continue
                if any(c == target and v != version for v, c in state.commit.items()):
                    self.skipped.add(version)  # GTO tells versions apart by commit
                    continue
                tag = f"{name}@{version}"
                if tag in state.names or self.registry.repo.ref(git.PREFIX + tag):
                    tag = f"{tag}#{self._counter()}"  # registered once before
                add.append(_Plan(tag, target,
                                 f"Registering artifact {name} version {version}"))
                state.registered[version] = True
        return drop + add

    def _assign(self) -> list[_Plan]:
        state, name, out = self.state, self.name, []
        for stage, want in sorted(self.tags.items()):
            if not _is_stage(stage) or not is_semver(want):
                if self.tags_changed:  # this write set or moved a tag: say what is left out
                    self.skipped.add(want if _is_stage(stage) else stage)
                continue
            if not state.registered.get(want, False) or state.stages.get((want, stage)):
                continue
            out.append(_Plan(f"{name}#{stage}#{self._counter()}", state.commit[want],
                             f"Assigning stage {stage} to artifact {name} version {want}"))
            state.stages[(want, stage)] = True
        return out


def valid_fetched(registry: Registry, info: git.TagInfo, head: str | None) -> str | None:
    """Why the fetched GTO tag ``info`` must not enter this clone (None: it may): a name
    GTO would not read or no model could have, a counter past :data:`MAX_COUNTER`, or a
    target commit outside the registry branch ``head``."""
    from modelbox.refs.remote import is_ancestor

    parsed = parse(info.name)
    if parsed is None:
        return "not a GTO tag name"
    if parsed.counter is not None and parsed.counter > MAX_COUNTER:
        return f"its counter is above {MAX_COUNTER}"
    try:
        parse_model(parsed.artifact)
    except ModelboxError:
        return "it names no model modelbox could have"
    if head is None or not registry.repo.has_object(info.target):
        return "its commit is not on the registry branch"
    try:
        if not is_ancestor(registry.repo, info.target, head):
            return "its commit is not on the registry branch"
    except ModelboxError:
        return "its commit is not on the registry branch"
    return None


def admit(registry: Registry, fetched: dict[str, str], url: str) -> list[str]:
    """Point ``refs/tags/<name>`` at each fetched GTO tag (ref name -> sha) that passes
    :func:`valid_fetched` against the registry branch as it is now. A refused one is one
    warning line and no ref (a clone's copy of it is removed). A valid one replaces a
    local tag of the same name: the remote's was published first, and the next
    :func:`reconcile` makes again, under a new counter, whatever the local one recorded.
    Returns the names admitted or replaced. The caller holds the lock."""
    head = registry.registry_head()
    changed = []
    for ref, sha in sorted(fetched.items()):
        if not ref.startswith(git.PREFIX) or parse(ref[len(git.PREFIX):]) is None:
            continue
        name = ref[len(git.PREFIX):]
        info = git.read(registry.repo, name, sha)
        why = "not an annotated tag of a commit" if info is None else valid_fetched(
            registry, info, head)
        if why is not None:
            logger.warning("ignored the Git tag %s from %s: %s", name, url, why)
            if registry.repo.ref(ref) == sha:
                registry.repo.delete_ref(ref)
            continue
        if registry.repo.ref(ref) != sha:
            registry.repo.set_ref(ref, sha)
            changed.append(name)
    return changed


def is_gto_ref(ref: str) -> bool:
    """Whether ``ref`` is a ``refs/tags/`` ref GTO would read as one of its tags."""
    return ref.startswith(git.PREFIX) and parse(ref[len(git.PREFIX):]) is not None


def local_refs(registry: Registry) -> dict[str, str]:
    """This clone's GTO tag refs: ref name -> tag sha."""
    return {ref: sha for ref, sha in registry.repo.refs_under(git.PREFIX).items()
            if is_gto_ref(ref)}


def renumber(registry: Registry, theirs: dict[str, str]) -> dict[str, str]:
    """Give each GTO tag of ours that the remote lacks, and whose counter is not above
    every one the remote holds for its model, the next free counter (GTO takes one more
    than the model's highest; two clones that promoted at once both took the same), and
    return ours the remote lacks (ref -> sha). The caller holds the lock."""
    theirs_top: dict[str, int] = {}
    for ref in theirs:
        parsed = parse(ref[len(git.PREFIX):]) if is_gto_ref(ref) else None
        if parsed is not None and parsed.counter is not None:
            theirs_top[parsed.artifact] = max(theirs_top.get(parsed.artifact, 0),
                                              parsed.counter)
    ours = local_refs(registry)
    top = dict(theirs_top)
    for ref in ours:
        parsed = parse(ref[len(git.PREFIX):])
        if parsed is not None and parsed.counter is not None:
            top[parsed.artifact] = max(top.get(parsed.artifact, 0), parsed.counter)
    out = {}
    for ref, sha in sorted(ours.items(), key=lambda item: _order(registry, item)):
        if ref in theirs:
            continue
        name = ref[len(git.PREFIX):]
        parsed = parse(name)
        assert parsed is not None
        if parsed.counter is None or parsed.counter > theirs_top.get(parsed.artifact, 0):
            out[ref] = sha
            continue
        top[parsed.artifact] += 1
        new = f"{name.rsplit('#', 1)[0]}#{top[parsed.artifact]}"
        out[git.PREFIX + new] = git.rename(registry.repo, name, new)
    return out


def _order(registry: Registry, item: tuple[str, str]) -> tuple[int, int, str]:
    """Renumbered in the order they were made: tagger date, then counter."""
    ref, sha = item
    info = git.read(registry.repo, ref[len(git.PREFIX):], sha)
    parsed = parse(ref[len(git.PREFIX):])
    return (info.time if info else 0, (parsed.counter or 0) if parsed else 0, ref)

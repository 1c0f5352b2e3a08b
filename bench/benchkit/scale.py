"""Scenario 10: issue 15's targets on the 5,000 x 20 registry (100,000 versions).

The registry is the cached one of ``scale_cache.py`` (built once, reused by later runs).
Every command is a fresh process, side by side with plain git doing the nearest thing:

* reads, on the cached registry: ``resolve``, ``model list`` (also ``--namespace``),
  ``version list M``, ``log M``, ``log M:TAG``, ``resolve --at`` and ``--json`` variants,
  against ``git for-each-ref`` / ``git ls-tree`` / ``git log -- PATH``;
* its footprint: ``.git`` on disk against what ``git count-objects -v`` counts;
* on a copy (the cache stays as built): cold writes (``version create``, ``tag``, ``meta
  set``, ``metrics log``, one after the other, each a new process); the start-up floors
  (no target): the venv's interpreter alone, and importing what a read (click, dulwich)
  and a write (also pydantic) load before any work; a plain-git commit of
  10 edited manifests, checked by the pre-commit ``modelbox-validate`` hook (through the
  real ``pre-commit`` in a full run, its entry point in both) and ``check --since``;
  ``check`` of the whole registry; ``push`` / ``clone`` / no-op ``pull`` through a
  ``git daemon`` against ``git push --mirror`` / ``git clone --mirror`` / ``git pull``;
  then bulk creation through the API at two batch sizes and one publish per call.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchkit import scale_cache
from benchkit.harness import (
    BENCH,
    PROBES,
    ROOT,
    Bench,
    Row,
    Sample,
    StepError,
    Target,
    alternate,
    measure,
    run,
)
from benchkit.sharing import NOOP_PULL, WITHIN_2X, _step, available, git_daemon

RESOLVE = Target("seconds", 0.15)  # issue 15: resolve
LIST = Target("seconds", 0.5)  # model list
NAMESPACE = Target("seconds", 0.3)  # model list --namespace NS
READ = Target("seconds", 0.4)  # version list M, log M, log M:TAG, resolve --at
WRITE = Target("seconds", 0.3)  # version create, tag, meta set, metrics log (cold)
RATE = Target("rate", 400)  # batched creation, versions/s
RSS = Target("rss", 400)  # ... with peak RSS <= 400 MB whatever the batch size
SINGLE = Target("rate", 50)  # one publish per call
CHECK = Target("seconds", 10)  # check, the whole registry
SINCE = Target("seconds", 1)  # check --since REF, a change of 10 manifests
HOOK = Target("seconds", 1)  # pre-commit modelbox-validate on 10 manifests
DISK = Target("size", 300)  # .git after the build, no user action
COMPLETE = Target("seconds", 0.3)  # issue 16: tags, models and versions complete in <= 0.3 s
PRE_COMMIT_HOME = BENCH / ".work" / "pre-commit"  # the hook's virtualenv, kept between runs
MODEL = "team0/m0000"  # tagged production (at v<versions // 2>) by build_registry
WRITTEN = "team1/m0001"  # where the cold writes go
EDITED = 10  # manifests in the commit checked by the hook and check --since


def label(models: int, versions: int) -> str:
    total = models * versions
    return f"{total // 1000}k" if total >= 1000 else str(total)


def scale(bench: Bench) -> list[Row]:
    models, versions = bench.sizes.scale
    reg, stamp = scale_cache.registry(bench, models, versions)
    size = f"10. [{label(models, versions)}]"
    rows = _part(size, "reads", lambda: reads(bench, reg, size, "10"))
    rows += _part(size, "completion", lambda: _completion(bench, reg, size))
    rows += _part(size, ".git size", lambda: [footprint(bench, reg, size, stamp)])
    rows += _part(size, "check", lambda: _check(bench, reg, size))
    copy = scale_cache.copy(bench, reg, "scale-copy")
    try:
        rows += _part(size, "cold writes", lambda: _writes(bench, copy, size))
        rows += _part(size, "start-up floors", lambda: _floors(bench, copy, size))
        rows += _part(size, "hook and check --since",
                      lambda: _hook_and_since(bench, copy, size))
        rows += _part(size, "push / clone / pull", lambda: _sharing(bench, copy, size))
        rows += _bulk(bench, copy, size, models)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    return rows


def _part(size: str, what: str, measure_it: Callable[[], list[Row]]) -> list[Row]:
    """The rows of one part, or one failed row (no verdict but n/a) if a command failed:
    a 40-minute run keeps what it measured."""
    try:
        return measure_it()
    except StepError as error:
        print(f"scenario 10: {what} failed: {error}", file=sys.stderr)
        return [Row(f"{size} {what}: FAILED, see stderr", None, target=READ,
                    note=str(error).splitlines()[0][:80])]


# -- reads -----------------------------------------------------------------------------
def read_commands(bench: Bench, versions: int) -> dict[str, tuple[list[str], list[str],
                                                                  Target]]:
    """title: (modelbox argv, plain git argv, target), in the registry's folder."""
    mb = bench.modelbox
    tree = f"models/{MODEL}"
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    tag_ref = ["git", "for-each-ref", "--format=%(contents:subject)",
               f"refs/modelbox/tags/{MODEL}/production"]
    every_folder = ["git", "ls-tree", "-d", "-r", "--name-only", "HEAD", "models/"]
    versions_tree = ["git", "ls-tree", "-d", "--name-only", f"HEAD:{tree}/_versions"]
    model_log = ["git", "log", "--format=%H", "--", tree]
    return {
        f"resolve {MODEL}:production vs git for-each-ref REF":
            ([mb, "resolve", f"{MODEL}:production"], tag_ref, RESOLVE),
        "resolve --json": ([mb, "resolve", f"{MODEL}:production", "--json"], tag_ref,
                           RESOLVE),
        "resolve --at NOW vs git log -1 --before -- _tags.json":
            ([mb, "resolve", f"{MODEL}:production", "--at", now],
             ["git", "log", "-1", "--format=%H", f"--before={now}", "--",
              f"{tree}/_tags.json"], READ),
        "model list vs git ls-tree -d -r models/": ([mb, "model", "list"], every_folder, LIST),
        "model list --json": ([mb, "model", "list", "--json"], every_folder, LIST),
        "model list --namespace team3 vs git ls-tree -d HEAD:models/team3":
            ([mb, "model", "list", "--namespace", "team3"],
             ["git", "ls-tree", "-d", "--name-only", "HEAD:models/team3"], NAMESPACE),
        f"version list {MODEL} vs git ls-tree -d _versions":
            ([mb, "version", "list", MODEL], versions_tree, READ),
        "version list --json": ([mb, "version", "list", MODEL, "--json"], versions_tree, READ),
        f"log {MODEL} vs git log -- MODEL": ([mb, "log", MODEL], model_log, READ),
        "log MODEL --json": ([mb, "log", MODEL, "--json"], model_log, READ),
        f"log {MODEL}:production vs git log -- _versions/v{versions // 2}":
            ([mb, "log", f"{MODEL}:production"],
             ["git", "log", "--format=%H", "--", f"{tree}/_versions/v{versions // 2}"], READ),
    }


def reads(bench: Bench, reg: Path, size: str, number: str, *,
          only: tuple[str, ...] | None = None, targets: bool = True) -> list[Row]:
    """The read rows on ``reg`` (each round alternates who goes first)."""
    env = bench.env()
    versions = _versions_of(reg)
    commands = {k: v for k, v in read_commands(bench, versions).items()
                if only is None or any(k.startswith(o) for o in only)}
    ours: dict[str, list[Sample]] = {k: [] for k in commands}
    theirs: dict[str, list[Sample]] = {k: [] for k in commands}
    for i in range(bench.fast_repeat):
        bench.say(f"{number}: reads, round {i + 1}/{bench.fast_repeat}")
        for title, (mb_argv, git_argv, _) in commands.items():
            alternate(i, _step(ours[title], mb_argv, env, reg),
                      _step(theirs[title], git_argv, env, reg))
    return [Row.of(f"{size} {title}", ours[title], theirs[title], t if targets else None)
            for title, (_, _, t) in commands.items()]


def _completion(bench: Bench, reg: Path, size: str) -> list[Row]:
    """Shell completion of a tag, as bash asks click for it (issue 16's <= 0.3 s)."""
    words = f"modelbox get {MODEL}:"
    env = bench.env(_MODELBOX_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD="2")
    got = [measure([bench.modelbox], env=env, cwd=reg) for _ in range(bench.fast_repeat)]
    return [Row.of(f"{size} complete `{words}` (a tag, bash)", got, target=COMPLETE)]


def _versions_of(reg: Path) -> int:
    """Versions per model of a probe registry (the production tag sits at the middle)."""
    tags = json.loads((reg / "models" / MODEL / "_tags.json").read_text())
    return 2 * int(tags["tags"]["production"].lstrip("v"))


# -- footprint -------------------------------------------------------------------------
def disk(bench: Bench, reg: Path) -> dict[str, int]:
    """``.git`` in bytes (``du``) and ``git count-objects -v``'s counts."""
    env = bench.env()
    du = int(run(["du", "-sb", ".git"], env=env, cwd=reg).split()[0])
    counted = dict(line.split(": ", 1) for line in
                   run(["git", "count-objects", "-v"], env=env, cwd=reg).splitlines())
    return {"git_dir": du, "objects_kib": int(counted["size"]) + int(counted["size-pack"]),
            "objects": int(counted["count"]) + int(counted["in-pack"]),
            "loose": int(counted["count"]), "packs": int(counted["packs"])}


def footprint(bench: Bench, reg: Path, size: str, stamp: dict[str, object]) -> Row:
    found = disk(bench, reg)
    by = stamp.get("built_by")
    note = (f"{found['packs']} packs + {found['loose']:,} loose, {found['objects']:,} "
            f"objects; built by {by if by != '?' else 'another checkout'}, {stamp['built']}")
    return Row(f"{size} .git after the build vs git count-objects -v (objects)",
               found["git_dir"] / 1e6, found["objects_kib"] * 1024 / 1e6, DISK, unit="MB",
               note=note)


# -- check, writes, the hook -------------------------------------------------------------
def _check(bench: Bench, reg: Path, size: str) -> list[Row]:
    got: list[Sample] = []
    for i in range(bench.repeat):
        bench.say(f"10: check, round {i + 1}/{bench.repeat}")
        got.append(measure([bench.modelbox, "check"], env=bench.env(), cwd=reg))
    return [Row.of(f"{size} check (whole registry)", got, target=CHECK)]


# What a command loads before its first line of work, in a bare interpreter of the same
# venv: resolve loads click and dulwich's object parser and starts one git (it reads the
# branch through `git cat-file`); a write opens the repository with dulwich, loads pydantic
# and builds one validator (pydantic's first one imports importlib.metadata to look for
# plugins). No command can start faster than its floor; the rows show how far each one is
# above it.
READ_FLOOR = ("import click, dulwich.objects, subprocess; "
              'subprocess.run(["git", "version"], capture_output=True)')
WRITE_FLOOR = "import click, dulwich.repo, pydantic; pydantic.TypeAdapter(int).validate_python(1)"


def _floors(bench: Bench, copy: Path, size: str) -> list[Row]:
    env = bench.env()
    got: dict[str, list[Sample]] = {"pass": [], READ_FLOOR: [], WRITE_FLOOR: []}
    for i in range(bench.fast_repeat * 2):
        bench.say(f"10: start-up floors, round {i + 1}/{bench.fast_repeat * 2}")
        for code, samples in got.items():
            samples.append(measure([bench.python, "-c", code], env=env, cwd=copy))
    return [
        Row.of(f"{size} start-up floor: the interpreter alone (python -c pass)", got["pass"]),
        Row.of(f"{size} start-up floor of a read: python -c '{READ_FLOOR}'",
               got[READ_FLOOR]),
        Row.of(f"{size} start-up floor of a write: python -c '{WRITE_FLOOR}'",
               got[WRITE_FLOOR]),
    ]


def _writes(bench: Bench, copy: Path, size: str) -> list[Row]:
    env, mb = bench.env(), bench.modelbox
    got: dict[str, list[Sample]] = {k: [] for k in ("version create", "tag", "meta set",
                                                    "metrics log")}
    for i in range(bench.fast_repeat):
        bench.say(f"10: cold writes, round {i + 1}/{bench.fast_repeat}")
        version = f"{WRITTEN}@w{i}"
        for title, argv in (
            ("version create", [mb, "version", "create", WRITTEN, f"w{i}"]),
            ("tag", [mb, "tag", version, "staging"]),
            ("meta set", [mb, "meta", "set", version, "epochs", str(10 + i)]),
            ("metrics log", [mb, "metrics", "log", version, f"acc=0.{90 + i}"]),
        ):
            got[title].append(measure(argv, env=env, cwd=copy))
    return [Row.of(f"{size} {title} (cold, after the previous write)", samples, target=WRITE)
            for title, samples in got.items()]


def _edit_manifests(copy: Path, models: int, round_: int) -> list[str]:
    """Add a metadata key to EDITED version manifests of different models; their paths."""
    paths = []
    for k in range(EDITED):
        i = (7 + 13 * k) % models
        path = f"models/team{i % 10}/m{i:04d}/_versions/v1/_version.json"
        document = json.loads((copy / path).read_text())
        document["metadata"] = {**document.get("metadata", {}), "bench_round": round_}
        (copy / path).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths


def _hook_and_since(bench: Bench, copy: Path, size: str) -> list[Row]:
    """Per round: edit EDITED manifests, stage them, run the hook (pre-commit's way and its
    entry point), commit with plain git, then ``check --since HEAD~1``."""
    env, mb = bench.env(), bench.modelbox
    models = bench.sizes.scale[0]
    config = None if bench.quick else _pre_commit_config(bench)
    framework_env = env | {"PRE_COMMIT_HOME": str(PRE_COMMIT_HOME)}
    hook = str(Path(bench.modelbox).with_name("modelbox-hook-validate"))
    framework: list[Sample] = []
    timed: list[Sample] = []  # the hook's own run, as pre-commit times it
    floor: list[Sample] = []
    noop = _noop_config(bench) if config is not None else None
    entry: list[Sample] = []
    since: list[Sample] = []
    for i in range(bench.repeat if bench.quick else bench.fast_repeat):
        bench.say(f"10: hook and check --since, round {i + 1}")
        paths = _edit_manifests(copy, models, i)
        run(["git", "add", "--", *paths], env=env, cwd=copy)
        if config is not None:
            whole = measure([bench.python, "-m", "pre_commit", "run", "--verbose", "-c",
                             str(config), "modelbox-validate"],
                            env=framework_env, cwd=copy, capture=True)
            framework.append(whole)
            timed.append(Sample(_hook_duration(whole.output), whole.rss_mb))
        if noop is not None:  # the framework's own floor: a hook that does nothing
            floor.append(measure([bench.python, "-m", "pre_commit", "run", "-c", str(noop),
                                  "noop"], env=framework_env, cwd=copy))
        entry.append(measure([hook, *paths], env=env, cwd=copy))
        run(["git", "commit", "-q", "--no-verify", "-m", f"bench: {EDITED} manifests"],
            env=env, cwd=copy)
        since.append(measure([mb, "check", "--since", "HEAD~1"], env=env, cwd=copy))
    rows = []
    if not bench.quick:
        missing = "" if framework else "pre-commit could not install the hook"
        rows.append(Row.of(f"{size} pre-commit modelbox-validate, {EDITED} manifests staged: "
                           "the hook's run as pre-commit times it (--verbose)", timed,
                           target=HOOK, note=missing))
        rows.append(Row.of(f"{size} ... the whole pre-commit run vs pre-commit run of a no-op "
                           "hook (the framework's own git scans; docs/scale.md)", framework,
                           floor, note=missing))
    rows += [
        Row.of(f"{size} modelbox-hook-validate {EDITED} manifests (the hook's entry point)",
               entry, target=HOOK if bench.quick else None),
        Row.of(f"{size} check --since HEAD~1 (a commit of {EDITED} manifests)", since,
               target=SINCE),
    ]
    return rows


def _hook_duration(output: str) -> float:
    """The ``- duration: 0.52s`` line ``pre-commit run --verbose`` prints for the hook."""
    found = re.search(r"^- duration: ([0-9.]+)s$", output, re.MULTILINE)
    if found is None:
        raise StepError(f"pre-commit printed no duration for the hook:\n{output[-500:]}")
    return float(found.group(1))


def _noop_config(bench: Bench) -> Path:
    """A pre-commit config whose one hook runs `true` on the same files: what the framework
    costs before any hook does work (its start-up, its staged-files stash and diff)."""
    path = bench.work / "pre-commit-noop.yaml"
    path.write_text("repos:\n- repo: local\n  hooks:\n  - id: noop\n    name: noop\n"
                    "    entry: 'true'\n    language: system\n    files: '\\.json$'\n")
    return path


def _pre_commit_config(bench: Bench) -> Path | None:
    """This checkout as a hook repository (the hook tests' helpers) and pre-commit's
    environment for it in PRE_COMMIT_HOME; None if pre-commit cannot install it."""
    hooks = str(ROOT / "tests" / "hooks")
    if hooks not in sys.path:
        sys.path.insert(0, hooks)
    from hook_helpers import snapshot_project, write_config  # the tests' one snapshot

    repo = snapshot_project(bench.fresh("hook-repo"))
    config = write_config(bench.work / "pre-commit-config.yaml", repo)
    PRE_COMMIT_HOME.mkdir(parents=True, exist_ok=True)
    scratch = bench.fresh("hook-scratch")
    env = bench.env(PRE_COMMIT_HOME=str(PRE_COMMIT_HOME))
    bench.say("10: pre-commit install-hooks (a new virtualenv when modelbox changed)")
    try:
        run(["git", "init", "-q"], env=env, cwd=scratch)
        run([bench.python, "-m", "pre_commit", "install-hooks", "-c", str(config)], env=env,
            cwd=scratch)
    except StepError as error:
        bench.say(f"10: pre-commit could not install the hooks: {error}")
        return None
    return config


# -- sharing -----------------------------------------------------------------------------
def _sharing(bench: Bench, copy: Path, size: str) -> list[Row]:
    if not available(bench):
        return []
    env, mb = bench.env(), bench.modelbox
    keys = ("mb_push", "git_push", "mb_clone", "git_mirror", "mb_pull", "git_pull")
    got: dict[str, list[Sample]] = {k: [] for k in keys}
    served = bench.fresh("scale-served")
    with git_daemon(served) as base:
        rounds = bench.sizes.scale_rounds
        for i in range(rounds):
            bench.say(f"10: push / clone / pull, round {i + 1}/{rounds}")
            where = bench.fresh(f"scale-sharing{i}")
            for bare in ("mb.git", "git.git"):
                run(["git", "init", "-q", "--bare", "--initial-branch=main",
                     str(served / f"{i}-{bare}")], env=env, cwd=where)
            ours, theirs = f"{base}/{i}-mb.git", f"{base}/{i}-git.git"
            alternate(i, _step(got["mb_push"], [mb, "push", ours], env, copy),
                      _step(got["git_push"], ["git", "push", "-q", "--mirror", theirs], env,
                            copy))
            alternate(i, _step(got["mb_clone"], [mb, "clone", ours, str(where / "mb")], env,
                               where),
                      _step(got["git_mirror"], ["git", "clone", "-q", "--mirror", theirs,
                                                str(where / "git-mirror")], env, where))
            run(["git", "clone", "-q", "--no-checkout", theirs, str(where / "git")], env=env,
                cwd=where)
            alternate(i, _step(got["mb_pull"], [mb, "pull"], env, where / "mb"),
                      _step(got["git_pull"], ["git", "fetch", "-q"], env, where / "git"))
            # Each round's 4 copies of the registry go at once (disk space at 100k: ~1.4 GB
            # each; see bench/README.md on deleting before a checkout on this disk).
            shutil.rmtree(where, ignore_errors=True)
            for bare in ("mb.git", "git.git"):
                shutil.rmtree(served / f"{i}-{bare}", ignore_errors=True)
    shutil.rmtree(served, ignore_errors=True)
    return [
        Row.of(f"{size} push to a new bare repo vs git push --mirror (git://)", got["mb_push"],
               got["git_push"], WITHIN_2X),
        Row.of(f"{size} clone vs git clone --mirror (git://)", got["mb_clone"],
               got["git_mirror"], WITHIN_2X),
        Row.of(f"{size} pull, nothing new vs git fetch", got["mb_pull"], got["git_pull"],
               NOOP_PULL),
    ]


# -- bulk --------------------------------------------------------------------------------
def _bulk(bench: Bench, copy: Path, size: str, models: int) -> list[Row]:
    first, second, single = bench.sizes.scale_batches
    env = bench.env()
    rows = []
    for count, batch, prefix in ((first, first, "ba"), (second, second, "bb"),
                                 (single, 0, "bs"), (single, 0, "bu"), (single, 0, "bk"),
                                 (single, 0, "bt")):
        if not count:
            continue
        what = (f"{count:,} versions in one batch" if batch
                else f"{count} versions, one publish per call")
        if prefix == "bu":
            # git's index version 4 (what feature.manyFiles sets): names compressed against
            # the name before, a 29% smaller file to rewrite; modelbox keeps the version
            # it finds. Converted untimed, as `git update-index` does it.
            run(["git", "update-index", "--index-version", "4"], env=env, cwd=copy)
            what += ", index version 4"
        if prefix == "bk":
            # git's index.skipHash (git 2.40+; part of feature.manyFiles there): the index
            # is written with a checksum of zeros instead of the SHA-1 of its 12 MB, and
            # modelbox honours the setting. Off by default: git before 2.40 (2.39 here)
            # reports such an index as corrupt in `git fsck` (docs/scale.md).
            run(["git", "update-index", "--index-version", "2"], env=env, cwd=copy)
            run(["git", "config", "index.skipHash", "true"], env=env, cwd=copy)
            what += ", index.skipHash on"
        if prefix == "bt":
            run(["git", "config", "--unset", "index.skipHash"], env=env, cwd=copy)
            run(["git", "update-index", "--index-version", "2"], env=env, cwd=copy)
            # git's own split index (docs/design.md): each publish writes the changes, not
            # the whole 100k-entry index. modelbox leaves it off by default (libgit2 and
            # JGit refuse it); this row shows what the documented setting buys. The
            # shared index is written once here, untimed, as `git update-index` does it.
            run(["git", "config", "core.splitIndex", "true"], env=env, cwd=copy)
            run(["git", "update-index", "--split-index"], env=env, cwd=copy)
            what += ", core.splitIndex on"
        bench.say(f"10: bulk, {what}")
        try:
            sample = measure([bench.python, str(PROBES), "add-versions", str(copy),
                              str(models), str(count), str(batch), prefix], env=env,
                             cwd=bench.work, capture=True)
        except StepError as error:
            print(f"scenario 10: bulk, {what} failed: {error}", file=sys.stderr)
            rows.append(Row(f"{size} create {what} (API): FAILED, see stderr", None,
                            target=RATE if batch else SINGLE))
            continue
        rate = float(sample.output.strip().splitlines()[-1])
        rows.append(Row(f"{size} create {what} (API)", rate, target=RATE if batch else SINGLE,
                        ours_rss=sample.rss_mb, unit="versions/s"))
        if batch:
            rows.append(Row(f"{size} ... its peak RSS", sample.rss_mb, target=RSS,
                            ours_rss=sample.rss_mb, unit="MB"))
    return rows


"""Scenario 5: the same registry in GTO and in modelbox, read and written with each CLI.

The registry: MODELS models x VERSIONS versions (``m000`` ... at ``v1.0.0`` ...), then a few
stage assignments per model (``staging``, ``prod``, and a second ``prod`` move on every
fifth model). Then the same at ten times the models.

The GTO side is written straight into Git in GTO's own format, through one
``git fast-import``: one commit per round of versions, an annotated tag ``NAME@vX.Y.Z`` on
it per registration, an annotated tag ``NAME#STAGE#N`` (N counting per artifact) on the
version's commit per assignment, with the messages `gto register` / `gto assign` write and
tagger times in the order of the operations. Building it through GTO itself is far too slow
to run each time: `gto.api.register` lists and parses every tag of the repository on each
call, and took 844 s for the 500 registrations of 20 x 25 (then 107 s for 20 assignments)
on the machine of bench/README.md. The timed `gto register` / `gto assign` rows below are
GTO's own commands on the built registry.

GTO 1.x has no `gto which`: `gto show NAME#prod --version` is its way to print the version
in a stage, and the row uses it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit.harness import (
    PROBES,
    Bench,
    Row,
    Sample,
    StepError,
    Target,
    alternate,
    inner,
    measure,
    run,
)

START = Target("seconds", 0.25)  # issue 2: --help and resolve
LISTING = Target("seconds", 1.0)  # issue 2: model list, version list
_WHO = "bench <bench@example.com>"


def plan(models: int, versions: int) -> dict[str, Any]:
    names = [f"m{i:03d}" for i in range(models)]
    numbers = [f"v1.0.{v}" for v in range(versions)]
    tags = [[m, numbers[-2], "staging"] for m in names]
    tags += [[m, numbers[-5], "prod"] for m in names]
    tags += [[m, numbers[-3], "prod"] for m in names[::5]]
    return {"models": names, "versions": numbers, "tags": tags}


def build_gto(repo: Path, spec: dict[str, Any], env: dict[str, str]) -> None:
    """The registry of ``spec`` as GTO writes it, in one `git fast-import`."""
    run(["git", "init", "-q", "-b", "main", str(repo)], env=env, cwd=repo.parent)
    events = len(spec["versions"]) * (1 + len(spec["models"])) + len(spec["tags"])
    clock = int(time.time()) - events - 60
    out: list[bytes] = []

    def record(header: str, message: str) -> None:
        body = message.encode()
        out.append(f"{header}data {len(body)}\n".encode() + body + b"\n")

    mark: dict[str, int] = {}
    for v, version in enumerate(spec["versions"]):
        clock += 1
        parent = f"from :{v}\n" if v else ""
        record(f"commit refs/heads/main\nmark :{v + 1}\ncommitter {_WHO} {clock} +0000\n",
               f"models at {version}\n")
        if parent:
            out.append(parent.encode())
        mark[version] = v + 1
        for name in spec["models"]:
            clock += 1
            record(f"tag {name}@{version}\nfrom :{v + 1}\ntagger {_WHO} {clock} +0000\n",
                   f"Registering artifact {name} version {version}")
    counters: dict[str, int] = {}
    for name, version, stage in spec["tags"]:
        clock += 1
        counters[name] = counters.get(name, 0) + 1
        record(f"tag {name}#{stage}#{counters[name]}\nfrom :{mark[version]}\n"
               f"tagger {_WHO} {clock} +0000\n",
               f"Assigning stage {stage} to artifact {name} version {version}")
    stream = repo / ".git" / "bench-fast-import"
    stream.write_bytes(b"".join(out) + b"done\n")
    run(["sh", "-c", f"git fast-import --quiet --done < '{stream}'"], env=env, cwd=repo)
    stream.unlink()
    run(["git", "checkout", "-q", "main"], env=env, cwd=repo)


def _pairs(bench: Bench, rounds: int, *pairs: tuple[list[Sample], Callable[[], Sample]],
           label: str) -> None:
    for i in range(rounds):
        bench.say(f"{label}: round {i + 1}/{rounds}")
        alternate(i, *[_append(samples, step) for samples, step in pairs])


def _append(samples: list[Sample], step: Callable[[], Sample]) -> Callable[[], None]:
    return lambda: samples.append(step())


def compare(bench: Bench, models: int, versions: int, rounds: int) -> list[Row]:
    spec = plan(models, versions)
    size = f"{models}x{versions}"
    env = bench.env()
    where = bench.fresh(f"gto-{size}")
    mb_reg, gto_reg = where / "modelbox", where / "gto"
    plan_file = where / "plan.json"
    plan_file.write_text(json.dumps(spec))
    bench.say(f"5: building the {size} registry in modelbox (batched API)")
    build = inner(measure([bench.python, str(PROBES), "build-plan", str(mb_reg), str(plan_file)],
                          env=env, cwd=where, capture=True))
    mb = bench.modelbox
    model = spec["models"][7 % models]
    expected = spec["versions"][-3] if spec["models"].index(model) % 5 == 0 else \
        spec["versions"][-5]

    def ours(*argv: str) -> Callable[[], Sample]:
        return lambda: measure([mb, *argv], env=env, cwd=mb_reg)

    resolved = run([mb, "resolve", f"{model}:prod"], env=env, cwd=mb_reg).strip()
    if resolved != expected:
        raise StepError(f"modelbox resolve {model}:prod printed {resolved!r}, not {expected}")
    rows = [Row.of(f"5. [{size}] build: {models * versions:,} versions + "
                   f"{len(spec['tags'])} tag moves (API, batched)", [build])]
    names = {
        "help": f"5. [{size}] modelbox --help vs gto --help",
        "list": f"5. [{size}] modelbox model list vs gto show",
        "versions": f"5. [{size}] modelbox version list M vs gto show M",
        "resolve": f"5. [{size}] modelbox resolve M:prod vs gto show M#prod --version",
        "register": f"5. [{size}] modelbox version create vs gto register",
        "assign": f"5. [{size}] modelbox tag vs gto assign",
    }
    targets = {"help": START, "list": LISTING, "versions": LISTING, "resolve": START}
    got: dict[str, tuple[list[Sample], list[Sample]]] = {k: ([], []) for k in names}
    if bench.peers is None:
        for key, argv in (("help", ["--help"]), ("list", ["model", "list"]),
                          ("versions", ["version", "list", model]),
                          ("resolve", ["resolve", f"{model}:prod"])):
            _pairs(bench, rounds, (got[key][0], ours(*argv)), label=f"5 {key}")
        rows += [Row.of(names[k], got[k][0], None, targets.get(k), note="peer unavailable")
                 for k in ("help", "list", "versions", "resolve")]
        return rows

    gto = bench.peers.exe("gto")

    def theirs(*argv: str) -> Callable[[], Sample]:
        return lambda: measure([gto, *argv], env=env, cwd=gto_reg)

    bench.say(f"5: building the {size} registry in GTO's format (git fast-import)")
    build_gto(gto_reg, spec, env)
    printed = run([gto, "show", f"{model}#prod", "--version"], env=env, cwd=gto_reg).strip()
    if printed != expected:
        raise StepError(f"gto show {model}#prod --version printed {printed!r}, not {expected}")
    reads = {"help": (["--help"], ["--help"]),
             "list": (["model", "list"], ["show"]),
             "versions": (["version", "list", model], ["show", model]),
             "resolve": (["resolve", f"{model}:prod"], ["show", f"{model}#prod", "--version"])}
    for key, (our_argv, their_argv) in reads.items():
        _pairs(bench, rounds, (got[key][0], ours(*our_argv)),
               (got[key][1], theirs(*their_argv)), label=f"5 [{size}] {key}")
    for i in range(rounds):
        bench.say(f"5 [{size}] register + assign: round {i + 1}/{rounds}")
        version = f"v2.0.{i}"
        run(["git", "commit", "-q", "--allow-empty", "-m", f"models at {version}"], env=env,
            cwd=gto_reg)  # GTO registers a commit: the new version's
        alternate(i, _append(got["register"][0], ours("version", "create", model, version)),
                  _append(got["register"][1], theirs("register", model, "--version", version)))
        alternate(i, _append(got["assign"][0], ours("tag", f"{model}@{version}", "prod")),
                  _append(got["assign"][1], theirs("assign", model, "--version", version,
                                                   "--stage", "prod")))
    rows += [Row.of(names[k], got[k][0], got[k][1], targets.get(k)) for k in names]
    return rows


def versus_gto(bench: Bench) -> list[Row]:
    models, versions = bench.sizes.gto
    rows = compare(bench, models, versions, bench.fast_repeat)
    if bench.sizes.gto_scale > 1:  # GTO takes 15-30 s a command there: three rounds
        rows += compare(bench, models * bench.sizes.gto_scale, versions,
                        min(3, bench.fast_repeat))
    return rows

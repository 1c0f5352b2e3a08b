"""Scenario 16's peers, each on a registry it can read (docs: bench/README.md, scenario 16).

* **GTO** reads promotions from Git tags only, and the scale registry has none (its
  versions are named ``v0``..``v19``: GTO needs ``vX.Y.Z``, so no setting can give them
  tags). A copy of it gets ``v1.0.0`` on its first 100 models and ``production`` moved
  onto it on every third (the models that had one), then ``modelbox config git-tags on`` and
  ``modelbox refs sync`` make the GTO tags for the whole history (timed: the cost of
  turning the setting on for a registry of that size). ``gto show --repo URL M#production``
  then races ``modelbox --repo URL resolve M:production`` on that same copy, both cold.
* **DVC** tracks files, not registries: ``dvc get URL PATH`` against a copy of the
  registry times out cloning its 100k commits and reads no file DVC tracks. The fair
  comparison is the same artifact (scenario 1's file) in each tool's own repository,
  both on the run's S3 bucket, both served by ``git daemon``: ``dvc get URL model.bin``
  against ``modelbox --repo URL get b/m:production``, cold (empty caches) each round.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from benchkit import data, peers
from benchkit.harness import (
    BUCKET,
    PROBES,
    Bench,
    Sample,
    StepError,
    alternate,
    measure,
    run,
)


def gto_copy(bench: Bench, reg: Path, models: int) -> tuple[Path, Sample, Sample, int]:
    """A copy of ``reg`` with SemVer versions and its GTO tags made: the copy, the
    ``config git-tags on`` and ``refs sync`` samples, and how many tags it made."""
    copy = bench.fresh("reach-gto") / reg.name
    bench.say(f"16: copying {reg.name} for GTO")
    shutil.copytree(reg, copy, symlinks=True)
    env = bench.env()
    bench.say(f"16: v1.0.0 on {models:,} models")
    run([bench.python, str(PROBES), "semver-versions", str(copy), str(models)], env=env,
        cwd=copy)
    on = measure([bench.modelbox, "config", "git-tags", "on"], env=env, cwd=copy)
    bench.say("16: modelbox refs sync (every GTO tag of the history)")
    sync = measure([bench.modelbox, "refs", "sync"], env=env, cwd=copy)
    made = run(["git", "for-each-ref", "--format=x", "refs/tags"], env=env, cwd=copy)
    return copy, on, sync, len(made.split())


def timed(argv: list[str], env: dict[str, str], cwd: Path, timeout: float,
          ) -> tuple[float, str | None, str]:
    """Wall seconds of one run, None or what went wrong (a timeout, an exit status), and
    what it printed."""
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return timeout, f">timeout {timeout:.0f} s", ""
    except OSError as error:
        raise StepError(str(error)) from error
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1][:70]
        return seconds, f"peer exit {done.returncode} after {seconds:.1f} s: {last}", ""
    return seconds, None, done.stdout.strip()


def artifact_repos(bench: Bench, served: Path) -> tuple[Path, str]:
    """Scenario 1's file as ``b/m:production`` in a modelbox registry and as ``model.bin``
    in a DVC repository, both on the bucket; bare mirrors ``mb.git`` and ``dvc.git`` in
    ``served``. Returns the file and modelbox's store (set through the environment, as
    scenario 1 does)."""
    assert bench.peers is not None
    source = data.big_file(bench)
    store = f"s3://{BUCKET}/reach-{time.time_ns()}"
    env = bench.s3_env(MODELBOX_STORE=store)
    reg = bench.fresh("reach-mbreg")
    mb = bench.modelbox
    for argv in (["init", str(reg)], ["model", "create", "b/m"],
                 ["version", "create", "b/m", "v1"],
                 ["artifact", "add", "b/m@v1", str(source), "-q"],
                 ["tag", "b/m@v1", "production"]):
        run([mb, *argv], env=env, cwd=reg if argv[0] != "init" else bench.work)
    dvc_root = bench.fresh("reach-dvcrepo")
    dvc = bench.peers.exe("dvc")
    denv = peers.dvc_env(bench.s3_env(), bench.work)
    for argv in (["git", "init", "-q"], [dvc, "init", "-q"],
                 [dvc, "remote", "add", "-d", "store", f"{store}-dvc"],
                 [dvc, "remote", "modify", "store", "endpointurl", bench.s3().endpoint]):
        run(argv, env=denv, cwd=dvc_root)
    shutil.copy2(source, dvc_root / source.name)
    for argv in ([dvc, "add", "-q", source.name], [dvc, "push", "-q"],
                 ["git", "add", "-A"], ["git", "commit", "-q", "-m", "data"]):
        run(argv, env=denv, cwd=dvc_root)
    for repo, name in ((reg, "mb.git"), (dvc_root, "dvc.git")):
        run(["git", "clone", "-q", "--mirror", str(repo), str(served / name)], env=env,
            cwd=bench.work)
    return source, store


def artifact_rounds(bench: Bench, base: str, source: Path, store: str,
                    ) -> tuple[list[Sample], list[Sample]]:
    """Cold ``modelbox --repo URL get`` and ``dvc get URL`` of the same file, alternating
    which goes first; each from empty caches."""
    assert bench.peers is not None
    ours: list[Sample] = []
    theirs: list[Sample] = []
    dvc = bench.peers.exe("dvc")
    for i in range(bench.repeat):
        bench.say(f"16: cold get of the artifact vs dvc get, round {i + 1}/{bench.repeat}")
        out = bench.fresh(f"reach-art{i}")
        env = bench.s3_env(MODELBOX_CACHE_DIR=str(out / "mbcache"),
                           MODELBOX_STORE=store)
        denv = peers.dvc_env(bench.s3_env(), out)

        def ours_step(out: Path = out, env: dict[str, str] = env) -> None:
            ours.append(measure([bench.modelbox, "--repo", f"{base}/mb.git", "get",
                                 "b/m:production", "-o", str(out / "mb"), "-q"],
                                env=env, cwd=out))

        def theirs_step(out: Path = out, denv: dict[str, str] = denv) -> None:
            theirs.append(measure([dvc, "get", f"{base}/dvc.git", source.name, "-o",
                                   str(out / "dvc.bin")], env=denv, cwd=out))

        steps: tuple[Callable[[], None], ...] = (ours_step, theirs_step)
        alternate(i, *steps)
        got = (out / "mb" / source.name).read_bytes() == (out / "dvc.bin").read_bytes()
        if not got:
            raise StepError("modelbox and dvc placed different bytes")
        shutil.rmtree(out, ignore_errors=True)
    return ours, theirs

"""``kill -9`` at random points of real ``modelbox`` processes, then recovery and checks.

Shared by ``tests/security/test_security_recovery.py`` (20 tries a command) and
``bench/stress.py`` (100). Each scenario builds its registry once, measures one
uninterrupted run of its command, then for each try starts the command as a real process
(its own process group, so any ``git`` child dies with it), sends SIGKILL to the group
after a random delay spread over the measured duration (seeded RNG; denser towards the
end, where the branch moves), runs ONE ordinary write
command (the recovery trigger: the next write finishes the job), and checks:

* ``git status --porcelain`` is empty and ``modelbox check`` exits 0 (tag refs agree with
  the manifests, no interrupted write is pending);
* the registry is in the old state or the new one, entirely (per scenario);
* for ``get``: every file under its final name in the output folder is whole and correct.

The recovery write and ``check`` go through ``cli`` (in-process in the tests, a process in
the benchmark); the killed command is always a real process.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Cli = Callable[[Sequence[str]], tuple[int, str, str]]
COMMANDS = ("version create --tag", "pull", "artifact add", "get")


@dataclass
class Outcome:
    command: str
    tries: int = 0
    killed: int = 0  # tries the signal reached before the command finished
    recovered: int = 0
    failures: list[str] = field(default_factory=list)


def git(*args: str | Path, cwd: Path) -> str:
    proc = subprocess.run(["git", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(map(str, args))}: {proc.stderr.strip()}")
    return proc.stdout


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Scenario:
    """One command killed again and again in one registry (or fresh copies of one)."""

    command = ""

    def __init__(self, root: Path, modelbox: str, cli: Cli) -> None:
        self.root, self.modelbox, self.cli = root, modelbox, cli
        self.repo = root / "registry"

    def ok(self, *argv: str | Path, repo: Path | None = None) -> str:
        code, out, err = self.cli(["--repo", str(repo or self.repo), *map(str, argv)])
        if code != 0:
            raise AssertionError(f"modelbox {' '.join(map(str, argv))} exited {code}: {err}")
        return out

    def setup(self) -> None:
        raise NotImplementedError

    def prepare(self, i: int) -> tuple[list[str], Path, dict[str, str]]:
        """Per-try state; returns the argv (after ``modelbox``), its cwd and extra env."""
        raise NotImplementedError

    def verify(self, i: int, repo: Path) -> list[str]:
        """After the kill and before the recovery write: what is wrong beyond check."""
        return []

    def finish(self) -> list[str]:
        """After all tries: a last look over everything the tries left."""
        return []

    def repo_of(self, i: int) -> Path:
        return self.repo


def _start(modelbox: str, argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[
        bytes]:
    return subprocess.Popen([modelbox, *argv], cwd=cwd, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def measure(scenario: Scenario, i: int) -> float:
    """One uninterrupted run of the command (try number ``i``): its duration."""
    argv, cwd, env = scenario.prepare(i)
    started = time.perf_counter()
    proc = _start(scenario.modelbox, argv, cwd, env)
    _, err = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"{scenario.command}: {err.decode()}")
    return time.perf_counter() - started


def kill_loop(scenario: Scenario, tries: int, seed: int = 13) -> Outcome:
    """``tries`` kills of the scenario's command at random points; never raises on a
    failed recovery (the outcome lists it), only on a broken setup."""
    rng = random.Random(seed)
    scenario.setup()
    duration = measure(scenario, 0)
    outcome = Outcome(scenario.command)
    for i in range(1, tries + 1):
        argv, cwd, env = scenario.prepare(i)
        repo = scenario.repo_of(i)
        proc = _start(scenario.modelbox, argv, cwd, env)
        # Over the whole run, denser towards its end, where the branch moves.
        time.sleep(duration * rng.random() ** 0.5)
        if proc.poll() is None:
            outcome.killed += 1
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        outcome.tries += 1
        problems = scenario.verify(i, repo)
        problems += _recover_and_check(scenario, i, repo)
        if problems:
            outcome.failures.append(f"try {i}: " + "; ".join(problems))
        else:
            outcome.recovered += 1
    outcome.failures += scenario.finish()
    return outcome


def _recover_and_check(scenario: Scenario, i: int, repo: Path) -> list[str]:
    problems: list[str] = []
    # The next write (an unrelated one) must finish whatever the kill interrupted.
    code, _, err = scenario.cli(["--repo", str(repo), "meta", "set", "bystander", "try",
                                 str(i)])
    if code != 0:
        problems.append(f"the next write failed: {err.strip()}")
    status = git("status", "--porcelain", cwd=repo)
    if status:
        problems.append(f"git status is not clean: {status.splitlines()[:3]}")
    code, out, err = scenario.cli(["--repo", str(repo), "check"])
    if code != 0:
        problems.append(f"check failed: {(err or out).strip().splitlines()[:3]}")
    return problems


def _tags(repo: Path, model: str) -> dict[str, str]:
    data = subprocess.run(["git", "show", f"HEAD:models/default/{model}/_tags.json"], cwd=repo,
                          capture_output=True, check=False).stdout
    return json.loads(data)["tags"] if data else {}


def _has(repo: Path, path: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"HEAD:{path}"], cwd=repo,
                          capture_output=True, check=False).returncode == 0


class VersionCreate(Scenario):
    command = "version create --tag"

    def setup(self) -> None:
        subprocess.run([self.modelbox, "init", str(self.repo)], check=True, capture_output=True)
        self.ok("model", "create", "m")
        self.ok("model", "create", "bystander")
        self.ok("version", "create", "m", "base", "--tag", "prod")

    def prepare(self, i: int) -> tuple[list[str], Path, dict[str, str]]:
        return (["version", "create", "m", f"v{i}", "--tag", f"rc{i}", "--meta", f"try={i}"],
                self.repo, {})

    def verify(self, i: int, repo: Path) -> list[str]:
        # Old or new, entirely: the version exists exactly when its tag does.
        exists = _has(repo, f"models/default/m/_versions/v{i}/_version.json")
        tagged = _tags(repo, "m").get(f"rc{i}") == f"v{i}"
        return [] if exists == tagged else [f"v{i} exists={exists} but tagged={tagged}"]


class Pull(Scenario):
    command = "pull"

    def __init__(self, root: Path, modelbox: str, cli: Cli, versions: int = 300) -> None:
        super().__init__(root, modelbox, cli)
        self.versions = versions
        self.origin = root / "origin"
        self.template = root / "template"

    def setup(self) -> None:
        from modelbox.names import parse_model
        from modelbox.registry import Registry

        subprocess.run([self.modelbox, "init", str(self.origin)], check=True,
                       capture_output=True)
        self.ok("model", "create", "m", repo=self.origin)
        self.ok("model", "create", "bystander", repo=self.origin)
        self.ok("version", "create", "m", "base", "--tag", "prod", repo=self.origin)
        subprocess.run([self.modelbox, "clone", str(self.origin), str(self.template)],
                       check=True, capture_output=True)
        registry = Registry.open(self.origin)
        model = parse_model("m")
        try:
            with registry.batch():
                for n in range(self.versions):
                    registry.create_version(model, f"p{n}", tags=[f"t{n}"] if n % 10 == 0
                                            else None)
                registry.tag(model, f"p{self.versions - 1}", "prod")
        finally:
            registry.close()
        self.new_head = git("rev-parse", "HEAD", cwd=self.origin).strip()
        self.old_head = git("rev-parse", "HEAD", cwd=self.template).strip()

    def repo_of(self, i: int) -> Path:
        return self.root / f"clone{i}"

    def prepare(self, i: int) -> tuple[list[str], Path, dict[str, str]]:
        clone = self.repo_of(i)
        shutil.rmtree(self.repo_of(i - 1), ignore_errors=True)  # keep the disk small
        shutil.copytree(self.template, clone, symlinks=True)
        return ["pull"], clone, {}

    def verify(self, i: int, repo: Path) -> list[str]:
        head = git("rev-parse", "HEAD", cwd=repo).strip()
        return [] if head in (self.old_head, self.new_head) else [f"HEAD is {head}"]


class ArtifactAdd(Scenario):
    command = "artifact add"

    def __init__(self, root: Path, modelbox: str, cli: Cli, size: int = 4 << 20) -> None:
        super().__init__(root, modelbox, cli)
        self.size = size
        self.files = root / "files"
        self.digests: dict[str, str] = {}

    def setup(self) -> None:
        subprocess.run([self.modelbox, "init", str(self.repo)], check=True, capture_output=True)
        self.ok("model", "create", "m")
        self.ok("model", "create", "bystander")
        self.ok("version", "create", "m", "v1", "--tag", "prod")
        self.files.mkdir()

    def prepare(self, i: int) -> tuple[list[str], Path, dict[str, str]]:
        rng = random.Random(i)
        paths = []
        for part in ("a", "b"):
            path = self.files / f"w{i}{part}.bin"
            path.write_bytes(rng.randbytes(self.size // 2))
            self.digests[path.name] = _sha256(path)
            paths.append(str(path))
        return ["artifact", "add", "m@v1", *paths, "-q"], self.repo, {}

    def verify(self, i: int, repo: Path) -> list[str]:
        names = [f"w{i}a.bin", f"w{i}b.bin"]
        present = [_has(repo, f"models/default/m/_versions/v1/_artifacts/{n}.json")
                   for n in names]
        return [] if present[0] == present[1] else [f"only some of {names} were added"]

    def finish(self) -> list[str]:
        # Every pointer committed by any try names a whole object: download them all.
        out = self.root / "verify-out"
        code, _, err = self.cli(["--repo", str(self.repo), "get", "m@v1", "-o", str(out), "-q"])
        if code != 0:
            return [f"get of everything added failed: {err.strip()}"]
        return [f"{p.name} differs from what was added" for p in out.iterdir()
                if p.name in self.digests and _sha256(p) != self.digests[p.name]]


class Get(Scenario):
    command = "get"

    def __init__(self, root: Path, modelbox: str, cli: Cli, size: int = 4 << 20) -> None:
        super().__init__(root, modelbox, cli)
        self.size = size
        self.digests: dict[str, str] = {}

    def setup(self) -> None:
        subprocess.run([self.modelbox, "init", str(self.repo)], check=True, capture_output=True)
        self.ok("model", "create", "m")
        self.ok("model", "create", "bystander")
        self.ok("version", "create", "m", "v1", "--tag", "prod")
        files = self.root / "files"
        files.mkdir()
        rng = random.Random(7)
        for n in range(4):
            path = files / f"shard{n}.bin"
            path.write_bytes(rng.randbytes(self.size))
            self.digests[path.name] = _sha256(path)
        self.ok("artifact", "add", "m@v1", *sorted(files.iterdir()), "-q")

    def prepare(self, i: int) -> tuple[list[str], Path, dict[str, str]]:
        # A cache of its own each try, so every try downloads from the store.
        out = self.root / f"out{i}"
        return (["get", "m:prod", "-o", str(out), "-q"], self.repo,
                {"MODELBOX_CACHE_DIR": str(self.root / f"cache{i}")})

    def verify(self, i: int, repo: Path) -> list[str]:
        out = self.root / f"out{i}"
        bad = [p.name for p in (out.iterdir() if out.exists() else [])
               if p.name in self.digests and _sha256(p) != self.digests[p.name]]
        return [f"{name} is in place but not whole" for name in bad]


SCENARIOS: dict[str, type[Scenario]] = {
    "version create --tag": VersionCreate, "pull": Pull, "artifact add": ArtifactAdd,
    "get": Get,
}

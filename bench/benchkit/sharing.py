"""Scenario 7: sharing the 1,000 x 10 registry, `modelbox push` / `clone` vs plain Git.

Both sides talk to bare repositories through ``file://`` URLs, so Git packs objects as it
would for a network remote (a plain path would let `git clone` hardlink them). The registry
has no artifacts: this measures the Git side of sharing. `git clone --mirror` checks out
nothing while `modelbox clone` checks out the registry branch, so a plain `git clone` (with
its checkout) is shown too.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

from benchkit.big_registry import registry
from benchkit.harness import Bench, Row, Sample, alternate, measure, run


def available(bench: Bench) -> bool:
    """Whether this modelbox has both `push` and `clone`."""
    helptext = run([bench.modelbox, "--help"], env=bench.env(), cwd=bench.work)
    commands = set(re.findall(r"^  ([a-z][a-z-]*)\s", helptext, flags=re.MULTILINE))
    return {"push", "clone"} <= commands


def sharing(bench: Bench) -> list[Row]:
    if not available(bench):
        print("scenario 7: modelbox push/clone not available yet")
        return []
    reg, _ = registry(bench)
    models, versions = bench.sizes.registry
    size = f"{models}x{versions}"
    env = bench.env()
    keys = ("mb_push", "git_push", "mb_noop", "git_noop", "mb_clone", "git_mirror", "git_clone")
    got: dict[str, list[Sample]] = {k: [] for k in keys}
    for i in range(bench.repeat):
        bench.say(f"7: round {i + 1}/{bench.repeat}")
        where = bench.fresh(f"sharing{i}")
        ours, theirs = where / "mb.git", where / "git.git"
        for bare in (ours, theirs):
            run(["git", "init", "-q", "--bare", str(bare)], env=env, cwd=where)
        push = [bench.modelbox, "push", f"file://{ours}"]
        mirror = ["git", "push", "-q", "--mirror", f"file://{theirs}"]
        for mb_key, git_key in (("mb_push", "git_push"), ("mb_noop", "git_noop")):
            alternate(i, _step(got[mb_key], push, env, reg), _step(got[git_key], mirror, env, reg))
        alternate(
            i,
            _step(got["mb_clone"], [bench.modelbox, "clone", f"file://{ours}",
                                    str(where / "mb-clone")], env, where),
            _step(got["git_mirror"], ["git", "clone", "-q", "--mirror", f"file://{ours}",
                                      str(where / "git-mirror")], env, where),
            _step(got["git_clone"], ["git", "clone", "-q", f"file://{ours}",
                                     str(where / "git-clone")], env, where),
        )
        shutil.rmtree(where, ignore_errors=True)
    return [
        Row.of(f"7. [{size}] push to a new bare repo vs git push --mirror", got["mb_push"],
               got["git_push"]),
        Row.of(f"7. [{size}] push again, nothing new vs git push --mirror", got["mb_noop"],
               got["git_noop"]),
        Row.of(f"7. [{size}] clone vs git clone --mirror", got["mb_clone"], got["git_mirror"]),
        Row.of(f"7. [{size}] clone vs git clone (with checkout)", got["mb_clone"],
               got["git_clone"]),
    ]


def _step(samples: list[Sample], argv: list[str], env: dict[str, str], cwd: Path,
          ) -> Callable[[], None]:
    return lambda: samples.append(measure(argv, env=env, cwd=cwd))

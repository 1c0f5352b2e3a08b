"""Scenario 12: the ref advertisement of a repository with 100,000+ refs, protocol v0 vs v2.

A registry mirrors each tag as an annotated tag ``refs/modelbox/tags/NS/MODEL/TAG``; at a
million versions with a tag or two each, a remote holds hundreds of thousands of them.
modelbox lists a remote with ``git -c protocol.version=0 ls-remote`` (docs/collaboration.md,
"The listing is protocol v0"): in v0 the server sends every ref (and, for an annotated
tag, its peeled line) before the client says a word; in v2 the client asks ``ls-refs``
with ``ref-prefix`` arguments and the server sends only those.

The repository is synthetic and made in seconds: one commit on ``main``, a commit on
``refs/modelbox/audit``, and N annotated tags made by one ``git fast-import``, packed and
renamed into ``refs/modelbox/tags/teamK/mXXXXX/tJ``. It is served by the tests' ``git
daemon``. Each row is a fresh ``git`` process, v0 (what modelbox does today) against v2:
the whole listing, the listing of the two refs a pull wants (v2 sends them as prefixes;
v0 filters on the client), and a fetch of ``main`` with nothing new.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
import zlib
from pathlib import Path

from benchkit.harness import Bench, Row, Sample, StepError, alternate, run
from benchkit.sharing import _step, git_daemon

TAGS_PER_MODEL = 4


def make_repository(bench: Bench, path: Path, refs: int) -> None:
    """A bare repository with ``refs`` annotated tags (and main, and an audit ref).

    fast-import makes the two commits; the tag objects go in as one pack written here and
    indexed by ``git index-pack`` (fast-import would write a loose ref per tag: minutes on
    this disk at 300,000), and the refs straight into ``packed-refs``, peeled and sorted,
    as ``git pack-refs`` writes them."""
    env = bench.env()
    run(["git", "init", "-q", "--bare", "--initial-branch=main", str(path)], env=env,
        cwd=path.parent)
    who = "bench <bench@example.com> 1700000000 +0000"
    script = "\n".join([
        "commit refs/heads/main", f"committer {who}", "data 5", "main",
        "M 644 inline README", "data 6", "hello", "",
        "commit refs/modelbox/audit", f"committer {who}", "data 6", "audit", ""])
    done = subprocess.run(["git", "fast-import", "--quiet"], input=script.encode(), cwd=path,
                          env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise StepError(f"git fast-import: {done.stderr.decode(errors='replace')[-500:]}")
    main = run(["git", "rev-parse", "refs/heads/main"], env=env, cwd=path).strip()
    audit = run(["git", "rev-parse", "refs/modelbox/audit"], env=env, cwd=path).strip()
    packed = [("refs/heads/main", main, ""), ("refs/modelbox/audit", audit, "")]
    pack = [b"PACK", struct.pack(">II", 2, refs)]
    for k in range(refs):
        model, tag = divmod(k, TAGS_PER_MODEL)
        name = f"team{model % 10}/m{model:05d}/t{tag}"
        body = (f"object {main}\ntype commit\ntag {name}\ntagger {who}\n\nv{tag}\n").encode()
        packed.append((f"refs/modelbox/tags/{name}",
                       hashlib.sha1(b"tag %d\0" % len(body) + body).hexdigest(), main))
        size, header = len(body), []
        first = (4 << 4) | (size & 15)  # object type 4: tag
        size >>= 4
        while size:
            header.append(first | 0x80)
            first, size = size & 0x7F, size >> 7
        header.append(first)
        pack += [bytes(header), zlib.compress(body)]
    data = b"".join(pack)
    done = subprocess.run(["git", "index-pack", "--stdin"], input=data + hashlib.sha1(data)
                          .digest(), cwd=path, env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise StepError(f"git index-pack: {done.stderr.decode(errors='replace')[-500:]}")
    text = ["# pack-refs with: peeled fully-peeled sorted "]
    for name, sha, peeled in sorted(packed, key=lambda item: item[0].encode()):
        text += [f"{sha} {name}", *([f"^{peeled}"] if peeled else [])]
    (path / "packed-refs").write_text("\n".join(text) + "\n")
    for loose in ("refs/heads/main", "refs/modelbox/audit"):
        (path / loose).unlink()


def refs(bench: Bench) -> list[Row]:
    rows: list[Row] = []
    served = bench.fresh("refs-served")
    for count in bench.sizes.scale_refs:
        name = _label(count)
        bench.say(f"12: making a repository with {count:,} tag refs")
        make_repository(bench, served / f"{name}.git", count)
    with git_daemon(served) as base:
        for count in bench.sizes.scale_refs:
            name = _label(count)
            rows += _measure(bench, f"{base}/{name}.git", name)
    return rows


def _label(count: int) -> str:
    if count >= 1_000_000 and count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    return f"{count // 1000}k" if count >= 1000 else str(count)


def _measure(bench: Bench, url: str, name: str) -> list[Row]:
    env = bench.env()
    client = bench.fresh(f"refs-client-{name}")
    run(["git", "init", "-q", "--bare"], env=env, cwd=client)
    wanted = ["refs/heads/main", "refs/modelbox/audit"]
    run(["git", "fetch", "-q", url, *(f"{ref}:{ref}" for ref in wanted)], env=env, cwd=client)
    listing = run(["git", "-c", "protocol.version=0", "ls-remote", url], env=env, cwd=client)
    cases = {  # ls-remote sends v2 ref-prefixes for --heads, not for its tail patterns
        "ls-remote, every ref": ["ls-remote", url],
        "ls-remote --heads (v2: ref-prefix refs/heads/)": ["ls-remote", "--heads", url],
        "fetch main + audit, nothing new (what a pull asks)":
            ["fetch", "-q", url, *(f"{ref}:{ref}" for ref in wanted)],
    }
    got: dict[str, tuple[list[Sample], list[Sample]]] = {k: ([], []) for k in cases}
    for i in range(bench.fast_repeat):
        bench.say(f"12: {name} refs, round {i + 1}/{bench.fast_repeat}")
        for title, argv in cases.items():
            v0, v2 = got[title]
            alternate(i, _step(v0, ["git", "-c", "protocol.version=0", *argv], env, client),
                      _step(v2, ["git", "-c", "protocol.version=2", *argv], env, client))
    note = f"v0 listing {len(listing.encode()) / 1e6:.1f} MB, {len(listing.splitlines()):,} lines"
    return [Row.of(f"12. [{name} refs] {title}, protocol v0 vs v2", v0, v2,
                   note=note if title.startswith("ls-remote, every") else "")
            for title, (v0, v2) in got.items()]


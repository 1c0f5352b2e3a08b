"""Scenario 13: the sharded registry of docs/scale.md, simulated: N registries (one
namespace each, built by the probe and cached) behind one small index.

The index (:func:`write_index`, format ``modelbox-shard-index/1``) is one JSON file: each
shard's namespace prefix, location and the registry-branch commit the entry was made
from, and every model's listing line (name, owner, task) — what ``model list`` prints.
In the design it lives in its own small Git repository next to the shards, on the same
host, and the writer that changes a shard's models updates it (docs/scale.md).

As a probe (``python scale_shards.py COMMAND``, standard library only):

* ``index INDEX SHARD...``: write INDEX from the shards (``modelbox model list --json``
  in each); prints the seconds it took;
* ``resolve INDEX REF``: find REF's shard in INDEX (the longest namespace prefix) and
  become ``modelbox --repo SHARD resolve REF``;
* ``list INDEX [NAMESPACE]``: print the models of INDEX (of one namespace and below).

The scenario times, as fresh processes, ``resolve`` and ``model list`` through the index
against the same commands on the one 100,000-version registry (scenario 10's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchkit.harness import Bench, Row

FORMAT = "modelbox-shard-index/1"


def _modelbox() -> str:
    found = Path(sys.executable).with_name("modelbox")
    return str(found) if found.exists() else (shutil.which("modelbox") or "modelbox")


def write_index(index: Path, shards: list[Path]) -> float:
    """Write the index of ``shards`` atomically; the seconds it took."""
    started = time.perf_counter()
    entries, models = [], []
    for shard in shards:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=shard, check=True,
                              capture_output=True, text=True).stdout.strip()
        listed = json.loads(subprocess.run([_modelbox(), "--repo", str(shard), "model", "list",
                                            "--json"], check=True, capture_output=True,
                                           text=True).stdout)
        prefixes = sorted({m["namespace"] for m in listed})
        entries.append({"prefixes": prefixes, "location": str(shard), "head": head})
        models += [[f"{m['namespace']}/{m['name']}", m["owner"], m["task"]] for m in listed]
    temp = index.with_suffix(".tmp")
    temp.write_text(json.dumps({"format": FORMAT, "shards": entries,
                                "models": sorted(models)}))
    os.replace(temp, index)
    return time.perf_counter() - started


def _load(index: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(index.read_text())
    if document.get("format") != FORMAT:
        raise SystemExit(f"{index}: not a {FORMAT} index")
    return document


def shard_of(document: dict[str, Any], model: str) -> str:
    """The location of the shard holding ``model`` (its namespace's longest prefix)."""
    namespace = model.rsplit("/", 1)[0]
    best, where = -1, None
    for entry in document["shards"]:
        assert isinstance(entry, dict)
        for prefix in entry["prefixes"]:
            if (namespace == prefix or namespace.startswith(prefix + "/")) \
                    and len(prefix) > best:
                best, where = len(prefix), entry["location"]
    if where is None:
        raise SystemExit(f"modelbox: error: no shard holds namespace {namespace!r}")
    return str(where)


def shards(bench: Bench) -> list[Row]:
    """Scenario 13 (see the module's docstring)."""
    from benchkit import scale_cache
    from benchkit.harness import Row, Sample, measure
    from benchkit.scale import MODEL, label

    count, models, versions = bench.sizes.scale_shards
    paths = [scale_cache.registry(bench, models, versions, namespace=f"team{n}")[0]
             for n in range(count)]
    whole, _ = scale_cache.registry(bench, *bench.sizes.scale)
    env, mb, router = bench.env(), bench.modelbox, [bench.python, "-I", "-S", __file__]
    index = bench.work / "shards-index.json"
    made = measure([*router, "index", str(index), *map(str, paths)], env=env, cwd=bench.work,
                   capture=True)
    size = f"13. [{count} x {label(models, versions)} shards]"
    big = label(*bench.sizes.scale)
    commands = {
        f"resolve {MODEL}:production via the index vs on the {big} registry":
            ([*router, "resolve", str(index), f"{MODEL}:production"],
             [mb, "resolve", f"{MODEL}:production"]),
        f"model list via the index vs on the {big} registry":
            ([*router, "list", str(index)], [mb, "model", "list"]),
        "model list --namespace team1 via the index vs on it":
            ([*router, "list", str(index), "team1"],
             [mb, "model", "list", "--namespace", "team1"]),
    }
    ours: dict[str, list[Sample]] = {k: [] for k in commands}
    theirs: dict[str, list[Sample]] = {k: [] for k in commands}
    one_shard: list[Sample] = []
    for i in range(bench.fast_repeat):
        bench.say(f"13: round {i + 1}/{bench.fast_repeat}")
        for title, (sharded, monolith) in commands.items():
            ours[title].append(measure(sharded, env=env, cwd=bench.work))
            theirs[title].append(measure(monolith, env=env, cwd=whole))
        one_shard.append(measure([mb, "model", "list"], env=env, cwd=paths[0]))
    rows = [Row(f"{size} write the index ({count} x model list --json)",
                float(made.output.strip().splitlines()[-1]), ours_rss=made.rss_mb)]
    rows += [Row.of(f"{size} {title}", ours[title], theirs[title]) for title in commands]
    rows.append(Row.of(f"{size} model list in one shard ({models:,} models)", one_shard))
    return rows


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "index":
        print(write_index(Path(args[0]), [Path(a) for a in args[1:]]))
    elif command == "resolve":
        ref = args[1]
        model = ref.split(":", 1)[0].split("@", 1)[0]
        shard = shard_of(_load(Path(args[0])), model)
        os.execv(_modelbox(), [_modelbox(), "--repo", shard, "resolve", ref])
    elif command == "list":
        namespace = args[1] if len(args) > 1 else None
        lines = [m for m in _load(Path(args[0]))["models"] if isinstance(m, list)]
        out = [f"{name}\t{owner}\t{task}" for name, owner, task in lines
               if namespace is None or str(name).startswith(namespace + "/")]
        sys.stdout.write("\n".join(out) + "\n")
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""What the benchmark runs inside child processes: ``python probes.py COMMAND ARGS...``.

* ``s3-put-file SRC KEY`` / ``s3-get-file KEY DEST`` / ``s3-put-list PLAN`` /
  ``s3-get-list PLAN``: the plain-s3fs baselines, with s3fs's defaults (a PLAN is a JSON file
  of ``[source, destination]`` pairs, too long for a command line);
* ``hash-modelbox PATH`` / ``hash-hashlib PATH``: print the seconds the hash itself took;
* ``readd REF PATH``: print the seconds one ``upload_artifact`` of PATH took (cwd: registry);
* ``build-registry PATH MODELS VERSIONS``: the 1,000 x 10 registry through the Python API;
  prints ``{"batched": versions/s, "single": versions/s}``;
* ``semver-versions PATH MODELS``: ``v1.0.0`` on every model of ``build-registry``,
  ``production`` moved onto it on every third (scenario 16's GTO copy); prints seconds;
* ``build-plan PATH PLAN``: the registry of a JSON plan (models, versions, tag moves), in
  batches; prints the seconds it took;
* ``build-registry PATH MODELS VERSIONS NAMESPACE``: the same with every model in one
  namespace (a shard of scenario 13);
* ``add-versions PATH MODELS COUNT BATCH PREFIX``: COUNT more versions named PREFIXn, round
  robin over the probe's models, published BATCH at a time (0: one publish per call, no
  ``batch()``); prints versions/s.

The last line printed is the measurement.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def _s3() -> Any:
    import s3fs

    return s3fs.S3FileSystem(endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def _pairs(plan: str) -> tuple[list[str], list[str]]:
    pairs = json.loads(Path(plan).read_text())
    return [p[0] for p in pairs], [p[1] for p in pairs]


def hash_modelbox(path: str) -> float:
    from modelbox.objects import hash_file

    started = time.perf_counter()
    hash_file(Path(path))  # no cache: it must read the file
    return time.perf_counter() - started


def hash_hashlib(path: str) -> float:
    import hashlib

    started = time.perf_counter()
    with open(path, "rb") as stream:
        if sys.version_info >= (3, 11):
            hashlib.file_digest(stream, "sha256")
        else:  # what file_digest does, for Python 3.10
            hasher, buffer = hashlib.sha256(), bytearray(1 << 18)
            view = memoryview(buffer)
            while count := stream.readinto(buffer):
                hasher.update(view[:count])
    return time.perf_counter() - started


def readd(ref: str, path: str) -> float:
    from modelbox import ModelBoxClient

    client = ModelBoxClient(".")
    version = client.model_version(ref)
    started = time.perf_counter()
    version.upload_artifact([path])
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def build_registry(path: str, models: int, versions: int,
                   namespace: str | None = None) -> dict[str, float]:
    """One commit per version, published in batches; then 100 more, one publish each.
    Models ``mXXXX`` spread over namespaces ``team0..team9``, or all in ``namespace``."""
    from modelbox import MLFramework, ModelBoxClient

    client = ModelBoxClient(path, create=True)
    # Metadata only, no artifacts: `production` is an ordinary tag here (a protected tag
    # releases what it names, and a version with no artifacts cannot be released).
    client.registry.set_protected_tags([])
    with client.batch():
        handles = [client.new_model(f"m{i:04d}", "bench@example.com",
                                    namespace or f"team{i % 10}", "t")
                   for i in range(models)]
    started = time.perf_counter()
    for v in range(versions):
        with client.batch():
            for i, model in enumerate(handles):
                tags = ["production"] if v == versions // 2 and i % 3 == 0 else None
                model.new_model_version(f"v{v}", framework=MLFramework.PYTORCH,
                                        unique_tags=tags)
    batched = models * versions / (time.perf_counter() - started)
    sample = handles[: min(100, models)]
    started = time.perf_counter()
    for model in sample:  # one publish per call, as a script without batch() does
        model.new_model_version("single")
    single = len(sample) / (time.perf_counter() - started)
    client.close()
    return {"batched": batched, "single": single}


def add_versions(path: str, models: int, count: int, batch: int, prefix: str) -> float:
    """COUNT versions on the models ``build_registry`` made, published ``batch`` at a time
    (0: no ``batch()``, one publish per call); versions/s, opening the registry included."""
    import contextlib

    from modelbox import MLFramework, ModelBoxClient

    started = time.perf_counter()
    client = ModelBoxClient(path)
    handles: dict[int, Any] = {}
    done = 0
    while done < count:
        size = min(batch, count - done) if batch else 1
        with client.batch() if batch else contextlib.nullcontext():
            for k in range(done, done + size):
                i = k % models
                if i not in handles:
                    handles[i] = client.model(f"team{i % 10}/m{i:04d}")
                handles[i].new_model_version(f"{prefix}{k // models}",
                                             framework=MLFramework.PYTORCH)
        done += size
    client.close()
    return count / (time.perf_counter() - started)


def semver_versions(path: str, models: int) -> float:
    """``v1.0.0`` on each of the ``build_registry`` models and ``production`` moved onto it
    where that model has one (every third): names GTO can hold, so that the registry's
    Git tags give ``gto`` something to read. 500 models per batch; prints seconds."""
    from modelbox import MLFramework, ModelBoxClient

    started = time.perf_counter()
    client = ModelBoxClient(path)
    for start in range(0, models, 500):
        with client.batch():
            for i in range(start, min(start + 500, models)):
                version = client.model(f"team{i % 10}/m{i:04d}").new_model_version(
                    "v1.0.0", framework=MLFramework.PYTORCH)
                if i % 3 == 0:
                    version.tag("production")
    client.close()
    return time.perf_counter() - started


def build_plan(path: str, plan_file: str) -> float:
    """Models, then versions round by round, then tag moves, as the GTO side is built."""
    from modelbox import ModelBoxClient

    plan = json.loads(Path(plan_file).read_text())
    started = time.perf_counter()
    client = ModelBoxClient(path, create=True)
    with client.batch():
        handles = {name: client.new_model(name) for name in plan["models"]}
    for version in plan["versions"]:
        with client.batch():
            for handle in handles.values():
                handle.new_model_version(version)
    with client.batch():
        for model, version, tag in plan["tags"]:
            handles[model].version(version).tag(tag)
    client.close()
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    result: object
    if command == "s3-put-file":
        _s3().put_file(args[0], args[1])
    elif command == "s3-get-file":
        _s3().get_file(args[0], args[1])
    elif command == "s3-put-list":
        _s3().put(*_pairs(args[0]))
    elif command == "s3-get-list":
        _s3().get(*_pairs(args[0]))
    elif command == "hash-modelbox":
        print(hash_modelbox(args[0]))
    elif command == "hash-hashlib":
        print(hash_hashlib(args[0]))
    elif command == "readd":
        print(readd(args[0], args[1]))
    elif command == "build-registry":
        result = build_registry(args[0], int(args[1]), int(args[2]), *args[3:4])
        print(json.dumps(result))
    elif command == "add-versions":
        print(add_versions(args[0], int(args[1]), int(args[2]), int(args[3]), args[4]))
    elif command == "semver-versions":
        print(semver_versions(args[0], int(args[1])))
    elif command == "build-plan":
        print(build_plan(args[0], args[1]))
    else:
        print(f"unknown probe {command!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Hostile input: names, metadata and documents that once crashed modelbox or collided.

Each case ends in one ``modelbox: error:`` line and exit 1, with the registry, its store and
the cache exactly as they were (issue 13: "Bad input still crashes", "Names that differ
only in case"). The limits are documented in docs/design.md ("Limits") and stated once in
``modelbox/limits.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hostile import MODELBOX, assert_refused, fingerprint, modelbox

from modelbox import canonical, limits
from modelbox.errors import InvalidValueError
from modelbox.manifests import DirectoryManifest, parse
from modelbox.names import parse_model, parse_reference
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Git, Run
    from s3server import S3Server

NS_40x128 = "/".join(["a" * 128] * 40)
DEEP = "[" * 5000 + "]" * 5000


@pytest.fixture
def reg(tmp_path: Path, run: Run) -> Path:
    """A registry (store: a folder beside it) with default/m@v1 tagged prod, an artifact
    Model.pt, the models team/y and default/m/Sub, and the experiment exp/e with c1."""
    path, store = tmp_path / "reg", tmp_path / "store"
    (tmp_path / "weights.bin").write_bytes(b"weights")
    assert run("init", path, "--store", store).code == 0
    for argv in (
        ("model", "create", "m"), ("version", "create", "m", "v1", "--tag", "prod"),
        ("artifact", "add", "m@v1", tmp_path / "weights.bin", "--as", "Model.pt"),
        ("model", "create", "team/y"), ("model", "create", "default/m/Sub"),
        ("experiment", "create", "exp/e"), ("checkpoint", "create", "exp/e", "c1"),
    ):
        result = run("--repo", path, *argv)
        assert result.code == 0, (argv, result.err)
    return path


def roots(tmp_path: Path) -> list[Path]:
    """Everything a command could touch: the registry, its store, the cache, an output."""
    return [tmp_path / "reg", tmp_path / "store", tmp_path / "cache", tmp_path / "out"]


# -- names and values given on the command line ----------------------------------------------
WRITES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # paths no clone could hold (ENAMETOOLONG after the commit, before)
    "namespace-40x128": (("model", "create", f"{NS_40x128}/m"), ("at most 320 bytes",)),
    "namespace-3x128": (("model", "create", "/".join(["n" * 128] * 3)), ("at most 320",)),
    "experiment-40x128": (("experiment", "create", f"{NS_40x128}/e"), ("at most 320",)),
    "artifact-as-300": (("artifact", "add", "m@v1", "{file}", "--as", "a" * 300),
                        ("invalid artifact name", "at most 241 are allowed")),
    "artifact-as-long-path": (("artifact", "add", "m@v1", "{file}", "--as",
                               "/".join(["d" * 200] * 4)), ("at most 768 are allowed",)),
    # metadata values
    "meta-5000-digits": (("model", "create", "x", "--meta", "k=" + "9" * 5000),
                         ("value of 'k'", "more than 100 digits")),
    "meta-5000-deep": (("version", "create", "m", "v2", "--meta", "k=" + DEEP),
                       ("value of 'k'", "deeper than 64 levels")),
    "meta-set-5000-digits": (("meta", "set", "m@v1", "k", "9" * 5000), ("more than 100 digits",)),
    "meta-set-long-float": (("meta", "set", "m", "k", "1" * 101 + ".5"), ("more than 100",)),
    "meta-set-5000-deep": (("meta", "set", "m", "k", DEEP), ("deeper than 64 levels",)),
    "meta-set-65-deep": (("meta", "set", "m", "k", "[" * 65 + "]" * 65), ("deeper than 64",)),
    "meta-set-deep-object": (("meta", "set", "m", "k", '{"a":' * 70 + "1" + "}" * 70),
                             ("deeper than 64",)),
    "meta-lone-surrogate": (("meta", "set", "m", "k", '"\\ud800"'),
                            ("not valid UTF-8", "\\ud800")),
    "meta-lone-low-surrogate": (("meta", "set", "m", "k", '["x\\udc00"]'),
                                ("not valid UTF-8", "\\udc00")),
    # undecodable bytes on a command line reach Python as lone surrogates (surrogateescape)
    "meta-non-utf8-value": (("model", "create", "x", "--meta", "k=\udcff\udcfe"),
                            ("not valid UTF-8", "\\udcff")),
    "meta-non-utf8-key": (("model", "create", "x", "--meta", "\udcffk=1"),
                          ("not valid UTF-8",)),
    "meta-set-non-utf8": (("meta", "set", "m@v1", "k", "\udcff"), ("not valid UTF-8",)),
    "description-non-utf8": (("model", "create", "x", "--description", "\udcff"),
                             ("not valid UTF-8",)),
    "task-non-utf8": (("model", "create", "x", "--task", "t\udcff"), ("not valid UTF-8",)),
    "version-name-non-utf8": (("version", "create", "m", "v2", "--name", "\udcff"),
                              ("not valid UTF-8",)),
    "metric-key-non-utf8": (("metrics", "log", "m@v1", "l\udcff=1"), ("not valid UTF-8",)),
    "metric-value-5000-digits": (("metrics", "log", "m@v1", "loss=" + "9" * 5000),
                                 ("value of 'loss'", "more than 100 digits")),
    "event-name-non-utf8": (("event", "log", "m@v1", "e\udcff"), ("invalid event name",)),
    "event-source-non-utf8": (("event", "log", "m@v1", "e", "--source", "\udcff"),
                              ("invalid event source", "not valid UTF-8")),
    "artifact-as-non-utf8": (("artifact", "add", "m@v1", "{file}", "--as", "x\udcff"),
                             ("invalid artifact name", "not valid UTF-8")),
    "artifact-track-non-utf8": (("artifact", "track", "m@v1", "s3://b/x\udcff"),
                                ("invalid artifact name", "not valid UTF-8")),
    "artifact-track-300": (("artifact", "track", "m@v1", "s3://b/" + "t" * 300),
                           ("invalid artifact name", "at most 241")),
    "owner-lone-surrogate": (("model", "create", "x", "--owner", "\ud800"),
                             ("not valid UTF-8",)),
    # names that differ only in case from an existing one, at any segment
    "model-M": (("model", "create", "M"), ("default/M", "existing default/m")),
    "namespace-Team": (("model", "create", "Team/x"), ("Team", "existing team")),
    "namespace-TEAM-deeper": (("model", "create", "TEAM/sub/x"), ("existing team",)),
    "version-V1": (("version", "create", "m", "V1"), ("existing default/m@v1",)),
    "tag-Prod": (("tag", "m@v1", "Prod"), ("existing tag default/m:prod",)),
    "version-tag-PROD": (("version", "create", "m", "v2", "--tag", "PROD"),
                         ("existing tag default/m:prod",)),
    "two-tags-one-call": (("version", "create", "m", "v2", "--tag", "qa", "--tag", "QA"),
                          ("existing tag default/m:qa",)),
    "tag-over-model-Sub": (("tag", "m@v1", "sub"), ("collide with the models under",)),
    "model-under-tag-PROD": (("model", "create", "default/m/PROD/x"), ("tag default/m:prod",)),
    "artifact-model.pt": (("artifact", "add", "m@v1", "{file}", "--as", "model.pt"),
                          ("existing artifact Model.pt of default/m@v1",)),
    "experiment-Exp": (("experiment", "create", "Exp/e"), ("existing exp",)),
    "checkpoint-C1": (("checkpoint", "create", "exp/e", "C1"), ("existing exp/e@c1",)),
}


@pytest.mark.parametrize("case", list(WRITES))
def test_bad_names_and_values_are_refused_in_one_line(
    case: str, reg: Path, tmp_path: Path, run: Run
) -> None:
    argv, needles = WRITES[case]
    (tmp_path / "other.bin").write_bytes(b"other bytes")
    argv = tuple(str(tmp_path / "other.bin") if a == "{file}" else a for a in argv)
    before = fingerprint(*roots(tmp_path))
    result = run("--repo", reg, *argv)
    assert_refused(result.code, result.err, *needles)
    assert fingerprint(*roots(tmp_path)) == before


def test_undecodable_bytes_in_a_real_argv_are_refused(reg: Path, tmp_path: Path) -> None:
    """Real bytes 0xff 0xfe in argv (not UTF-8), through a real process."""
    before = fingerprint(*roots(tmp_path))
    proc = subprocess.run(
        [MODELBOX, "--repo", str(reg), "meta", "set", "m@v1", "k", b"\xff\xfe".decode(
            "utf-8", "surrogateescape")], capture_output=True, text=True, check=False,
    )
    assert_refused(proc.returncode, proc.stderr, "not valid UTF-8")
    assert fingerprint(*roots(tmp_path)) == before


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


API_METADATA: dict[str, dict[str, Any]] = {
    "int-5000-digits": {"k": 10**5000},
    "int-101-digits": {"k": -(10**100)},
    "list-5000-deep": {"k": _nested(5000)},
    "lone-surrogate-key": {"\ud800": 1},
    "lone-surrogate-value": {"k": {"x": "\udcff"}},
}


@pytest.mark.parametrize("case", list(API_METADATA))
def test_bad_metadata_through_the_python_api_is_refused(
    case: str, reg: Path, tmp_path: Path
) -> None:
    before = fingerprint(*roots(tmp_path))
    registry = Registry.open(reg)
    try:
        with pytest.raises(InvalidValueError, match="metadata"):
            registry.create_model(parse_model("x"), metadata=API_METADATA[case])
        with pytest.raises(InvalidValueError, match="metadata"):
            registry.create_version(parse_model("m"), "v2", metadata=API_METADATA[case])
    finally:
        registry.close()
    assert fingerprint(*roots(tmp_path)) == before


def test_metadata_too_large_for_any_reader_is_refused(reg: Path, tmp_path: Path) -> None:
    """A manifest over its cap would be refused by every later read: never write one."""
    before = fingerprint(*roots(tmp_path))
    registry = Registry.open(reg)
    try:
        with pytest.raises(InvalidValueError, match="more than the 16 MiB every reader"):
            registry.set_metadata(parse_reference("m@v1"), "blob", "x" * (16 << 20))
    finally:
        registry.close()
    assert fingerprint(*roots(tmp_path)) == before


def test_values_at_the_limits_are_accepted(reg: Path, run: Run) -> None:
    deepest = "[" * limits.MAX_VALUE_DEPTH + "]" * limits.MAX_VALUE_DEPTH
    assert run("--repo", reg, "meta", "set", "m", "deep", deepest).code == 0
    assert run("--repo", reg, "meta", "set", "m", "big", "9" * 100).code == 0
    registry = Registry.open(reg)
    try:
        registry.set_metadata(parse_reference("m"), "api", -(10**100 - 1))
    finally:
        registry.close()
    longest = "/".join(["n" * 100, "n" * 100, "n" * 110])  # 312 bytes
    assert run("--repo", reg, "model", "create", longest).code == 0
    assert run("--repo", reg, "version", "create", longest, "v" * 128).code == 0
    assert run("--repo", reg, "check").code == 0


# -- documents that arrive with a pull or sit in a store ---------------------------------------
VERSION = "models/default/m/_versions/v1/_version.json"
TAGS = "models/default/m/_tags.json"
POINTER = "models/default/m/_versions/v1/_artifacts/Model.pt.json"


def _with(text: str, extra: str) -> str:
    return text.rstrip().rstrip("}") + f', {extra}}}\n'


def _hostile_version(text: str, kind: str) -> str:
    if kind == "deep":
        return _with(text, '"x": ' + "[" * 100_000 + "]" * 100_000)
    if kind == "digits":
        return text.replace('"metadata": {}', '"metadata": {"k": ' + "9" * 5000 + "}")
    return text.replace('"metadata": {}', '"metadata": {"k": "\\ud800"}')


DOCUMENTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name -> (file, how to spoil it, the commands that read it)
    "version-100000-deep": (VERSION, "deep", ("version list m", "get m@v1", "version show m@v1",
                                              "model show m", "diff HEAD~1 HEAD")),
    "version-5000-digits": (VERSION, "digits", ("version list m", "get m@v1",
                                                "version show m@v1")),
    "version-lone-surrogate": (VERSION, "surrogate", ("version list m", "get m@v1",
                                                      "version show m@v1")),
    "tags-100000-deep": (TAGS, "deep", ("resolve m:prod", "version list m", "tag m@v1 qa")),
    "pointer-over-64KiB": (POINTER, "large", ("get m@v1", "artifact list m@v1")),
}
READS = [(name, command) for name, (_, _, commands) in DOCUMENTS.items()
         for command in commands]


def _spoil(reg: Path, name: str, git: Git) -> None:
    """Commit the hostile document with plain git, as a pull from a hostile remote would."""
    path, kind, _ = DOCUMENTS[name]
    file = reg / path
    text = file.read_text(encoding="utf-8")
    if path == VERSION:
        text = _hostile_version(text, kind)
    elif path == TAGS:
        text = _with(text, '"x": ' + "[" * 100_000 + "]" * 100_000)
    else:
        text = text.rstrip() + " " * (limits.CAPS["pointer"] + 1) + "\n"
    file.write_text(text, encoding="utf-8")
    git("commit", "-qam", "hostile", cwd=reg)


@pytest.mark.parametrize(("name", "command"), READS, ids=[f"{n}:{c}" for n, c in READS])
def test_hostile_documents_are_refused_in_one_line(
    name: str, command: str, reg: Path, tmp_path: Path, run: Run, git: Git
) -> None:
    _spoil(reg, name, git)
    argv = command.split() + (["-o", str(tmp_path / "out")] if command.startswith("get") else [])
    before = fingerprint(*roots(tmp_path))
    result = run("--repo", reg, *argv)
    if command.startswith("diff"):  # a review shows what it can read: no crash, no change
        assert result.code == 0, result.err
    else:
        assert_refused(result.code, result.err, DOCUMENTS[name][0])
    assert fingerprint(*roots(tmp_path)) == before


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_check_reports_hostile_documents(name: str, reg: Path, run: Run, git: Git) -> None:
    _spoil(reg, name, git)
    result = run("--repo", reg, "check")
    assert result.code == 1
    assert "Traceback" not in result.err
    assert DOCUMENTS[name][0] in result.err
    assert "(docs/design.md, Limits)" in result.err


def test_a_pulled_manifest_nested_100000_deep_is_refused(
    reg: Path, tmp_path: Path, run: Run, git: Git
) -> None:
    """Through a real remote: a co-user pushes the manifest with plain git, we pull."""
    remote, theirs = tmp_path / "remote.git", tmp_path / "theirs"
    git("clone", "-q", "--bare", reg, remote)
    git("remote", "add", "origin", remote, cwd=reg)
    git("clone", "-q", remote, theirs)
    file = theirs / VERSION
    file.write_text(_hostile_version(file.read_text(encoding="utf-8"), "deep"), encoding="utf-8")
    git("commit", "-qam", "hostile", cwd=theirs)
    git("push", "-q", "origin", "HEAD", cwd=theirs)
    assert run("--repo", reg, "pull").code == 0
    before = fingerprint(*roots(tmp_path))
    for command in (["version", "list", "m"], ["get", "m@v1", "-o", str(tmp_path / "out")]):
        result = modelbox("--repo", reg, *command)
        assert_refused(result.code, result.err, VERSION, "deeper than")
    result = modelbox("--repo", reg, "check")
    assert result.code == 1 and "Traceback" not in result.err and VERSION in result.err
    assert fingerprint(*roots(tmp_path)) == before


def _point_at(reg: Path, digest: str, git: Git) -> None:
    """Make Model.pt a directory pointer naming the object ``digest``, with plain git."""
    pointer = json.loads((reg / POINTER).read_text(encoding="utf-8"))
    pointer.update(directory=True, files=1, sha256=digest)
    (reg / POINTER).write_bytes(canonical.encode(pointer))
    git("commit", "-qam", "hostile pointer", cwd=reg)


def _sparse_object(store: Path, digest: str, size: int) -> None:
    """Put ``size`` bytes under the key of ``digest`` in a folder store (a sparse file: no
    disk, no time), as a hostile co-user of the store can."""
    obj = store / "sha256" / digest[:2] / digest[2:]
    obj.parent.mkdir(parents=True, exist_ok=True)
    with obj.open("wb") as f:
        f.truncate(size)


def test_a_300_mb_object_named_as_a_listing_is_refused_with_little_memory(
    reg: Path, tmp_path: Path, git: Git
) -> None:
    _point_at(reg, "ab" * 32, git)
    _sparse_object(tmp_path / "store", "ab" * 32, 300 << 20)
    before = fingerprint(*roots(tmp_path))
    # A child Python runs the real command and reports its peak memory alone.
    probe = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(p.returncode, peak); print(p.stderr, end='')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, MODELBOX, "--repo", str(reg), "get", "m@v1", "-o",
         str(tmp_path / "out")], capture_output=True, text=True, check=True,
        env={**os.environ},
    )
    head, _, err = proc.stdout.partition("\n")
    code, peak_kib = (int(x) for x in head.split())
    assert_refused(code, err, "sha256:" + "ab" * 32, "larger than the 64 MiB")
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib // 1024} MiB"
    assert fingerprint(*roots(tmp_path)) == before


def test_an_oversized_listing_on_s3_is_refused_after_its_cap(
    tmp_path: Path, run: Run, git: Git, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same on S3, where the listing is read by ranged GETs that stop after the cap."""
    s3_server.create_bucket("inputs")
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    reg, prefix = tmp_path / "reg", f"inputs/{uuid.uuid4().hex}"
    (tmp_path / "weights.bin").write_bytes(b"weights")
    assert run("init", reg, "--store", f"s3://{prefix}").code == 0
    for argv in (("model", "create", "m"), ("version", "create", "m", "v1"),
                 ("artifact", "add", "m@v1", tmp_path / "weights.bin", "--as", "Model.pt")):
        assert run("--repo", reg, *argv).code == 0
    digest = "cd" * 32
    _point_at(reg, digest, git)
    fs = s3_server.client()
    fs.pipe(f"{prefix}/sha256/{digest[:2]}/{digest[2:]}", bytes(limits.CAPS["directory"] + 1))
    keys = sorted(fs.find(prefix))
    before = fingerprint(*roots(tmp_path))
    result = run("--repo", reg, "get", "m@v1", "-o", tmp_path / "out")
    assert_refused(result.code, result.err, f"sha256:{digest}", "larger than the 64 MiB")
    assert fingerprint(*roots(tmp_path)) == before
    assert sorted(fs.find(prefix)) == keys


def test_a_listing_of_100000_files_fits_its_cap() -> None:
    files = [{"path": f"shards/part-{i:06d}/model-{i:06d}-of-100000.safetensors",
              "sha256": f"{i:064x}", "size": i * 4096} for i in range(100_000)]
    data = canonical.encode({"kind": "directory", "files": files})
    assert len(data) < limits.CAPS["directory"] // 2
    assert len(parse(DirectoryManifest, "sha256:x", data).files) == 100_000


def test_a_long_training_run_fits_the_metrics_cap() -> None:
    """2,000,000 points of one key (a long run logged every step) stay under the cap."""
    from modelbox.manifests import MetricPoint, MetricSeries

    points = [MetricPoint(step=1_000_000 + i, wallclock=1.7e9 + i * 0.123456, value=0.123456789)
              for i in range(1000)]
    per_point = len(MetricSeries(series={"loss": points}).to_bytes()) / 1000
    assert per_point * 2_000_000 < limits.CAPS["metrics"]


# -- case collisions already in a registry -----------------------------------------------------
def _stage_twins(reg: Path, git: Git) -> None:
    """What an older registry or a plain git edit may hold: m beside M, prod beside Prod."""
    twin = reg / "models/default/M/_model.json"
    twin.parent.mkdir()
    twin.write_text((reg / "models/default/m/_model.json").read_text(encoding="utf-8")
                    .replace('"name": "m"', '"name": "M"'), encoding="utf-8")
    tags = json.loads((reg / TAGS).read_text(encoding="utf-8"))
    tags["tags"]["Prod"] = "v1"
    (reg / TAGS).write_bytes(canonical.encode(tags))
    git("add", "-A", cwd=reg)


TWIN_MESSAGES = ("models/default: (folder): the entries M, m differ only in case",
                 f"{TAGS}: tags: the tags Prod, prod differ only in case")


def test_check_reports_names_that_differ_only_in_case(reg: Path, run: Run, git: Git) -> None:
    _stage_twins(reg, git)
    git("commit", "-qm", "twins", cwd=reg)
    result = run("--repo", reg, "check")
    assert result.code == 1
    for message in TWIN_MESSAGES:
        assert message in result.err


def test_the_validate_hook_refuses_staged_names_that_differ_only_in_case(
    reg: Path, git: Git
) -> None:
    """The pre-commit hook runs the same rule over the files being committed."""
    _stage_twins(reg, git)
    staged = ["models/default/M/_model.json", TAGS]
    proc = subprocess.run([str(Path(sys.executable).with_name("modelbox-hook-validate")),
                           *staged], cwd=reg, capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for message in TWIN_MESSAGES:
        assert message in proc.stdout


# -- a folder entry that names a blob -----------------------------------------------------------
def _commit_with_models_as_a_blob(git: Git, path: Path) -> None:
    """Commit, on the registry branch, a root tree whose ``models`` entry has a folder's
    mode but names a blob: what no git command writes (``git mktree`` refuses it), but a
    hand-made object or a pushed commit can hold."""
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=path, input=b"x\n",
                          capture_output=True, check=True).stdout.decode().strip()
    entries = []
    for line in git("ls-tree", "HEAD", cwd=path).splitlines():
        meta, name = line.split("\t")
        mode, _, sha = meta.split()
        if name != "models":
            entries.append((name, int(mode, 8), sha))
    entries.append(("models", 0o40000, blob))
    raw = b"".join(f"{mode:o} {name}".encode() + b"\0" + bytes.fromhex(sha)
                   for name, mode, sha in sorted(
                       entries, key=lambda e: e[0] + ("/" if e[1] == 0o40000 else "")))
    tree = subprocess.run(["git", "hash-object", "-t", "tree", "-w", "--stdin"], cwd=path,
                          input=raw, capture_output=True, check=True).stdout.decode().strip()
    commit = git("commit-tree", tree, "-p", "HEAD", "-m", "models as a blob", cwd=path).strip()
    git("update-ref", "refs/heads/main", commit, cwd=path)


@pytest.mark.parametrize("argv", [
    ("resolve", "m:prod"), ("model", "list"), ("version", "list", "m"), ("log", "m"),
    ("version", "create", "m", "v9"), ("tag", "m@v1", "staging"),
])
def test_a_folder_entry_naming_a_blob_is_refused_in_one_line(
    reg: Path, git: Git, run: Run, argv: tuple[str, ...]
) -> None:
    # Before: `resolve` and every write ended in a TypeError traceback (a blob read as a
    # tree); `model list` already said "is not a tree".
    _commit_with_models_as_a_blob(git, reg)
    head = git("rev-parse", "HEAD", cwd=reg)
    result = run("--repo", reg, *argv)
    assert_refused(result.code, result.err, "is not a tree")
    assert git("rev-parse", "HEAD", cwd=reg) == head

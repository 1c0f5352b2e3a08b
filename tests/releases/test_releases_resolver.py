"""Issue 14, item 3: one resolver for every reference, "did you mean" hints, ``--json`` on
every write command, and ``show`` printing JSON values.

One registry (a model with two versions and tags, a collection of links to them, an
experiment with a checkpoint) is built once through the CLI and copied for each test.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pytest
from hostile import fingerprint, modelbox

from modelbox.cli import cli
from modelbox.client import ModelBoxClient
from modelbox.errors import TagNotFoundError, VersionNeededError, VersionNotFoundError

if TYPE_CHECKING:
    from conftest import Git, Run

M, C, E = "default/m", "default/c", "default/e"
ONE, TWO = b"weights one", b"weights two"

#: reference form -> (what it names, the version holding the artifacts, their bytes, acc)
FORMS: dict[str, tuple[str, str, bytes, float | None]] = {
    "m@v1": (f"{M}@v1", f"{M}@v1", ONE, 0.1),
    "m:prod": (f"{M}@v1", f"{M}@v1", ONE, 0.1),
    "m:latest": (f"{M}@v2", f"{M}@v2", TWO, 0.2),
    "c@v0": (f"{C}@v0", f"{M}@v1", ONE, None),
    "c:ship": (f"{C}@v0", f"{M}@v1", ONE, None),
    "c:v1": (f"{C}@v1", f"{M}@v2", TWO, None),
    "c:latest": (f"{C}@v1", f"{M}@v2", TWO, None),
}

_TEMPLATE: list[Path] = []


def _build(root: Path, run: Run, tmp: Path) -> None:
    repo = ("--repo", root)
    assert run("init", root).code == 0
    one, two = tmp / "one" / "w.pt", tmp / "two" / "w.pt"
    for path, data in ((one, ONE), (two, TWO)):
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
    for argv in [
        ("model", "create", "m"),
        ("version", "create", "m", "v1", "--tag", "prod"),
        ("artifact", "add", "m@v1", one),
        ("metrics", "log", "m@v1", "acc=0.1"),
        ("version", "create", "m", "v2", "--tag", "stage"),
        ("artifact", "add", "m@v2", two),
        ("metrics", "log", "m@v2", "acc=0.2"),
        ("collection", "create", "c"),
        ("collection", "create", "c2"),
        ("link", "m@v1", "c", "--tag", "ship"),
        ("link", "m@v2", "c"),
        ("experiment", "create", "e"),
        ("checkpoint", "create", "e", "ck1"),
    ]:
        result = run(*repo, *argv)
        assert result.code == 0, (argv, result.err)


@pytest.fixture
def reg(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, run: Run) -> Path:
    """A copy of the module's registry (built on first use, in a test's environment)."""
    if not _TEMPLATE:
        base = tmp_path_factory.mktemp("resolver-template")
        _build(base / "registry", run, base)
        _TEMPLATE.append(base / "registry")
    dest = tmp_path / "registry"
    shutil.copytree(_TEMPLATE[0], dest, symlinks=True)
    return dest


def _ok(run: Run, reg: Path, *argv: str | Path) -> str:
    result = run("--repo", reg, *argv)
    assert result.code == 0, (argv, result.err)
    assert result.err == "", result.err
    return result.out


def _version(name: str) -> str:
    return name.rpartition("@")[2]


# -- one resolver: every command, every form -------------------------------------------------
def _check_resolve(run: Run, reg: Path, ref: str, tmp: Path) -> None:
    named = FORMS[ref][0]
    assert _ok(run, reg, "resolve", ref).strip() == _version(named)
    assert json.loads(_ok(run, reg, "resolve", ref, "--json"))["version"] == _version(named)


def _check_get(run: Run, reg: Path, ref: str, tmp: Path) -> None:
    out = tmp / "out"
    doc = json.loads(_ok(run, reg, "get", ref, "-o", out, "--json"))
    assert doc["target"] == FORMS[ref][0]
    assert (out / "w.pt").read_bytes() == FORMS[ref][2]


def _check_artifact_list(run: Run, reg: Path, ref: str, tmp: Path) -> None:
    _, source, data, _ = FORMS[ref]
    [artifact] = json.loads(_ok(run, reg, "artifact", "list", ref, "--json"))
    assert (artifact["parent"], artifact["sha256"]) == (source, hashlib.sha256(data).hexdigest())


def _check_metrics_show(run: Run, reg: Path, ref: str, tmp: Path) -> None:
    acc = FORMS[ref][3]
    series = json.loads(_ok(run, reg, "metrics", "show", ref, "--json"))
    # A link has no metrics of its own (collections.md): its own, empty, series.
    assert [p["value"] for p in series.get("acc", [])] == ([] if acc is None else [acc])


def _check_meta_set(run: Run, reg: Path, ref: str, tmp: Path) -> None:
    named = FORMS[ref][0]
    doc = json.loads(_ok(run, reg, "meta", "set", ref, "reviewed", "true", "--json"))
    assert doc == {"target": named, "key": "reviewed", "value": True}
    shown = json.loads(_ok(run, reg, "version", "show", named, "--json"))
    assert shown["metadata"] == {"reviewed": True}


def _check_version_show(run: Run, reg: Path, ref: str, tmp: Path) -> None:
    named = FORMS[ref][0]
    shown = json.loads(_ok(run, reg, "version", "show", ref, "--json"))
    assert f"{shown['model']}@{shown['version']}" == named


def _check_lineage(run: Run, reg: Path, ref: str, tmp: Path) -> None:
    named, source, _, _ = FORMS[ref]
    nodes = json.loads(_ok(run, reg, "lineage", ref, "--json"))["lineage"]
    assert nodes[0]["name"] == named
    assert source in [n["name"] for n in nodes]


def _check_link(run: Run, reg: Path, ref: str, tmp: Path) -> None:
    created = json.loads(_ok(run, reg, "link", ref, "c2", "--json"))
    assert (created["model"], created["version"], created["link"]) == (
        "default/c2", "v0", FORMS[ref][0])


def _check_tag(run: Run, reg: Path, ref: str, tmp: Path) -> None:
    named = FORMS[ref][0]
    moved = json.loads(_ok(run, reg, "tag", ref, "gold", "--json"))
    model = named.rpartition("@")[0]
    assert moved == {"tag": f"{model}:gold", "before": None, "after": _version(named),
                     "moved": True, "pinned": False}


def _check_event_log(run: Run, reg: Path, ref: str, tmp: Path) -> None:
    doc = json.loads(_ok(run, reg, "event", "log", ref, "deployed", "--json"))
    assert doc["target"] == FORMS[ref][0]
    events = json.loads(_ok(run, reg, "event", "list", FORMS[ref][0], "--json"))
    assert [e["name"] for e in events] == ["deployed"]


CHECKS = {
    "resolve": _check_resolve, "get": _check_get, "artifact list": _check_artifact_list,
    "metrics show": _check_metrics_show, "meta set": _check_meta_set,
    "version show": _check_version_show, "lineage": _check_lineage, "link": _check_link,
    "tag": _check_tag, "event log": _check_event_log,
}


@pytest.mark.parametrize("ref", list(FORMS))
@pytest.mark.parametrize("command", list(CHECKS))
def test_every_command_resolves_every_form_the_same_way(
    reg: Path, run: Run, tmp_path: Path, command: str, ref: str
) -> None:
    CHECKS[command](run, reg, ref, tmp_path)


@pytest.mark.parametrize("ref", ["m@v1", "m:prod", "m:latest"])
def test_metrics_log_resolves_like_the_rest(reg: Path, run: Run, ref: str) -> None:
    named = FORMS[ref][0]
    doc = json.loads(_ok(run, reg, "metrics", "log", ref, "loss=0.5", "--step", "3", "--json"))
    assert doc == {"target": named, "metrics": {"loss": 0.5}, "step": 3, "wallclock": None}
    series = json.loads(_ok(run, reg, "metrics", "show", named, "--json"))
    assert [p["value"] for p in series["loss"]] == [0.5]


def test_a_tag_named_like_a_collection_version_wins_over_the_number(
    reg: Path, run: Run
) -> None:
    _ok(run, reg, "tag", "c@v1", "v0")  # a tag is what was asked for by name
    assert _ok(run, reg, "resolve", "c:v0").strip() == "v1"
    assert _ok(run, reg, "resolve", "c@v0").strip() == "v0"


def test_latest_skips_archived_versions_everywhere(reg: Path, run: Run, tmp_path: Path) -> None:
    _ok(run, reg, "version", "archive", "m@v2", "--force")
    assert _ok(run, reg, "resolve", "m:latest").strip() == "v1"
    _ok(run, reg, "get", "m:latest", "-o", tmp_path / "out")
    assert (tmp_path / "out" / "w.pt").read_bytes() == ONE


def test_the_python_api_resolves_through_the_same_function(reg: Path) -> None:
    with ModelBoxClient(reg) as client:
        assert client.resolve("m:latest") == "v2"
        assert client.resolve("c:v1") == "v1"
        assert client.model_version("c:latest").version == "v1"
        assert [a.parent for a in client.model_version("c:ship").artifacts()] == [f"{M}@v1"]
        with pytest.raises(TagNotFoundError, match=r"did you mean default/m@v1\?"):
            client.model_version("m:v1")
        with pytest.raises(VersionNotFoundError, match=r"did you mean default/m:prod\?"):
            client.model("m").version("prod")
        with pytest.raises(VersionNeededError, match="a version is needed"):
            client.model_version("m")
        assert client.model("m").version("v2").version == "v2"


# -- did you mean, bare models, experiments ------------------------------------------------
WRONG = [
    (("resolve", "m#prod"), "did you mean m:prod?"),
    (("get", "m#prod"), "did you mean m:prod?"),
    (("resolve", "ns/m#production"), "did you mean ns/m:production?"),
    (("resolve", "m:v1"), f"did you mean {M}@v1? (v1 is a version)"),
    (("get", "m:v2"), f"did you mean {M}@v2?"),
    (("artifact", "list", "m:v1"), f"did you mean {M}@v1?"),
    (("metrics", "show", "m:v1"), f"did you mean {M}@v1?"),
    (("meta", "set", "m:v1", "k", "1"), f"did you mean {M}@v1?"),
    (("tag", "m:v1", "gold"), f"did you mean {M}@v1?"),
    (("resolve", "m@prod"), f"did you mean {M}:prod? (prod is a tag)"),
    (("get", "m@prod"), f"did you mean {M}:prod?"),
    (("version", "show", "m@stage"), f"did you mean {M}:stage?"),
    (("link", "m@prod", "c2"), f"did you mean {M}:prod?"),
    (("resolve", "m@latest"), f"did you mean {M}:latest?"),
    (("resolve", "c:v7"), f"tag {C}:v7 is not assigned"),
    (("resolve", "m:v9"), f"tag {M}:v9 is not assigned; `modelbox model show {M}`"),
    (("resolve", "m@v9"), f"version {M}@v9 does not exist; `modelbox version list {M}`"),
    (("resolve", "nope:latest"), "model default/nope does not exist"),
    (("artifact", "list", "e:prod"), f"{E}:prod: experiments have no tags, only {E}:latest"),
    (("metrics", "show", "e:best"), f"{E}:best: {E} has no best metric; set one"),
    (("get", "e@ck9"), f"checkpoint {E}@ck9 does not exist"),
    (("version", "show", "e@ck1"), f"{E} is an experiment, not a model; make a version"),
    (("tag", "e@ck1", "gold"), f"`modelbox checkpoint promote {E}@CHECKPOINT MODEL@VERSION`"),
    (("link", "e@ck1", "c2"), f"{E}@ck1 has no artifacts; add them before linking it"),
    (("resolve", "m#"), "invalid model 'm#'"),
    (("get", "#prod"), "invalid model '#prod'"),
    (("resolve", "m@v1:prod"), "use either MODEL@VERSION or MODEL:TAG, not both"),
    (("resolve", "m:prod#x"), "invalid tag 'prod#x'"),
    (("resolve", "m:../v1"), "invalid tag '../v1'"),
    (("checkpoint", "promote", "e:prod", "m@v9"), f"{E}:prod: experiments have no tags"),
    (("checkpoint", "promote", "m@v1", "m@v9"), "m@v1 is no checkpoint"),
    (("checkpoint", "promote", "e@ck1", "m:new"), "m:new: give the new version as MODEL@"),
]


@pytest.mark.parametrize(("argv", "needle"), WRONG, ids=[" ".join(a) for a, _ in WRONG])
def test_a_wrong_form_is_one_line_with_a_hint_and_changes_nothing(
    reg: Path, run: Run, tmp_path: Path, argv: tuple[str, ...], needle: str
) -> None:
    before = fingerprint(reg, tmp_path / "out")
    out: list[str | Path] = ["-o", tmp_path / "out"] if argv[0] == "get" else []
    result = run("--repo", reg, *argv, *out)
    assert result.code == 1, result
    assert result.err.count("\n") == 1 and result.err.startswith("modelbox: error: "), result
    assert needle in result.err, result.err
    assert fingerprint(reg, tmp_path / "out") == before


BARE = [
    ("resolve", "m"), ("get", "m"), ("tag", "m", "gold"), ("version", "show", "m"),
    ("version", "archive", "m"), ("version", "delete", "m"), ("link", "m", "c2"),
    ("unlink", "c"), ("lineage", "m"), ("resolve", "c"), ("get", "c"),
    ("checkpoint", "promote", "m", "m@v9"),
]


@pytest.mark.parametrize("argv", BARE, ids=[" ".join(a) for a in BARE])
def test_a_bare_model_where_a_version_is_needed_is_a_usage_error(
    reg: Path, run: Run, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    before = fingerprint(reg, tmp_path / "out")
    out: list[str | Path] = ["-o", tmp_path / "out"] if argv[0] == "get" else []
    result = run("--repo", reg, *argv, *out)
    name = M if "m" in argv else C
    assert result.code == 2, result
    assert result.err == (f"modelbox: error: a version is needed: {name}@VERSION or "
                          f"{name}:TAG (e.g. {name}:latest)\n")
    assert fingerprint(reg, tmp_path / "out") == before


@pytest.mark.parametrize("argv", [("get", "e"), ("checkpoint", "promote", "e", "m@v9")])
def test_a_bare_experiment_where_a_checkpoint_is_needed_asks_for_one(
    reg: Path, run: Run, argv: tuple[str, ...]
) -> None:
    result = run("--repo", reg, *argv)
    assert result.code == 2
    assert result.err == (f"modelbox: error: a checkpoint is needed: {E}@CHECKPOINT "
                          f"(`modelbox checkpoint list {E}` shows them)\n")


def test_the_real_process_exits_2_and_resolve_loads_no_write_code(reg: Path) -> None:
    proc = modelbox("--repo", reg, "get", "m", "-o", reg.parent / "out")
    assert (proc.code, proc.out) == (2, "")
    assert proc.err.startswith("modelbox: error: a version is needed")
    assert not (reg.parent / "out").exists()
    for ref in ("m:latest", "c:v1", "m:prod", "m@v1"):
        code = (
            "import sys; from modelbox.cli import main; "
            f"rc = main(['--repo', {str(reg)!r}, 'resolve', {ref!r}]); "
            "print(sorted({'pydantic', 'modelbox.refs.history', 'modelbox.refs.index', "
            "'modelbox.refs.worktree', 'modelbox.registry', 'dulwich.repo'} "
            "& set(sys.modules)), rc)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.splitlines()
        # pydantic, the history walker and the index code are what writes and logs need;
        # the registry and dulwich's repository code are not needed to read four files
        # (issue 15: git cat-file reads them, tests/scale/test_scale_quickread.py)
        assert out[-1] == "[] 0", (ref, out)


def test_model_level_targets_still_take_a_bare_model(reg: Path, run: Run) -> None:
    # Models carry metadata, metrics and artifacts of their own (the seed's API).
    assert json.loads(_ok(run, reg, "meta", "set", "m", "team", '"vision"', "--json")) == {
        "target": M, "key": "team", "value": "vision"}
    assert json.loads(_ok(run, reg, "artifact", "list", "m", "--json")) == []
    assert json.loads(_ok(run, reg, "metrics", "show", "m", "--json")) == {}


# -- --json on every write, JSON values in show ----------------------------------------------
def _leaves(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name in group.list_commands(click.Context(group)):
        command = group.get_command(click.Context(group), name)
        if isinstance(command, click.Group):
            out.extend(_leaves(command, (*prefix, name)))
        else:
            out.append((*prefix, name))
    return out


LEAVES = _leaves(cli)


@pytest.mark.parametrize("path", LEAVES, ids=[" ".join(p) for p in LEAVES])
def test_every_command_accepts_json(path: tuple[str, ...]) -> None:
    command: Any = cli
    for name in path:
        command = command.get_command(click.Context(command), name)
    opts = {opt for param in command.params for opt in param.opts}
    if path == ("diff",):  # its document is chosen with --format json
        assert "--format" in opts
        return
    assert "--json" in opts, f"modelbox {' '.join(path)} has no --json"


def test_write_commands_print_what_they_did_as_one_json_document(
    reg: Path, run: Run, tmp_path: Path
) -> None:
    weights = tmp_path / "x.bin"
    weights.write_bytes(b"x")
    docs = {
        argv: json.loads(_ok(run, reg, *argv, "--json")) for argv in [
            ("model", "create", "n", "--owner", "me@example.com"),
            ("model", "update", "n", "--task", "detect"),
            ("version", "create", "n", "v1", "--tag", "prod"),
            ("artifact", "add", "n@v1", str(weights)),
            ("version", "create", "n", "v2"),
            ("tag", "n@v2", "prod"),
            ("untag", "n", "prod"),
            ("tag", "n@v1", "old"),
            ("version", "archive", "n:old", "--force"),
            ("version", "restore", "n@v1"),
            ("version", "delete", "n@v1", "--force"),
            ("collection", "create", "c3"),
            ("unlink", "c:latest"),
            ("experiment", "create", "e2"),
            ("checkpoint", "create", "e2", "ck"),
            ("checkpoint", "promote", "e2@ck", "n@v3"),
            ("policy", "set", "n", "--keep-last", "3"),
            ("policy", "clear", "n"),
        ]
    }
    assert docs[("model", "create", "n", "--owner", "me@example.com")]["owner"] == "me@example.com"
    assert docs[("model", "update", "n", "--task", "detect")]["task"] == "detect"
    assert docs[("version", "create", "n", "v1", "--tag", "prod")]["tags"] == ["prod"]
    assert docs[("artifact", "add", "n@v1", str(weights))][0]["sha256"] == (
        hashlib.sha256(b"x").hexdigest())
    assert docs[("tag", "n@v2", "prod")] == {
        "tag": "default/n:prod", "before": "v1", "after": "v2", "moved": True, "pinned": False}
    assert docs[("untag", "n", "prod")] == {
        "tag": "default/n:prod", "before": "v2", "after": None, "moved": True, "pinned": False}
    assert docs[("version", "archive", "n:old", "--force")] == {
        "version": "default/n@v1", "archived": True, "tags_removed": ["old"]}
    assert docs[("version", "restore", "n@v1")]["archived"] is False
    assert docs[("version", "delete", "n@v1", "--force")]["deleted"] is True
    assert docs[("unlink", "c:latest")] == {
        "link": f"{C}@v1", "source": f"{M}@v2", "removed": True}
    assert docs[("checkpoint", "promote", "e2@ck", "n@v3")]["version"] == "v3"
    assert docs[("policy", "set", "n", "--keep-last", "3")]["retention"]["keep_last"] == 3
    assert docs[("policy", "clear", "n")] == {"model": "default/n", "policy": None}


def test_show_prints_json_values_not_python_reprs(reg: Path, run: Run) -> None:
    value = '{"a": 1, "ok": true, "none": null, "s": "x"}'
    _ok(run, reg, "meta", "set", "m@v1", "doc", value)
    _ok(run, reg, "meta", "set", "m", "flag", "false")
    version = _ok(run, reg, "version", "show", "m:prod")
    assert 'metadata: {"doc": {"a": 1, "none": null, "ok": true, "s": "x"}}' in version
    assert "tags: [\"prod\"]" in version
    assert "archived: false" in version
    model = _ok(run, reg, "model", "show", "m")
    assert 'metadata: {"flag": false}' in model
    for text in (version, model):
        assert "True" not in text and "None" not in text and "{'" not in text


def test_latest_reads_hand_edited_dates_and_names_a_broken_one(
    reg: Path, run: Run, git: Git
) -> None:
    path = reg / "models/default/m/_versions/v1/_version.json"
    doc = json.loads(path.read_text())
    doc["created_at"] = "2030-01-01T00:00:00.5+00:00"  # newer than v2, not pydantic's "Z"
    path.write_text(json.dumps(doc))
    git("commit", "-qam", "move v1 forward by hand", cwd=reg)
    assert _ok(run, reg, "resolve", "m:latest").strip() == "v1"
    doc["created_at"] = "not a date"
    path.write_text(json.dumps(doc))
    git("commit", "-qam", "break it by hand", cwd=reg)
    result = run("--repo", reg, "resolve", "m:latest")
    assert result.code == 1
    assert result.err.startswith("modelbox: error: ") and result.err.count("\n") == 1
    assert "models/default/m/_versions/v1/_version.json: created_at" in result.err


def test_the_target_says_which_tag_named_it(reg: Path) -> None:
    from modelbox import resolver
    from modelbox.names import parse_reference
    from modelbox.registry import Registry

    registry = Registry.open(reg)
    try:
        snap = registry.snapshot()
        found = {ref: resolver.resolve(snap, parse_reference(ref))
                 for ref in ("m@v1", "m:prod", "m:latest", "c:v1", "m", "e@ck1")}
    finally:
        registry.close()
    assert {ref: (str(t), t.tag, t.experiment) for ref, t in found.items()} == {
        "m@v1": (f"{M}@v1", None, False), "m:prod": (f"{M}@v1", "prod", False),
        "m:latest": (f"{M}@v2", "latest", False), "c:v1": (f"{C}@v1", "v1", False),
        "m": (M, None, False), "e@ck1": (f"{E}@ck1", None, True),
    }

"""Collections (issue 8): links into curated models, computed ``latest``, lineage.

Real registries in temporary folders, driven through the CLI; the state is checked through
the library and plain ``git``.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modelbox.check import check
from modelbox.collections import follow, links_to
from modelbox.names import parse_model
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Git, Run

RUN17, RUN21, PROD = "ai/vision/yolo-run-17", "ai/vision/yolo-run-21", "prod/detector"


@pytest.fixture
def reg(registry_path: Path, run: Run, tmp_path: Path) -> Path:
    """Two models, one promoted from a checkpoint with a real artifact, and a collection."""
    repo = ("--repo", registry_path)
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"run-17 weights")
    for argv in [
        ("experiment", "create", "ai/vision/train-17", "--owner", "ml@example.com"),
        ("checkpoint", "create", "ai/vision/train-17", "epoch-3", "--epoch", "3"),
        ("artifact", "add", "ai/vision/train-17@epoch-3", weights),
        ("metrics", "log", "ai/vision/train-17@epoch-3", "acc=0.91"),
        ("model", "create", RUN17),
        ("checkpoint", "promote", "ai/vision/train-17@epoch-3", f"{RUN17}@v5"),
        ("model", "create", RUN21),
        ("version", "create", RUN21, "v2"),
        ("collection", "create", PROD, "--owner", "platform@example.com",
         "--description", "the detector we ship"),
    ]:
        result = run(*repo, *argv)
        assert result.code == 0, (argv, result.err)
    return registry_path


def test_the_walkthrough_of_the_issue(reg: Path, run: Run, tmp_path: Path) -> None:
    repo = ("--repo", reg)
    first = run(*repo, "link", f"{RUN17}@v5", PROD, "--tag", "staging")
    assert first.code == 0, first.err
    assert run(*repo, "link", f"{RUN21}@v2", PROD, "--description", "next").code == 0
    listed = json.loads(run(*repo, "version", "list", PROD, "--json").out)
    assert [(v["version"], v["link"], v["tags"]) for v in listed] == [
        ("v0", f"{RUN17}@v5", ["staging"]), ("v1", f"{RUN21}@v2", []),
    ]
    assert all(v["metrics"] == {} for v in listed)  # a link copies no metrics
    assert run(*repo, "resolve", f"{PROD}:staging").out.strip() == "v0"
    shown = json.loads(run(*repo, "version", "show", f"{PROD}:staging", "--json").out)
    assert shown["link"] == f"{RUN17}@v5"
    assert run(*repo, "tag", f"{PROD}@v0", "production").code == 0

    deploy = tmp_path / "deploy"
    got = run(*repo, "get", f"{PROD}:production", "-o", deploy)
    assert got.code == 0, got.err
    assert (deploy / "model.pt").read_bytes() == b"run-17 weights"
    listed_artifacts = json.loads(run(*repo, "artifact", "list", f"{PROD}@v0", "--json").out)
    assert [(a["path"], a["parent"]) for a in listed_artifacts] == [("model.pt", f"{RUN17}@v5")]

    assert run(*repo, "resolve", f"{PROD}:latest").out.strip() == "v1"
    assert run(*repo, "resolve", f"{RUN17}:latest").out.strip() == "v5"

    lineage = json.loads(run(*repo, "lineage", f"{PROD}:production", "--json").out)
    assert [(n["kind"], n["name"]) for n in lineage["lineage"]] == [
        ("link", f"{PROD}@v0"), ("version", f"{RUN17}@v5"),
        ("checkpoint", "ai/vision/train-17@epoch-3"), ("experiment", "ai/vision/train-17"),
    ]
    assert lineage["lineage"][1]["metrics"] == {"acc": 0.91}
    tree = run(*repo, "lineage", f"{PROD}:production").out.splitlines()
    assert tree[0] == f"{PROD}@v0 [link]"
    assert tree[-1] == "        └── ai/vision/train-17 [experiment]"

    ops = [(e["operation"], e["target"])
           for e in json.loads(run(*repo, "log", PROD, "--json").out)]
    assert ("collection.create", PROD) in ops
    assert ("collection.link", f"{PROD}@v0") in ops
    assert ("tag.assign", f"{PROD}:staging") in ops  # given by the link's commit


def test_a_link_of_a_link_is_followed_to_the_files(reg: Path, run: Run, tmp_path: Path) -> None:
    repo = ("--repo", reg)
    assert run(*repo, "link", f"{RUN17}@v5", PROD).code == 0
    assert run(*repo, "collection", "create", "prod/edge").code == 0
    assert run(*repo, "link", f"{PROD}:latest", "prod/edge", "--version", "first").code == 0
    with closing(Registry.open(reg)) as registry:
        snap = registry.snapshot()
        assert follow(snap, parse_model("prod/edge"), "first") == [
            (parse_model("prod/edge"), "first"), (parse_model(PROD), "v0"),
            (parse_model(RUN17), "v5"),
        ]
        assert links_to(snap, f"{RUN17}@v5") == [f"{PROD}@v0"]
    out = tmp_path / "edge"
    assert run(*repo, "get", "prod/edge@first", "-o", out).code == 0
    assert (out / "model.pt").read_bytes() == b"run-17 weights"


def test_unlink_removes_the_link_and_log_shows_it(reg: Path, run: Run, git: Git) -> None:
    repo = ("--repo", reg)
    assert run(*repo, "link", f"{RUN17}@v5", PROD, "--tag", "production").code == 0
    refused = run(*repo, "unlink", f"{PROD}@v0")
    assert refused.code == 1 and "production" in refused.err
    done = run(*repo, "unlink", f"{PROD}:production", "--force")
    assert done.code == 0, done.err
    assert run(*repo, "version", "list", PROD, "--json").out.strip() == "[]"
    events = json.loads(run(*repo, "log", f"{PROD}@v0", "--json").out)
    assert [(e["operation"], e["before"]) for e in events][:1] == [
        ("collection.unlink", f"{RUN17}@v5")]
    assert "Modelbox-Operation: collection.unlink" in git("log", "-1", "--format=%B", cwd=reg)
    assert git("for-each-ref", "refs/modelbox/tags/prod", cwd=reg) == ""
    # the next link continues the numbering
    assert run(*repo, "link", f"{RUN21}@v2", PROD).code == 0
    assert run(*repo, "resolve", f"{PROD}:latest").out.strip() == "v0"


def test_every_bad_input_is_one_clear_error_and_changes_nothing(
    reg: Path, run: Run, git: Git
) -> None:
    repo = ("--repo", reg)
    assert run(*repo, "link", f"{RUN17}@v5", PROD, "--tag", "staging").code == 0
    assert run(*repo, "collection", "create", "prod/edge").code == 0
    assert run(*repo, "link", f"{PROD}@v0", "prod/edge").code == 0
    assert run(*repo, "model", "create", "ai/old").code == 0
    assert run(*repo, "version", "create", "ai/old", "v1").code == 0
    assert run(*repo, "version", "archive", "ai/old@v1").code == 0
    cases: list[tuple[tuple[str, ...], str]] = [
        (("link", f"{RUN17}@v9", PROD), f"{RUN17}@v9 does not exist"),
        (("link", "ai/nope@v1", PROD), "model ai/nope does not exist"),
        (("link", f"{RUN17}:gone", PROD), "is not assigned"),
        (("link", RUN17, PROD), "a version is needed"),
        (("link", f"{RUN21}@v2", RUN17), f"{RUN17} is not a collection"),
        (("link", f"{RUN21}@v2", "prod/nope"), "model prod/nope does not exist"),
        (("link", f"{PROD}@v0", PROD), "it is a version of that collection"),
        (("link", "prod/edge@v0", PROD), "lead back into that collection"),
        (("link", f"{RUN21}@v2", PROD, "--tag", "staging"), f"{PROD}:staging already points"),
        (("link", f"{RUN21}@v2", PROD, "--tag", "latest"), "computed by modelbox"),
        (("link", f"{RUN21}@v2", PROD, "--tag", "a/b"), "invalid tag"),
        (("link", f"{RUN21}@v2", PROD, "--version", "v0"), f"{PROD}@v0 already exists"),
        (("link", f"{RUN21}@v2", PROD, "--version", "../x"), "invalid version"),
        (("link", "ai/old@v1", PROD), "archived; restore it"),
        (("tag", f"{PROD}@v0", "latest"), "computed by modelbox"),
        (("version", "create", PROD, "v9"), f"{PROD} is a collection"),
        (("version", "delete", f"{RUN17}@v5"), f"linked by {PROD}@v0"),
        (("unlink", f"{PROD}@v0"), "carries the tags staging"),
        (("unlink", f"{RUN21}@v2"), f"{RUN21} is not a collection"),
        (("unlink", f"{PROD}@v7"), f"{PROD}@v7 does not exist"),
        (("collection", "create", PROD), f"model {PROD} already exists"),
        (("artifact", "add", f"{PROD}@v0", str(reg / ".modelbox" / "registry.json")), "is a link"),
        (("metrics", "log", f"{PROD}@v0", "acc=1"), "is a link"),
        (("lineage", PROD), "a version is needed"),
    ]
    head = git("rev-parse", "HEAD", cwd=reg)
    for argv, message in cases:
        result = run(*repo, *argv)
        # A bare MODEL where a version is needed is a usage error (exit 2).
        assert result.code == (2 if "version is needed" in message else 1), (argv, result.out)
        assert message in result.err, (argv, result.err)
        assert len(result.err.strip().splitlines()) == 1, result.err
        assert git("rev-parse", "HEAD", cwd=reg) == head, argv
    assert git("status", "--porcelain", cwd=reg) == ""


def test_check_reports_a_dangling_link_committed_by_hand(reg: Path, run: Run, git: Git) -> None:
    repo = ("--repo", reg)
    assert run(*repo, "link", f"{RUN17}@v5", PROD).code == 0
    assert run(*repo, "check").code == 0
    git("rm", "-rq", f"models/{RUN17}/_versions/v5", cwd=reg)
    git("commit", "-qm", "delete by hand", cwd=reg)
    result = run(*repo, "check")
    assert result.code == 1
    assert (f"models/{PROD}/_versions/v0/_version.json: link: {RUN17}@v5 does not exist"
            in result.err)
    got = run(*repo, "get", f"{PROD}@v0", "-o", "out")
    assert got.code == 1 and "does not exist" in got.err


def test_check_reports_links_where_no_link_belongs(reg: Path, run: Run, git: Git) -> None:
    version = reg / "models" / RUN21 / "_versions" / "v2" / "_version.json"
    doc = json.loads(version.read_text())
    version.write_text(json.dumps({**doc, "link": f"{RUN17}@v5"}))
    git("commit", "-qam", "a link by hand in a plain model", cwd=reg)
    with closing(Registry.open(reg)) as registry:
        problems = [str(p) for p in check(registry)]
    assert any(f"link: {RUN21} is not a collection" in p for p in problems), problems


def test_force_deleting_a_linked_source_leaves_a_link_check_reports(reg: Path, run: Run) -> None:
    repo = ("--repo", reg)
    assert run(*repo, "link", f"{RUN17}@v5", PROD).code == 0
    assert run(*repo, "version", "delete", f"{RUN17}@v5", "--force").code == 0
    result = run(*repo, "check")
    assert result.code == 1 and f"link: {RUN17}@v5 does not exist" in result.err
    lineage = json.loads(run(*repo, "lineage", f"{PROD}@v0", "--json").out)
    assert "does not exist" in lineage["lineage"][0]["problem"]


def test_gc_keeps_the_objects_of_an_archived_version_a_link_reaches(
    reg: Path, run: Run, tmp_path: Path
) -> None:
    repo = ("--repo", reg)
    weights = tmp_path / "run-21.pt"
    weights.write_bytes(b"run-21 weights, nowhere else")
    assert run(*repo, "artifact", "add", f"{RUN21}@v2", weights).code == 0
    assert run(*repo, "link", f"{RUN21}@v2", PROD).code == 0
    assert run(*repo, "version", "archive", f"{RUN21}@v2").code == 0
    _age(reg, 24 * 30)
    plan = json.loads(run(*repo, "gc", "--dry-run", "--no-history", "--json").out)
    assert plan["delete"] == []  # the live link keeps the archived source's object
    assert run(*repo, "unlink", f"{PROD}@v0").code == 0
    plan = json.loads(run(*repo, "gc", "--dry-run", "--no-history", "--json").out)
    assert len(plan["delete"]) == 1  # nothing live reaches it any more


def _age(registry: Path, hours: float) -> None:
    then = time.time() - hours * 3600
    for path in (registry / ".git" / "modelbox" / "store").rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


def test_the_python_client_creates_links_and_unlinks(reg: Path, tmp_path: Path) -> None:
    from modelbox import ModelBoxClient
    from modelbox.errors import InvalidValueError

    with ModelBoxClient(reg) as client:
        shipped = client.new_collection("ai/shipped", owner="platform@example.com")
        assert shipped.is_collection and not client.model(RUN17).is_collection
        first = shipped.link(f"{RUN17}@v5", unique_tags=["prod"])
        second = shipped.link(f"{RUN21}@v2", version="candidate")
        assert (first.version, first.link, first.unique_tags) == ("v0", f"{RUN17}@v5", ["prod"])
        assert second.version == "candidate" and second.link == f"{RUN21}@v2"
        assert client.resolve("ai/shipped:prod") == "v0"
        assert [n["kind"] for n in first.lineage()] == [
            "link", "version", "checkpoint", "experiment"]
        # The link's files are its source's: the checkpoint's weights.
        placed = first.download_artifacts(tmp_path / "out")
        assert [p.read_bytes() for p in placed] == [b"run-17 weights"]
        with pytest.raises(InvalidValueError, match="carries the tags prod"):
            first.unlink()
        assert second.unlink() == f"{RUN21}@v2"
        assert first.unlink(force=True) == f"{RUN17}@v5"
        assert shipped.versions() == [] and shipped.tags() == {}
        with pytest.raises(InvalidValueError, match="is not a collection"):
            client.model(RUN21).link(f"{RUN17}@v5")

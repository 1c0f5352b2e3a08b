"""The read caches of issue 15 ("Scale"): they speed up reads and never change an answer.

``log M`` / ``log M:TAG`` / ``resolve --at`` read one model's commits through the audit
index (``modelbox/audit_index.py``). Every test here moves the registry in a way the
cache must notice -- a modelbox write, a hand ``git commit``, ``git reset``, a rewritten
history, a pull, a merge, another branch, a damaged file -- and checks the cached answer
equals the one computed from scratch (a full walk, no cache). Each would fail if the cache
were trusted past what it was built from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import Git, Run
from hostile import modelbox

from modelbox import audit
from modelbox.audit import AuditEvent
from modelbox.names import parse_model
from modelbox.registry import Registry

MODEL = "ai/yolo"
OTHER = "ai/resnet"
TAGS_FILE = f"models/{MODEL}/_tags.json"


def ok(run: Run, *argv: str | Path) -> str:
    result = run(*argv)
    assert result.code == 0, result
    return result.out


def make(path: Path) -> Path:
    """A registry with two models: ai/yolo v1 (tag prod), v2; ai/resnet v1."""
    registry = Registry.init(path)
    yolo, resnet = parse_model(MODEL), parse_model(OTHER)
    registry.create_model(yolo)
    registry.create_version(yolo, "v1", tags=["prod"])
    registry.create_version(yolo, "v2")
    registry.create_model(resnet)
    registry.create_version(resnet, "v1")
    registry.close()
    return path


def from_scratch(path: Path, target: str) -> list[AuditEvent]:
    """The events about ``target`` from a full walk of history (no audit index)."""
    registry = Registry.open(path)
    try:
        return [e for e in registry.log() if audit.concerns(e, target)]
    finally:
        registry.close()


def indexed(path: Path, target: str) -> list[AuditEvent]:
    registry = Registry.open(path)
    try:
        return registry.log(target)
    finally:
        registry.close()


def index_files(path: Path) -> list[Path]:
    return sorted((path / ".git" / "modelbox" / "audit-index").glob("*.json"))


def assert_same(path: Path, *targets: str) -> None:
    for target in targets:
        assert indexed(path, target) == from_scratch(path, target), target


def moves(events: list[AuditEvent]) -> list[tuple[str | None, str | None]]:
    return [(e.before, e.after) for e in events]


# -- the audit index ----------------------------------------------------------------------
def test_log_of_a_model_reads_a_saved_index_and_follows_new_modelbox_commits(
    tmp_path: Path, run: Run,
) -> None:
    reg = make(tmp_path / "reg")
    assert [e.operation for e in indexed(reg, MODEL)] == [
        "version.create", "version.create", "tag.assign", "model.create"]
    assert len(index_files(reg)) == 1
    ok(run, "--repo", reg, "tag", f"{MODEL}@v2", "prod")
    assert moves(indexed(reg, f"{MODEL}:prod")) == [("v1", "v2"), (None, "v1")]
    assert_same(reg, MODEL, f"{MODEL}:prod", f"{MODEL}@v1", OTHER)


def test_a_tag_moved_by_a_plain_git_commit_after_the_index_is_seen(
    tmp_path: Path, run: Run, git: Git,
) -> None:
    reg = make(tmp_path / "reg")
    indexed(reg, f"{MODEL}:prod")
    tags = json.loads((reg / TAGS_FILE).read_text())
    tags["tags"]["prod"] = "v2"
    (reg / TAGS_FILE).write_text(json.dumps(tags, indent=2, sort_keys=True) + "\n")
    git("commit", "-q", "-am", "by hand", cwd=reg)
    events = indexed(reg, f"{MODEL}:prod")
    assert events[0].operation == "tag.move" + audit.OUTSIDE
    assert moves(events) == [("v1", "v2"), (None, "v1")]
    assert ok(run, "--repo", reg, "resolve", f"{MODEL}:prod", "--at", "2999-01-01") == "v2\n"
    assert_same(reg, MODEL, f"{MODEL}:prod")


def test_git_reset_drops_the_undone_events(tmp_path: Path, run: Run, git: Git) -> None:
    reg = make(tmp_path / "reg")
    ok(run, "--repo", reg, "tag", f"{MODEL}@v2", "prod")
    assert moves(indexed(reg, f"{MODEL}:prod")) == [("v1", "v2"), (None, "v1")]
    git("reset", "-q", "--hard", "HEAD~1", cwd=reg)
    assert moves(indexed(reg, f"{MODEL}:prod")) == [(None, "v1")]
    assert ok(run, "--repo", reg, "resolve", f"{MODEL}:prod", "--at", "2999-01-01") == "v1\n"
    assert_same(reg, MODEL, f"{MODEL}:prod", f"{MODEL}@v2")


def test_a_rewritten_history_is_read_again(tmp_path: Path, run: Run, git: Git) -> None:
    """The branch is reset and written again: the new head descends from neither the old
    head nor anything the index saw last."""
    reg = make(tmp_path / "reg")
    ok(run, "--repo", reg, "tag", f"{MODEL}@v2", "prod")
    indexed(reg, MODEL)
    git("reset", "-q", "--hard", "HEAD~1", cwd=reg)
    ok(run, "--repo", reg, "version", "create", MODEL, "v3")
    ok(run, "--repo", reg, "tag", f"{MODEL}@v3", "prod")
    assert moves(indexed(reg, f"{MODEL}:prod"))[0] == ("v1", "v3")
    assert ("v1", "v2") not in moves(indexed(reg, f"{MODEL}:prod"))
    assert_same(reg, MODEL, f"{MODEL}:prod", f"{MODEL}@v2", f"{MODEL}@v3")


def _upstream_and_clone(tmp_path: Path, run: Run, git: Git) -> tuple[Path, Path]:
    """A registry pushed to a bare remote, and a clone of that remote."""
    upstream = make(tmp_path / "up")
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", remote)
    git("remote", "add", "origin", remote, cwd=upstream)
    ok(run, "--repo", upstream, "push")
    clone = tmp_path / "clone"
    ok(run, "clone", remote, clone)
    return upstream, clone


def test_pulls_fast_forward_and_merging_are_seen(tmp_path: Path, run: Run, git: Git) -> None:
    upstream, clone = _upstream_and_clone(tmp_path, run, git)
    indexed(clone, MODEL)
    # A fast-forward: a chain on top of what the index covers.
    ok(run, "--repo", upstream, "tag", f"{MODEL}@v2", "prod")
    ok(run, "--repo", upstream, "push")
    ok(run, "--repo", clone, "pull")
    assert moves(indexed(clone, f"{MODEL}:prod")) == [("v1", "v2"), (None, "v1")]
    # Both sides write, the pull merges: the other side's commits come in under the merge.
    ok(run, "--repo", upstream, "version", "create", MODEL, "v3", "--tag", "up")
    ok(run, "--repo", upstream, "push")
    ok(run, "--repo", clone, "version", "create", OTHER, "v2", "--tag", "down")
    indexed(clone, MODEL)
    ok(run, "--repo", clone, "pull")
    assert "up" in {e.target.partition(":")[2] for e in indexed(clone, MODEL)}
    assert_same(clone, MODEL, OTHER, f"{MODEL}:up", f"{OTHER}:down")


def test_each_branch_has_its_own_index(tmp_path: Path, run: Run) -> None:
    reg = make(tmp_path / "reg")
    ok(run, "--repo", reg, "--branch", "proposal", "tag", f"{MODEL}@v2", "prod")
    main = moves(indexed(reg, f"{MODEL}:prod"))
    log = ok(run, "--repo", reg, "--branch", "proposal", "log", f"{MODEL}:prod")
    assert "v1 -> v2" in log
    assert moves(indexed(reg, f"{MODEL}:prod")) == main == [(None, "v1")]
    assert "v1 -> v2" in ok(run, "--repo", reg, "--branch", "proposal", "log", f"{MODEL}:prod")
    assert len(index_files(reg)) == 2


def test_downloads_on_the_audit_ref_are_indexed_too(tmp_path: Path, run: Run) -> None:
    reg = make(tmp_path / "reg")
    artifact = tmp_path / "model.pt"
    artifact.write_bytes(b"weights")
    ok(run, "--repo", reg, "version", "create", MODEL, "v3")
    ok(run, "--repo", reg, "artifact", "add", f"{MODEL}@v3", artifact)
    ok(run, "--repo", reg, "get", f"{MODEL}@v3", "-o", tmp_path / "out")
    assert_same(reg, MODEL, f"{MODEL}@v3")
    ok(run, "--repo", reg, "get", f"{MODEL}@v3", "-o", tmp_path / "out2")
    operations = [e.operation for e in indexed(reg, f"{MODEL}@v3")]
    assert operations.count("artifact.download") == 2
    assert_same(reg, MODEL, f"{MODEL}@v3")


@pytest.mark.parametrize("damage", ["deleted", "torn", "not json", "another head", "wrong kind"])
def test_a_damaged_index_is_rebuilt(tmp_path: Path, damage: str) -> None:
    reg = make(tmp_path / "reg")
    expected = from_scratch(reg, MODEL)
    assert indexed(reg, MODEL) == expected
    (path,) = index_files(reg)
    text = path.read_text()
    if damage == "deleted":
        path.unlink()
    elif damage == "torn":
        path.write_text(text[: len(text) // 2])
    elif damage == "not json":
        path.write_bytes(b"\xff\x00")
    elif damage == "another head":
        # An index of some other history that lists another model's commits.
        document = json.loads(text)
        document["models"][MODEL] = document["models"][OTHER]
        document["head"] = "0" * 40
        path.write_text(json.dumps(document))
    else:
        path.write_text(json.dumps({**json.loads(text), "kind": "something else"}))
    assert indexed(reg, MODEL) == expected


def test_an_index_that_cannot_be_written_still_answers(tmp_path: Path) -> None:
    reg = make(tmp_path / "reg")
    expected = from_scratch(reg, MODEL)
    folder = reg / ".git" / "modelbox" / "audit-index"
    shutil.rmtree(folder, ignore_errors=True)
    folder.write_text("in the way")  # (root may write anywhere: a file blocks the folder)
    assert indexed(reg, MODEL) == expected
    assert indexed(reg, MODEL) == expected
    assert not list(folder.parent.glob("audit-index*.tmp"))


# -- the model listing cache ----------------------------------------------------------------
def listed(run: Run, reg: Path, *options: str) -> list[dict[str, object]]:
    documents: list[dict[str, object]] = json.loads(
        ok(run, "--repo", reg, "model", "list", "--json", *options))
    return documents


def listed_from_scratch(reg: Path, namespace: str | None = None) -> list[dict[str, object]]:
    """Every model manifest parsed again from the branch (no cache), as listed."""
    from modelbox.manifests import ModelManifest, parse
    from modelbox.registry import manifest_paths

    registry = Registry.open(reg)
    try:
        snap = registry.snapshot()
        found = [parse(ModelManifest, p, snap.read(p) or b"")
                 for p in manifest_paths(snap, "models", "_model.json", namespace)]
    finally:
        registry.close()
    return [m.model_dump(mode="json")
            for m in sorted(found, key=lambda m: (m.namespace, m.name)) if not m.collection]


def listing_file(reg: Path) -> Path:
    return reg / ".git" / "modelbox" / "listing.json"


def assert_listed(run: Run, reg: Path) -> None:
    assert listed(run, reg) == listed_from_scratch(reg)
    assert listed(run, reg, "--namespace", "ai") == listed_from_scratch(reg, "ai")


def test_model_list_follows_modelbox_writes(tmp_path: Path, run: Run) -> None:
    reg = make(tmp_path / "reg")
    assert [m["name"] for m in listed(run, reg)] == ["resnet", "yolo"]
    assert listing_file(reg).exists()
    ok(run, "--repo", reg, "model", "create", "ai/vit", "--owner", "ana")
    ok(run, "--repo", reg, "model", "update", MODEL, "--owner", "bo")
    ok(run, "--repo", reg, "model", "create", "other/x")
    assert [(m["name"], m["owner"]) for m in listed(run, reg)] == [
        ("resnet", ""), ("vit", "ana"), ("yolo", "bo"), ("x", "")]
    assert_listed(run, reg)
    assert ok(run, "--repo", reg, "model", "list").splitlines()[0] == "ai/resnet\t\t"


def test_model_list_follows_plain_git_commits_resets_and_branches(
    tmp_path: Path, run: Run, git: Git,
) -> None:
    reg = make(tmp_path / "reg")
    listed(run, reg)
    manifest = reg / "models" / MODEL / "_model.json"
    document = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**document, "owner": "by hand"}, indent=2) + "\n")
    git("commit", "-q", "-am", "by hand", cwd=reg)
    assert [m["owner"] for m in listed(run, reg)] == ["", "by hand"]
    git("reset", "-q", "--hard", "HEAD~1", cwd=reg)
    assert [m["owner"] for m in listed(run, reg)] == ["", ""]
    ok(run, "--repo", reg, "--branch", "proposal", "model", "create", "ai/vit")
    assert [m["name"] for m in listed(run, reg)] == ["resnet", "yolo"]
    assert [m["name"] for m in listed(run, reg, "--namespace", "ai")] == ["resnet", "yolo"]
    assert [m["name"] for m in json.loads(ok(
        run, "--repo", reg, "--branch", "proposal", "model", "list", "--json"))] == [
        "resnet", "vit", "yolo"]
    assert_listed(run, reg)


def test_model_list_follows_a_pull(tmp_path: Path, run: Run, git: Git) -> None:
    upstream, clone = _upstream_and_clone(tmp_path, run, git)
    listed(run, clone)
    ok(run, "--repo", upstream, "model", "create", "ai/vit")
    ok(run, "--repo", upstream, "push")
    ok(run, "--repo", clone, "pull")
    assert [m["name"] for m in listed(run, clone)] == ["resnet", "vit", "yolo"]
    assert_listed(run, clone)


def test_a_broken_manifest_is_reported_on_every_listing(
    tmp_path: Path, run: Run, git: Git,
) -> None:
    """A manifest that fails the parser is never cached: each listing says so, in one line."""
    reg = make(tmp_path / "reg")
    listed(run, reg)
    manifest = reg / "models" / MODEL / "_model.json"
    good = manifest.read_text()
    manifest.write_text(json.dumps({**json.loads(good), "owner": 7}) + "\n")
    git("commit", "-q", "-am", "broken by hand", cwd=reg)
    for argv in (("model", "list"), ("model", "list", "--namespace", "ai"), ("model", "list")):
        result = run("--repo", reg, *argv)
        assert result.code == 1 and result.out == ""
        assert result.err.startswith("modelbox: error: ") and "_model.json" in result.err
        assert result.err.count("\n") == 1
    manifest.write_text(good)
    git("commit", "-q", "-am", "fixed", cwd=reg)
    assert_listed(run, reg)


def test_the_listing_cache_tracks_the_registry_instead_of_growing(
    tmp_path: Path, run: Run,
) -> None:
    reg = make(tmp_path / "reg")
    listed(run, reg)
    size = len(json.loads(listing_file(reg).read_text())["trees"])
    for n in range(5):
        ok(run, "--repo", reg, "version", "create", MODEL, f"x{n}")
        listed(run, reg, "--namespace", "ai")
        listed(run, reg)
    cache = json.loads(listing_file(reg).read_text())
    assert len(cache["trees"]) == size == 4  # models/, ai/, ai/yolo/, ai/resnet/
    assert len(cache["docs"]) == 2


@pytest.mark.parametrize("damage", ["deleted", "torn", "bad entries", "other code"])
def test_a_damaged_listing_cache_is_rebuilt(tmp_path: Path, run: Run, damage: str) -> None:
    reg = make(tmp_path / "reg")
    expected = listed(run, reg)
    path = listing_file(reg)
    cache = json.loads(path.read_text())
    if damage == "deleted":
        path.unlink()
    elif damage == "torn":
        path.write_text(path.read_text()[:100])
    elif damage == "bad entries":
        path.write_text(json.dumps({**cache, "trees": {t: [1, 2] for t in cache["trees"]}}))
    else:
        # Documents another version of the parser made are not trusted.
        docs = {sha: {**doc, "owner": "stale"} for sha, doc in cache["docs"].items()}
        path.write_text(json.dumps({**cache, "code": "0.0.0:1:1", "docs": docs}))
    assert listed(run, reg) == expected
    assert listed(run, reg) == expected


# -- both caches across a write killed halfway ----------------------------------------------
@pytest.mark.parametrize("step", ["after-ref-move", "before-tag-refs"])
def test_a_write_killed_after_the_branch_moved_is_read_as_landed(
    tmp_path: Path, run: Run, step: str,
) -> None:
    """``kill -9`` once the branch has moved (the work tree, index and tag refs have not
    followed): the caches, keyed by the branch, see the new commit like every read."""
    reg = make(tmp_path / "reg")
    indexed(reg, MODEL)
    listed(run, reg)
    killed = modelbox("--repo", reg, "model", "create", "ai/vit", env={"MODELBOX_FAULT": step})
    assert killed.code == 137, killed
    killed = modelbox("--repo", reg, "tag", f"{MODEL}@v2", "prod",
                      env={"MODELBOX_FAULT": step})
    assert killed.code == 137, killed
    assert moves(indexed(reg, f"{MODEL}:prod")) == [("v1", "v2"), (None, "v1")]
    assert [m["name"] for m in listed(run, reg)] == ["resnet", "vit", "yolo"]
    assert_same(reg, MODEL, "ai/vit", f"{MODEL}:prod")
    assert_listed(run, reg)


# -- the version listing cache --------------------------------------------------------------
def versions_listed(run: Run, reg: Path, model: str = MODEL, *options: str,
                    ) -> list[dict[str, object]]:
    documents: list[dict[str, object]] = json.loads(
        ok(run, "--repo", reg, "version", "list", model, "--json", *options))
    return documents


def versions_from_scratch(reg: Path, model: str = MODEL, *, archived: bool = False,
                          ) -> list[dict[str, object]]:
    registry = Registry.open(reg)
    try:
        name = parse_model(model)
        by_version: dict[str, list[str]] = {}
        for tag, version in sorted(registry.tags(name).items()):
            by_version.setdefault(version, []).append(tag)
        return [{**v.model_dump(mode="json"), "tags": by_version.get(v.version, [])}
                for v in registry.list_versions(name, archived=archived)]
    finally:
        registry.close()


def assert_versions(run: Run, reg: Path) -> None:
    for model in (MODEL, OTHER):
        assert versions_listed(run, reg, model) == versions_from_scratch(reg, model)
        assert versions_listed(run, reg, model, "--all") == versions_from_scratch(
            reg, model, archived=True)


def test_version_list_follows_writes_hand_commits_and_resets(
    tmp_path: Path, run: Run, git: Git,
) -> None:
    reg = make(tmp_path / "reg")
    assert [v["tags"] for v in versions_listed(run, reg)] == [["prod"], []]
    ok(run, "--repo", reg, "tag", f"{MODEL}@v2", "prod")
    assert [v["tags"] for v in versions_listed(run, reg)] == [[], ["prod"]]
    ok(run, "--repo", reg, "version", "create", MODEL, "v3")
    ok(run, "--repo", reg, "version", "archive", f"{MODEL}@v1")
    assert [v["version"] for v in versions_listed(run, reg)] == ["v2", "v3"]
    assert_versions(run, reg)
    manifest = reg / "models" / MODEL / "_versions" / "v2" / "_version.json"
    document = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**document, "description": "by hand"}, indent=2) + "\n")
    git("commit", "-q", "-am", "by hand", cwd=reg)
    assert versions_listed(run, reg)[0]["description"] == "by hand"
    git("reset", "-q", "--hard", "HEAD~3", cwd=reg)
    assert [v["version"] for v in versions_listed(run, reg)] == ["v1", "v2"]
    assert ok(run, "--repo", reg, "version", "list", MODEL).splitlines()[0].startswith("v1\t")
    assert_versions(run, reg)
    ok(run, "--repo", reg, "--branch", "proposal", "version", "create", MODEL, "v9")
    assert [v["version"] for v in versions_listed(run, reg)] == ["v1", "v2"]
    assert [v["version"] for v in json.loads(ok(
        run, "--repo", reg, "--branch", "proposal", "version", "list", MODEL, "--json"))] == [
        "v1", "v2", "v9"]


def test_a_broken_version_manifest_is_reported_on_every_version_list(
    tmp_path: Path, run: Run, git: Git,
) -> None:
    reg = make(tmp_path / "reg")
    versions_listed(run, reg)
    manifest = reg / "models" / MODEL / "_versions" / "v2" / "_version.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "archived": "no"}))
    git("commit", "-q", "-am", "broken by hand", cwd=reg)
    for _ in range(2):
        result = run("--repo", reg, "version", "list", MODEL)
        assert result.code == 1 and result.out == "" and "_version.json" in result.err
    assert versions_listed(run, reg, OTHER) == versions_from_scratch(reg, OTHER)


@pytest.mark.parametrize("damage", ["torn", "other model", "other code", "bad shape"])
def test_a_damaged_version_cache_is_rebuilt(tmp_path: Path, run: Run, damage: str) -> None:
    reg = make(tmp_path / "reg")
    expected = versions_listed(run, reg)
    (path,) = (reg / ".git" / "modelbox" / "versions").glob("*.json")
    cache = json.loads(path.read_text())
    stale = [{**v, "description": "stale"} for v in cache["versions"]]
    if damage == "torn":
        path.write_text(path.read_text()[:50])
    elif damage == "other model":
        path.write_text(json.dumps({**cache, "model": OTHER, "versions": stale}))
    elif damage == "other code":
        path.write_text(json.dumps({**cache, "code": "0.0.0:1:1", "versions": stale}))
    else:
        path.write_text(json.dumps({**cache, "versions": {"v1": 1}}))
    assert versions_listed(run, reg) == expected
    assert versions_listed(run, reg) == expected


def test_completion_offers_models_from_the_listing_cache_as_it_changes(
    tmp_path: Path, run: Run, git: Git,
) -> None:
    reg = make(tmp_path / "reg")

    def completed(word: str) -> list[str]:
        env = {"_MODELBOX_COMPLETE": "bash_complete", "COMP_WORDS": f"modelbox resolve {word}",
               "COMP_CWORD": "2"}
        proc = modelbox(cwd=reg, env=env)
        assert proc.code == 0, proc
        return [line.partition(",")[2] for line in proc.out.splitlines()]

    assert completed("ai/") == ["ai/resnet", "ai/yolo"]
    ok(run, "--repo", reg, "model", "create", "ai/vit")
    assert completed("ai/") == ["ai/resnet", "ai/vit", "ai/yolo"]
    git("reset", "-q", "--hard", "HEAD~1", cwd=reg)
    assert completed("ai/") == ["ai/resnet", "ai/yolo"]

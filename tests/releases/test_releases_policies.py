"""Policies that never surprise, and destructive commands that say what they do (issue 14,
items 4 and 5): rules of a tag are ANDed, a tag never moves backwards, a manual tag pins it,
``policy set`` edits one field; archive/delete need --force when they remove tags or leave
links dangling, and model/collection/experiment delete are one audited commit each."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hostile import assert_refused, fingerprint, modelbox

from modelbox import ModelBoxClient
from modelbox.errors import InUseError
from modelbox.rules import OPS, Rule, RuleSyntaxError, all_hold, parse_rule

if TYPE_CHECKING:
    from conftest import Run

M = "ai/m"


def ok(run: Run, *argv: str | Path) -> str:
    result = run(*argv)
    assert result.code == 0, result.err
    return str(result.out)


def commits(registry: Path) -> int:
    out = subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=registry, check=True,
                         capture_output=True, text=True).stdout
    return int(out)


def tags(run: Run, reg: Path, model: str = M) -> dict[str, str]:
    shown = json.loads(ok(run, "--repo", reg, "model", "show", model, "--json"))
    return dict(shown["tags"])


def policy(run: Run, reg: Path) -> Any:
    return json.loads(ok(run, "--repo", reg, "policy", "show", M, "--json"))


def three_versions(run: Run, registry_path: Path) -> None:
    """ai/m with v1, v2, v3 (created in that order), each with one artifact (`production`
    is protected: it releases what it names, which needs artifacts)."""
    weights = registry_path.parent / "weights.bin"
    ok(run, "--repo", registry_path, "model", "create", M)
    for v in ("v1", "v2", "v3"):
        ok(run, "--repo", registry_path, "version", "create", M, v)
        weights.write_bytes(f"weights of {v}".encode())
        ok(run, "--repo", registry_path, "artifact", "add", f"{M}@{v}", weights)


@pytest.fixture
def reg(registry_path: Path, run: Run) -> Path:
    """:func:`three_versions`; v1 has acc and latency_ms."""
    r = ("--repo", registry_path)
    three_versions(run, registry_path)
    ok(run, *r, "metrics", "log", f"{M}@v1", "acc=0.5", "latency_ms=10")
    return registry_path


# -- the rule grammar -----------------------------------------------------------------------
@pytest.mark.parametrize(("text", "metric", "dataset", "op", "value"), [
    ("acc>=0.9", "acc", None, ">=", 0.9),
    ("acc/coco-2017 > 0.5", "acc", "coco-2017", ">", 0.5),
    ("latency_ms<=20", "latency_ms", None, "<=", 20.0),
    (" loss < 1e-3 ", "loss", None, "<", 0.001),
    ("epoch==3", "epoch", None, "==", 3.0),
    ("status!=-1", "status", None, "!=", -1.0),
])
def test_the_rule_grammar_reads_metric_dataset_op_value(
    text: str, metric: str, dataset: str | None, op: str, value: float
) -> None:
    assert parse_rule(text) == Rule(metric=metric, op=op, value=value, dataset=dataset)


@pytest.mark.parametrize("text", ["acc", "acc>=", ">=0.9", "acc=>0.9", "acc>=x", "acc>=nan",
                                  "acc>=inf", "acc=0.9", "acc>=0.9 extra", ""])
def test_text_that_is_no_rule_is_refused(text: str) -> None:
    with pytest.raises(RuleSyntaxError):
        parse_rule(text)


def test_every_operator_evaluates_and_a_missing_or_text_value_never_holds() -> None:
    summary: dict[str, float | int | str] = {"x": 2.0, "n": 2, "t": "2"}
    expected = {">=": True, "<=": True, ">": False, "<": False, "==": True, "!=": False}
    for op, result in expected.items():
        assert Rule("x", op, 2.0).holds(summary) is result
        assert Rule("n", op, 2.0).holds(summary) is result
        assert Rule("t", op, 2.0).holds(summary) is False  # text is no number
        assert Rule("missing", op, 2.0).holds(summary) is False  # not even for !=
    assert set(OPS) == set(expected)
    assert all_hold([Rule("x", ">", 1), Rule("n", "<", 3)], summary)
    assert not all_hold([Rule("x", ">", 1), Rule("n", ">", 3)], summary)  # AND, not OR
    assert not all_hold([], summary)


# -- the three findings ---------------------------------------------------------------------
def test_logging_a_metric_on_an_older_version_never_takes_the_tag_back(
    reg: Path, run: Run
) -> None:
    r = ("--repo", reg)
    ok(run, *r, "policy", "set", M, "--label", "production:acc>=0.9")
    ok(run, *r, "metrics", "log", f"{M}@v2", "acc=0.95")
    ok(run, *r, "metrics", "log", f"{M}@v3", "acc=0.97")
    assert tags(run, reg)["production"] == "v3"
    ok(run, *r, "metrics", "log", f"{M}@v2", "latency_ms=12")  # the finding
    assert tags(run, reg)["production"] == "v3"
    ok(run, *r, "metrics", "log", f"{M}@v2", "acc=0.99")  # better, but older: still no
    assert tags(run, reg)["production"] == "v3"


def test_every_rule_of_a_tag_must_hold(reg: Path, run: Run) -> None:
    r = ("--repo", reg)
    ok(run, *r, "policy", "set", M, "--label", "production:acc>=0.9",
       "--label", "production:latency_ms<=20")
    ok(run, *r, "metrics", "log", f"{M}@v2", "acc=0.5", "latency_ms=5")  # the finding
    assert "production" not in tags(run, reg)
    ok(run, *r, "metrics", "log", f"{M}@v3", "acc=0.95", "latency_ms=30")
    assert "production" not in tags(run, reg)
    ok(run, *r, "metrics", "log", f"{M}@v3", "latency_ms=15")
    assert tags(run, reg)["production"] == "v3"
    message = subprocess.run(["git", "log", "-1", "--format=%B"], cwd=reg, check=True,
                             capture_output=True, text=True).stdout
    assert "Modelbox-Policy: production: acc >= 0.9 and latency_ms <= 20" in message


def test_policy_set_edits_one_field_and_prints_the_whole_policy(reg: Path, run: Run) -> None:
    r = ("--repo", reg)
    out = ok(run, *r, "policy", "set", M, "--keep-last", "3")
    assert "keep the newest 3" in out
    out = ok(run, *r, "policy", "set", M, "--label", "production:acc>=0.9")
    assert "keep the newest 3" in out and "label production: acc >= 0.9" in out  # the finding
    out = ok(run, *r, "policy", "set", M, "--label", "staging:latency_ms<20")
    assert "label production: acc >= 0.9" in out and "label staging" in out
    out = ok(run, *r, "policy", "set", M, "--no-keep-tagged")
    assert "keep the newest 3 and every linked version" in out
    assert policy(run, reg)["retention"] == {"keep_last": 3, "keep_tagged": False,
                                             "keep_linked": True}
    out = ok(run, *r, "policy", "set", M, "--clear-label", "production")
    assert "production" not in out and "label staging" in out
    out = ok(run, *r, "policy", "set", M, "--clear-keep-last")
    assert "retention: none" in out and "label staging" in out
    before = commits(reg)
    assert ok(run, *r, "policy", "set", M) == out  # no option: print, change nothing
    assert commits(reg) == before
    assert ok(run, *r, "policy", "set", M, "--label", "staging:latency_ms<20") == out
    assert commits(reg) == before  # the same rule again changes nothing


def test_the_python_api_and_a_buffered_log_still_apply_the_policy(
    reg: Path, run: Run
) -> None:
    ok(run, "--repo", reg, "policy", "set", M, "--label", "production:acc>=0.9")
    client = ModelBoxClient(reg)
    model = client.model(M)
    model.version("v3").log_metrics({"acc": 0.97})
    model.version("v2").log_metrics({"acc": 0.99})
    client.close()  # commits what was buffered
    assert tags(run, reg)["production"] == "v3"


def test_the_worked_example_of_docs_policies_md_holds(registry_path: Path, run: Run) -> None:
    r = ("--repo", registry_path)
    three_versions(run, registry_path)
    ok(run, *r, "metrics", "log", f"{M}@v1", "acc=0.95", "latency_ms=30")
    ok(run, *r, "policy", "set", M, "--label", "production:acc>=0.9",
       "--label", "production:latency_ms<=20")
    steps: list[tuple[tuple[str, ...], str | None]] = [
        (("metrics", "log", f"{M}@v1", "acc=0.96"), None),
        (("metrics", "log", f"{M}@v2", "acc=0.92", "latency_ms=15"), "v2"),
        (("metrics", "log", f"{M}@v3", "acc=0.97", "latency_ms=12"), "v3"),
        (("metrics", "log", f"{M}@v2", "acc=0.99"), "v3"),
        (("metrics", "log", f"{M}@v3", "latency_ms=40"), "v2"),
        (("tag", f"{M}@v1", "production"), "v1"),
        (("metrics", "log", f"{M}@v3", "latency_ms=10"), "v1"),
        (("policy", "unpin", M, "production"), "v1"),
        (("metrics", "log", f"{M}@v3", "latency_ms=9"), "v3"),
    ]
    for number, (argv, holder) in enumerate(steps, 1):
        ok(run, *r, *argv)
        assert tags(run, registry_path).get("production") == holder, number
    doc = (Path(__file__).parents[2] / "docs" / "policies.md").read_text()
    assert "| 8 | `policy unpin ai/m production`, then `metrics log ai/m@v3 latency_ms=9`" in doc


# -- who holds a tag ------------------------------------------------------------------------
def test_a_holder_that_fails_its_rules_or_is_archived_gives_the_tag_to_the_newest_qualifier(
    reg: Path, run: Run
) -> None:
    r = ("--repo", reg)
    ok(run, *r, "policy", "set", M, "--label", "production:acc>=0.9")
    ok(run, *r, "metrics", "log", f"{M}@v1", "acc=0.91")
    ok(run, *r, "metrics", "log", f"{M}@v2", "acc=0.92")
    ok(run, *r, "metrics", "log", f"{M}@v3", "acc=0.93")
    assert tags(run, reg)["production"] == "v3"
    ok(run, *r, "metrics", "log", f"{M}@v3", "acc=0.2")  # the holder fails now
    assert tags(run, reg)["production"] == "v2"  # older is allowed: the newest qualifier
    ok(run, *r, "version", "archive", f"{M}@v2", "--force")
    assert "production" not in tags(run, reg)
    ok(run, *r, "metrics", "log", f"{M}@v1", "acc=0.95")
    assert tags(run, reg)["production"] == "v1"
    ok(run, *r, "metrics", "log", f"{M}@v1", "acc=0.1")  # nothing qualifies: it stays
    assert tags(run, reg)["production"] == "v1"


def test_a_tag_set_by_hand_is_pinned_until_unpinned(reg: Path, run: Run) -> None:
    r = ("--repo", reg)
    ok(run, *r, "policy", "set", M, "--label", "production:acc>=0.9")
    ok(run, *r, "metrics", "log", f"{M}@v2", "acc=0.95")
    ok(run, *r, "metrics", "log", f"{M}@v3", "acc=0.97")
    out = ok(run, *r, "tag", f"{M}@v2", "production")  # a rollback
    assert "pinned against policy moves" in out
    assert f"modelbox policy unpin {M} production" in out
    assert policy(run, reg)["pinned"] == ["production"]
    assert "pinned" in ok(run, *r, "policy", "show", M)
    ok(run, *r, "metrics", "log", f"{M}@v3", "acc=0.99")
    assert tags(run, reg)["production"] == "v2"  # the pin holds
    ok(run, *r, "policy", "set", M, "--label", "production:latency_ms>=0")
    assert policy(run, reg)["pinned"] == ["production"]  # editing keeps the pin
    ok(run, *r, "policy", "set", M, "--clear-label", "production", "--label",
       "production:acc>=0.9")
    document = reg / "policy.json"
    document.write_text(json.dumps({"labelling": [
        {"tag": "production", "metric": "acc", "op": ">=", "value": 0.9}]}))
    ok(run, *r, "policy", "set", M, "--file", document)
    assert policy(run, reg)["pinned"] == ["production"]  # a document without pins keeps them
    out = ok(run, *r, "policy", "unpin", M, "production")
    assert "Unpinned" in out and policy(run, reg)["pinned"] == []
    ok(run, *r, "metrics", "log", f"{M}@v3", "acc=0.99")
    assert tags(run, reg)["production"] == "v3"
    out = ok(run, *r, "untag", M, "production")  # removing by hand pins too
    assert "pinned against policy moves" in out
    ok(run, *r, "metrics", "log", f"{M}@v3", "acc=0.995")
    assert "production" not in tags(run, reg)
    # A tag no rule labels is never pinned.
    assert "pinned" not in ok(run, *r, "tag", f"{M}@v1", "staging")


# -- bad input to policy set ----------------------------------------------------------------
BAD_SET: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("--label", "production"), ("--label", "'production'")),
    (("--label", "production:acc"), ("METRIC[/DATASET] OP VALUE",)),
    (("--label", "production:acc=>0.9"), ("acc=>0.9",)),
    (("--label", "production:acc>=x"), ("'x' is not a number",)),
    (("--label", "production:acc>=nan"), ("finite",)),
    (("--label", ":acc>=1"), ("--label",)),
    (("--label", "latest:acc>=0.9"), ("'latest'", "computed by modelbox")),
    (("--label", "../x:acc>=0.9"), ("tag",)),
    (("--label", "production:acuracy>=0.9"), ("'acuracy'", "known: acc, latency_ms")),
    (("--clear-label", "nothing"), ("no labelling rule for 'nothing'",)),
    (("--keep-tagged",), ("no retention rule", "--keep-last")),
    (("--keep-last", "0"), ("--keep-last",)),
    (("--file", "/dev/null", "--keep-last", "2"), ("--file", "alone")),
]


@pytest.mark.parametrize(("argv", "needles"), BAD_SET,
                         ids=[" ".join(a) for a, _ in BAD_SET])
def test_a_bad_policy_edit_is_one_line_and_changes_nothing(
    reg: Path, argv: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    before = fingerprint(reg)
    code, _, err = modelbox("--repo", reg, "policy", "set", M, *argv)
    if argv[0] == "--keep-last":  # click's own usage error: exit 2, its own wording
        assert code == 2 and "Traceback" not in err and needles[0] in err
    else:
        assert_refused(code, err, *needles)
    assert fingerprint(reg) == before


BAD_REMOVAL: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("policy", "unpin", M, "production"), (f"{M}:production is not pinned",)),
    (("policy", "unpin", "ai/none", "production"), ("ai/none does not exist",)),
    (("model", "delete", "ai/none"), ("ai/none does not exist",)),
    (("collection", "delete", "ai/none"), ("ai/none does not exist",)),
    (("experiment", "delete", "ai/none"), ("experiment ai/none does not exist",)),
    (("experiment", "delete", M), ("experiment ai/m does not exist",)),
    (("model", "delete", "../x"), ("invalid namespace",)),
    (("version", "archive", f"{M}@v9"), (f"{M}@v9",)),
]


@pytest.mark.parametrize(("argv", "needles"), BAD_REMOVAL,
                         ids=[" ".join(a) for a, _ in BAD_REMOVAL])
def test_removing_what_is_not_there_is_one_line_and_changes_nothing(
    reg: Path, argv: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    before = fingerprint(reg)
    code, _, err = modelbox("--repo", reg, *argv)
    assert_refused(code, err, *needles)
    assert fingerprint(reg) == before


# -- destructive commands -------------------------------------------------------------------
@pytest.fixture
def linked(reg: Path, run: Run) -> Path:
    """v1 carries production and staging; prod/c@v0 links v1, prod/c@v1 links v2."""
    r = ("--repo", reg)
    ok(run, *r, "tag", f"{M}@v1", "production")
    ok(run, *r, "tag", f"{M}@v1", "staging")
    ok(run, *r, "collection", "create", "prod/c")
    ok(run, *r, "link", f"{M}@v1", "prod/c")
    ok(run, *r, "link", f"{M}@v2", "prod/c", "--tag", "edge")
    return reg


def last_events(run: Run, reg: Path, target: str) -> list[dict[str, Any]]:
    """The audit events of the newest commit, read back through `modelbox log`."""
    events = json.loads(ok(run, "--repo", reg, "log", target, "--json"))
    newest = events[0]["commit"]
    return [e for e in events if e["commit"] == newest]


def test_archiving_a_tagged_version_needs_force_and_lists_the_tags(
    linked: Path, run: Run
) -> None:
    before = fingerprint(linked)
    code, _, err = modelbox("--repo", linked, "version", "archive", f"{M}@v1")
    assert_refused(code, err, f"{M}@v1", "production, staging", "--force",
                   "links to it stay valid")
    assert fingerprint(linked) == before
    count = commits(linked)
    out = ok(run, "--repo", linked, "version", "archive", f"{M}@v1", "--force")
    assert "removed its tags production, staging" in out
    assert commits(linked) == count + 1
    ops = sorted(e["operation"] for e in last_events(run, linked, f"{M}@v1"))
    assert ops == ["tag.remove", "tag.remove", "version.archive"]
    assert ok(run, "--repo", linked, "resolve", "prod/c@v0").strip() == "v0"  # link valid
    # An untagged version archives without --force, as before.
    assert "removed" not in ok(run, "--repo", linked, "version", "archive", f"{M}@v3")
    with pytest.raises(InUseError, match="edge"):
        ModelBoxClient(linked).model("prod/c").version("v1").archive()


def test_deleting_a_linked_version_needs_force_and_lists_the_dangling_links(
    linked: Path, run: Run
) -> None:
    before = fingerprint(linked)
    code, _, err = modelbox("--repo", linked, "version", "delete", f"{M}@v2")
    assert_refused(code, err, "prod/c@v1", "dangling", "--force")
    assert fingerprint(linked) == before
    count = commits(linked)
    out = ok(run, "--repo", linked, "version", "delete", f"{M}@v2", "--force")
    assert "left dangling the links to it (linked by prod/c@v1" in out
    assert commits(linked) == count + 1
    assert last_events(run, linked, f"{M}@v2")[0]["operation"] == "version.delete"
    check = run("--repo", linked, "check")
    assert "prod/c@v1" in check.out + check.err


def test_model_delete_needs_force_when_tagged_or_linked_and_is_one_commit(
    linked: Path, run: Run
) -> None:
    r = ("--repo", linked)
    ok(run, *r, "model", "create", f"{M}/inner")  # nests inside ai/m's folder
    before = fingerprint(linked)
    code, _, err = modelbox(*r, "model", "delete", M)
    assert_refused(code, err, f"model {M}", "production, staging", "prod/c@v0", "--force")
    assert fingerprint(linked) == before
    count = commits(linked)
    out = ok(run, *r, "model", "delete", M, "--force")
    assert "Deleted model ai/m (3 version(s)" in out
    assert "production -> v1" in out and "prod/c@v0 -> ai/m@v1" in out
    assert commits(linked) == count + 1
    events = last_events(run, linked, M)
    assert sorted(e["operation"] for e in events) == ["model.delete", "tag.remove", "tag.remove"]
    text = ok(run, *r, "log", M)
    assert "model.delete" in text.splitlines()[0] or "model.delete" in text
    assert run(*r, "model", "show", M).code == 1
    ok(run, *r, "model", "show", f"{M}/inner")  # the nested model stays
    refs = subprocess.run(["git", "for-each-ref", "refs/modelbox/tags/ai/m/"], cwd=linked,
                          check=True, capture_output=True, text=True).stdout
    assert refs == ""
    assert not (linked / "models/ai/m/_versions").exists()


def test_collection_delete_follows_the_same_rules(linked: Path, run: Run) -> None:
    r = ("--repo", linked)
    ok(run, *r, "collection", "create", "prod/outer")
    ok(run, *r, "link", "prod/c@v0", "prod/outer")
    before = fingerprint(linked)
    code, _, err = modelbox(*r, "collection", "delete", "prod/c")
    assert_refused(code, err, "collection prod/c", "edge", "prod/outer@v0", "--force")
    code, _, err = modelbox(*r, "model", "delete", "prod/c")
    assert_refused(code, err, "collection", "`modelbox collection delete prod/c`")
    code, _, err = modelbox(*r, "collection", "delete", M)
    assert_refused(code, err, "is a model", f"`modelbox model delete {M}`")
    assert fingerprint(linked) == before
    count = commits(linked)
    out = ok(run, *r, "collection", "delete", "prod/c", "--force")
    assert "Deleted collection prod/c (2 version(s)" in out and "edge -> v1" in out
    assert commits(linked) == count + 1
    assert last_events(run, linked, "prod/c")[0]["operation"] in {"collection.delete",
                                                                  "tag.remove"}
    assert tags(run, linked)["production"] == "v1"  # the linked versions stay


def test_experiment_delete_needs_force_when_a_checkpoint_was_promoted(
    registry_path: Path, run: Run
) -> None:
    r = ("--repo", registry_path)
    ok(run, *r, "experiment", "create", "ai/run-1")
    ok(run, *r, "checkpoint", "create", "ai/run-1", "epoch-1")
    ok(run, *r, "checkpoint", "create", "ai/run-1", "epoch-2")
    ok(run, *r, "model", "create", "ai/prod-model")
    ok(run, *r, "checkpoint", "promote", "ai/run-1@epoch-2", "ai/prod-model@v1")
    ok(run, *r, "experiment", "create", "ai/run-2")
    count = commits(registry_path)
    assert json.loads(ok(run, *r, "experiment", "delete", "ai/run-2", "--json")) == {
        "deleted": "experiment", "name": "ai/run-2", "versions": [], "tags_removed": [],
        "dangling": []}
    assert commits(registry_path) == count + 1
    before = fingerprint(registry_path)
    code, _, err = modelbox(*r, "experiment", "delete", "ai/run-1")
    assert_refused(code, err, "ai/prod-model@v1", "--force")
    code, _, err = modelbox(*r, "model", "delete", "ai/run-1")
    assert_refused(code, err, "is an experiment")
    assert fingerprint(registry_path) == before
    out = ok(run, *r, "experiment", "delete", "ai/run-1", "--force")
    assert "2 checkpoint(s)" in out and "ai/prod-model@v1" in out
    assert last_events(run, registry_path, "ai/run-1")[0]["operation"] == "experiment.delete"
    assert json.loads(ok(run, *r, "experiment", "list", "--json")) == []
    assert ok(run, *r, "resolve", "ai/prod-model@v1").strip() == "v1"  # the version stays


def test_retention_keeps_linked_versions_unless_the_policy_says_otherwise(
    linked: Path, run: Run
) -> None:
    r = ("--repo", linked)
    for v in ("v4", "v5"):
        ok(run, *r, "version", "create", M, v)
    ok(run, *r, "untag", M, "production")
    ok(run, *r, "untag", M, "staging")
    ok(run, *r, "policy", "set", M, "--keep-last", "1")
    dry = json.loads(ok(run, *r, "gc", "--dry-run", "--json"))
    assert dry["archive"] == [f"{M}@v3", f"{M}@v4"]  # v1 and v2 are linked
    ok(run, *r, "policy", "set", M, "--no-keep-linked")
    dry = json.loads(ok(run, *r, "gc", "--dry-run", "--json"))
    assert dry["archive"] == [f"{M}@v1", f"{M}@v2", f"{M}@v3", f"{M}@v4"]


def test_a_policy_never_gives_a_protected_tag_to_a_version_without_artifacts(
    registry_path: Path, run: Run
) -> None:
    # `production` releases (freezes) what it names; an empty version cannot be released,
    # so it does not qualify, and logging its metrics still succeeds.
    r = ("--repo", registry_path)
    ok(run, *r, "model", "create", M)
    ok(run, *r, "version", "create", M, "v1")
    ok(run, *r, "metrics", "log", f"{M}@v1", "acc=0.5")
    ok(run, *r, "policy", "set", M, "--label", "production:acc>=0.9",
       "--label", "staging:acc>=0.9")
    ok(run, *r, "metrics", "log", f"{M}@v1", "acc=0.95")
    assert tags(run, registry_path) == {"staging": "v1"}
    weights = registry_path.parent / "weights.bin"
    weights.write_bytes(b"weights")
    ok(run, *r, "version", "create", M, "v2")
    ok(run, *r, "artifact", "add", f"{M}@v2", weights)
    ok(run, *r, "metrics", "log", f"{M}@v2", "acc=0.96")
    assert tags(run, registry_path) == {"staging": "v2", "production": "v2"}

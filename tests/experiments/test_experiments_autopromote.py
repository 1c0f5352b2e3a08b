"""Auto-promotion of an experiment's checkpoints (issue 17, item 3): the policy, the hook
every checkpoint write goes through, exactly-once, the audit trail, hostile policies."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from experiments_helpers import git
from hostile import modelbox

from modelbox import ModelBoxClient
from modelbox.autopromote import after_checkpoint, edit_policy, policy_file
from modelbox.errors import InvalidValueError
from modelbox.names import parse_model
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Run

EXP = "ai/vision/run-1"
MODEL = "ai/vision/yolo"


@pytest.fixture
def client(registry_path: Path) -> Iterator[ModelBoxClient]:
    with ModelBoxClient(registry_path) as made:
        made.new_model(MODEL)
        made.new_experiment(EXP)
        yield made


def weights(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_a_checkpoint_meeting_every_rule_is_promoted_once_with_its_objects(
    client: ModelBoxClient, registry_path: Path, tmp_path: Path,
) -> None:
    registry = client.registry
    edit_policy(registry, parse_model(EXP), promote_to=MODEL,
                when=["val_acc>=0.9", "val_loss<0.5"], tag="candidate")
    exp = client.experiment(EXP)
    exp.new_checkpoint(1, metrics={"val_acc": 0.95, "val_loss": 0.7},
                       files=[weights(tmp_path, "a.pt", b"a" * 100)])
    client.flush()
    assert client.model(MODEL).versions() == []  # val_loss fails: not promoted
    store = registry_path / ".git" / "modelbox" / "store"
    ckpt = exp.new_checkpoint(2, metrics={"val_acc": 0.95, "val_loss": 0.3},
                              files=[weights(tmp_path, "b.pt", b"b" * 100)])
    client.flush()
    [version] = client.model(MODEL).versions()
    assert version.version == "v0"
    assert version.metadata["source_checkpoint"] == f"{EXP}@epoch-2"
    assert [a.checksum for a in version.artifacts()] == [a.checksum for a in ckpt.artifacts()]
    # two files uploaded, two objects stored: the promotion shares them (no upload)
    assert len([p for p in (store / "sha256").rglob("*") if p.is_file()]) == 2
    assert client.resolve(f"{MODEL}:candidate") == "v0"
    # one commit, naming the policy and its rules
    message = git(registry_path, "log", "-1", "--format=%B", "--grep=checkpoint.promote")
    assert "Modelbox-Policy: promote to ai/vision/yolo: val_acc >= 0.9 and val_loss < 0.5" \
        in message
    assert "Modelbox-Tag: ai/vision/yolo:candidate" in message
    # re-evaluation (the hook again, more metrics on the checkpoint) promotes nothing more
    head = git(registry_path, "rev-parse", "HEAD")
    assert after_checkpoint(Registry.open(registry_path), parse_model(EXP), "epoch-2") == []
    assert git(registry_path, "rev-parse", "HEAD") == head
    ckpt.log_metrics({"val_acc": 0.97})
    client.flush()
    assert [v.version for v in client.model(MODEL).versions()] == ["v0"]


def test_the_decision_is_derived_from_the_registry_not_from_memory(
    client: ModelBoxClient, registry_path: Path, tmp_path: Path,
) -> None:
    """A promotion whose checkpoint record was lost (a hand edit, or a crash of an older
    writer) is still found through the version's source_checkpoint: no second version."""
    exp = client.experiment(EXP)
    exp.new_checkpoint(1, metrics={"val_acc": 0.95},
                       files=[weights(tmp_path, "a.pt", b"a" * 10)])
    client.flush()
    ckpt = exp.checkpoints()[0]
    ckpt.promote(client.model(MODEL), "v0")
    path = registry_path / "experiments/ai/vision/run-1/_checkpoints/epoch-1/_checkpoint.json"
    doc = json.loads(path.read_text())
    doc["promoted_to"] = []
    path.write_text(json.dumps(doc))
    git(registry_path, "commit", "-qam", "drop the promotion record")
    edit_policy(client.registry, parse_model(EXP), promote_to=MODEL, when=["val_acc>=0.9"])
    registry = Registry.open(registry_path)
    assert after_checkpoint(registry, parse_model(EXP), "epoch-1") == []
    assert [v.version for v in client.model(MODEL).versions()] == ["v0"]


def test_a_checkpoint_without_files_waits_for_them(
    client: ModelBoxClient, tmp_path: Path,
) -> None:
    edit_policy(client.registry, parse_model(EXP), promote_to=MODEL, when=["acc>=0.5"])
    exp = client.experiment(EXP)
    ckpt = exp.new_checkpoint(1, metrics={"acc": 0.9})
    client.flush()
    assert client.model(MODEL).versions() == []
    ckpt.upload_artifact([weights(tmp_path, "w.pt", b"w")])
    client.flush()
    [version] = client.model(MODEL).versions()
    assert version.metrics_summary == {"acc": 0.9}


def test_the_cli_sets_shows_and_reports_in_json(
    client: ModelBoxClient, registry_path: Path, run: Run, tmp_path: Path,
) -> None:
    client.close()
    import os

    os.chdir(registry_path)
    done = run("policy", "set", EXP, "--promote-to", MODEL, "--when", "val_acc>=0.9",
               "--tag", "candidate", "--json")
    assert done.code == 0, done.err
    shown = json.loads(done.out)
    assert shown["promotion"]["model"] == MODEL
    assert shown["promotion"]["when"][0]["metric"] == "val_acc"
    text = run("policy", "show", EXP)
    assert "promote to ai/vision/yolo tagged candidate when val_acc >= 0.9" in text.out
    assert run("checkpoint", "create", EXP, "e1").code == 0
    file = weights(tmp_path, "w.pt", b"w")
    assert run("artifact", "add", f"{EXP}@e1", file).code == 0
    assert run("metrics", "log", f"{EXP}@e2", "val_acc=0.95").code == 1  # no such checkpoint
    assert run("checkpoint", "create", EXP, "e2").code == 0
    assert run("metrics", "log", f"{EXP}@e2", "val_acc=0.95").code == 0
    added = run("artifact", "add", f"{EXP}@e2", weights(tmp_path, "x.pt", b"x"))
    assert f"{EXP}@e2 promoted to {MODEL}@v0 (policy: promote to" in added.out
    logged = run("metrics", "log", f"{EXP}@e1", "val_acc=0.93", "--json")
    assert logged.code == 0, logged.err
    assert json.loads(logged.out)["decisions"] == [
        {"action": "promote", "checkpoint": f"{EXP}@e1", "target": f"{MODEL}@v1",
         "policy": "promote to ai/vision/yolo: val_acc >= 0.9"}]
    plain = run("policy", "show", EXP, "--json")
    assert json.loads(plain.out)["promotion"]["tag"] == "candidate"


@pytest.mark.parametrize(("args", "message"), [
    (["--when", "val_acc>=0.9"], "--when and --tag need --promote-to MODEL"),
    (["--promote-to", MODEL], "needs at least one --when"),
    (["--promote-to", MODEL, "--when", "val_acc=>0.9"], "--when 'val_acc=>0.9'"),
    (["--promote-to", "ai/vision/nope", "--when", "a>1"], "ai/vision/nope of ai/vision/run-1"),
    (["--promote-to", MODEL, "--when", "a>1", "--tag", "latest"], "latest"),
    (["--keep-best", "2"], "--keep-best N needs --by METRIC"),
])
def test_bad_policy_options_are_one_line_and_change_nothing(
    client: ModelBoxClient, registry_path: Path, run: Run, args: list[str], message: str,
) -> None:
    client.close()
    head = git(registry_path, "rev-parse", "HEAD")
    import os

    os.chdir(registry_path)
    done = run("policy", "set", EXP, *args)
    assert done.code == 1
    assert done.err.startswith("modelbox: error: ") and done.err.count("\n") == 1, done.err
    assert message in done.err
    assert git(registry_path, "rev-parse", "HEAD") == head


def test_promotion_into_a_namespace_the_user_does_not_own_is_refused(
    client: ModelBoxClient, registry_path: Path, tmp_path: Path,
) -> None:
    client.new_model("prod/yolo")
    client.namespace("prod").set_owner("@someone-else")
    with pytest.raises(InvalidValueError, match="does not own the namespace prod"):
        edit_policy(client.registry, parse_model(EXP), promote_to="prod/yolo",
                    when=["acc>=0.5"])


def test_a_co_users_hostile_policy_file_is_one_warning_and_ingest_goes_on(
    client: ModelBoxClient, registry_path: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A co-user commits a policy by hand: a bad rule, a missing target, a target in a
    namespace the user does not own. The checkpoint is still ingested, nothing promoted."""
    client.new_model("prod/yolo")
    client.namespace("prod").set_owner("@someone-else")
    exp = client.experiment(EXP)
    file = registry_path / policy_file(parse_model(EXP))
    rule = {"metric": "acc", "op": ">=", "value": 0.5}
    for number, document in enumerate([
        {"kind": "policy", "promotion": {"model": MODEL, "when": [{**rule, "op": "=>"}]}},
        {"kind": "policy", "promotion": {"model": "ai/vision/gone", "when": [rule]}},
        {"kind": "policy", "promotion": {"model": "prod/yolo", "when": [rule]}},
    ]):
        file.write_text(json.dumps(document))
        git(registry_path, "add", "-A")
        git(registry_path, "commit", "-qm", "a co-user's policy")
        caplog.clear()
        exp.new_checkpoint(number, metrics={"acc": 0.9},
                           files=[weights(tmp_path, f"w{number}.pt", b"w%d" % number)])
        client.flush()
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) >= 1, warnings
        assert all(w.startswith("modelbox: warning:") and "\n" not in w for w in warnings)
    assert [c.id for c in exp.checkpoints()] == [f"{EXP}@epoch-{n}" for n in range(3)]
    assert client.model(MODEL).versions() == []
    assert client.model("prod/yolo").versions() == []
    file.write_text(json.dumps({"kind": "policy", "promotion": {"model": MODEL, "when": []}}))
    git(registry_path, "commit", "-qam", "a co-user's policy with no rule")
    shown = modelbox("policy", "show", EXP, cwd=registry_path)
    assert shown.code == 1 and shown.err.count("\n") == 1, shown
    assert shown.err.startswith("modelbox: error: ") and "_policy.json" in shown.err


@pytest.mark.parametrize("step", ["after-journal", "after-ref-move", "before-tag-refs"])
def test_a_crash_around_the_promotion_commit_never_promotes_twice(
    client: ModelBoxClient, registry_path: Path, tmp_path: Path, step: str,
) -> None:
    """The process dies (as kill -9 would) at each window of the write that logs the
    metrics and promotes; the next writes re-evaluate the checkpoint from the registry."""
    edit_policy(client.registry, parse_model(EXP), promote_to=MODEL, when=["acc>=0.9"],
                tag="candidate")
    client.experiment(EXP).new_checkpoint(1, files=[weights(tmp_path, "w.pt", b"w")])
    client.close()
    died = modelbox("metrics", "log", f"{EXP}@epoch-1", "acc=0.95", cwd=registry_path,
                    env={"MODELBOX_FAULT": step})
    assert died.code == 137
    for value in ("0.96", "0.97"):
        again = modelbox("metrics", "log", f"{EXP}@epoch-1", f"acc={value}",
                         cwd=registry_path)
        assert again.code == 0, again.err
    with ModelBoxClient(registry_path) as after:
        assert [v.version for v in after.model(MODEL).versions()] == ["v0"]
        assert after.resolve(f"{MODEL}:candidate") == "v0"
    assert modelbox("check", cwd=registry_path).code == 0


def test_the_worked_example_of_docs_policies_md(
    client: ModelBoxClient, registry_path: Path, run: Run, tmp_path: Path,
) -> None:
    client.close()
    import os

    os.chdir(registry_path)
    exp = "ai/vision/run-17"
    assert run("experiment", "create", exp).code == 0
    assert run("policy", "set", exp, "--promote-to", MODEL, "--when", "val_acc>=0.9",
               "--when", "val_loss<0.3", "--tag", "candidate", "--keep-best", "2", "--by",
               "val_loss", "--min").code == 0
    decided = []
    for epoch, acc, loss in ((1, 0.85, 0.40), (2, 0.91, 0.25), (3, 0.93, 0.20),
                             (4, 0.80, 0.50), (2, 0.92, 0.25)):
        ckpt = f"{exp}@epoch-{epoch}"
        assert run("checkpoint", "create", exp, f"epoch-{epoch}").code == 0
        assert run("artifact", "add", ckpt, weights(tmp_path, f"e{epoch}.pt",
                                                    b"%d" % epoch)).code == 0
        logged = run("metrics", "log", ckpt, f"val_acc={acc}", f"val_loss={loss}", "--json")
        assert logged.code == 0, logged.err
        decided.append([(d["action"], d["checkpoint"].rpartition("@")[2], d["target"])
                        for d in json.loads(logged.out).get("decisions", [])])
    assert decided == [
        [],
        [("promote", "epoch-2", f"{MODEL}@v0")],
        [("promote", "epoch-3", f"{MODEL}@v1"), ("archive", "epoch-1", None)],
        [],
        [],
    ]
    log = git(registry_path, "log", "--format=%B", "--grep=checkpoint.promote")
    assert ("Modelbox-Policy: promote to ai/vision/yolo: val_acc >= 0.9 and val_loss < 0.3"
            in log)
    assert "Modelbox-Tag: ai/vision/yolo:candidate - -> v0" in log
    assert "Modelbox-Tag: ai/vision/yolo:candidate v0 -> v1" in log


def test_a_protected_tag_releases_the_promoted_version_from_python(
    client: ModelBoxClient, tmp_path: Path,
) -> None:
    """`production` is protected by default: promotion tagging it releases (freezes) the
    new version, with the checkpoint's artifacts as its set."""
    exp = client.experiment(EXP)
    policy = exp.set_policy(promote_to=client.model(MODEL), when=["acc>=0.9"],
                            tag="production", keep_last=3)
    assert policy["promotion"]["tag"] == "production"
    assert policy["checkpoints"]["keep_last"] == 3
    exp.new_checkpoint(1, metrics={"acc": 0.95}, files=[weights(tmp_path, "w.pt", b"w")])
    client.flush()
    version = client.model_version(f"{MODEL}:production")
    manifest = client.registry.get_version(parse_model(MODEL), version.version)
    assert manifest.released is not None and manifest.released.by == "tag production"
    assert [a.path for a in version.artifacts()] == ["w.pt"]


def test_two_processes_evaluating_one_checkpoint_promote_it_once(
    client: ModelBoxClient, registry_path: Path, tmp_path: Path,
) -> None:
    """A watcher and a callback (here: two real modelbox processes) log on the same
    checkpoint at once: the decision is taken under the registry lock from the branch
    head, so exactly one version is made."""
    from hostile import MODELBOX

    edit_policy(client.registry, parse_model(EXP), promote_to=MODEL, when=["acc>=0.9"])
    client.experiment(EXP).new_checkpoint(1, files=[weights(tmp_path, "w.pt", b"w")])
    client.close()
    procs = [subprocess.Popen([MODELBOX, "metrics", "log", f"{EXP}@epoch-1", f"acc={v}"],
                              cwd=registry_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for v in ("0.91", "0.92", "0.93")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with ModelBoxClient(registry_path) as after:
        assert [v.version for v in after.model(MODEL).versions()] == ["v0"]


def test_the_models_labelling_policy_applies_to_the_versions_promotion_makes(
    client: ModelBoxClient, registry_path: Path, tmp_path: Path,
) -> None:
    """A version made by auto-promotion is a version like one whose metrics were logged:
    the model's labelling rules move their tag to it, in an audited commit of their own."""
    from modelbox import policies

    registry = client.registry
    edit_policy(registry, parse_model(EXP), promote_to=MODEL, when=["val_acc>=0.9"])
    exp = client.experiment(EXP)
    exp.new_checkpoint(1, metrics={"val_acc": 0.92}, files=[weights(tmp_path, "a", b"a")])
    client.flush()
    policies.edit_policy(registry, parse_model(MODEL), labels=["staging:val_acc>=0.95"])
    assert "staging" not in client.model(MODEL).tags()  # v0 does not qualify
    exp.new_checkpoint(2, metrics={"val_acc": 0.97}, files=[weights(tmp_path, "b", b"b")])
    client.flush()
    assert [v.version for v in client.model(MODEL).versions()] == ["v0", "v1"]
    assert client.resolve(f"{MODEL}:staging") == "v1"
    message = git(registry_path, "log", "-1", "--format=%B", "--grep=labelling policy")
    assert "Modelbox-Policy: staging: val_acc >= 0.95" in message, message
    assert "Modelbox-Tag: ai/vision/yolo:staging - -> v1" in message, message
    # a version that does not qualify moves nothing
    exp.new_checkpoint(3, metrics={"val_acc": 0.93}, files=[weights(tmp_path, "c", b"c")])
    client.flush()
    assert client.resolve(f"{MODEL}:staging") == "v1"

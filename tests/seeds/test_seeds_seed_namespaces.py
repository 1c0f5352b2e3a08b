"""Namespaces as seeds 000-003 describe them: listed with counts, shown, owned ("access
control to the metadata of uploaded models") through an optional manifest that
`modelbox codeowners` turns into CODEOWNERS rules, and `ListModels(namespace)`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import Run
from hostile import assert_refused, fingerprint

from modelbox import ModelBoxClient, Namespace
from modelbox.errors import InvalidValueError, ManifestError, NamespaceNotFoundError


def _ok(run: Run, *argv: str | Path) -> str:
    result = run(*argv)
    assert result.code == 0, result
    return result.out


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def reg(registry_path: Path, run: Run) -> Path:
    """ai/vision/yolo (v0, v1; owner alice), ai/vision/ssd, the model ai/vision itself,
    ai/nlp/bert (v0), the collection ai/prod and default/solo."""
    repo = ("--repo", registry_path)
    for argv in (("model", "create", "ai/vision/yolo", "--owner", "alice"),
                 ("model", "create", "ai/vision/ssd"), ("model", "create", "ai/vision"),
                 ("model", "create", "ai/nlp/bert"), ("model", "create", "solo"),
                 ("collection", "create", "ai/prod"),
                 ("version", "create", "ai/vision/yolo"),
                 ("version", "create", "ai/vision/yolo"),
                 ("version", "create", "ai/nlp/bert")):
        _ok(run, *repo, *argv)
    return registry_path


def test_namespaces_exist_implicitly_and_are_listed_with_counts(reg: Path, run: Run) -> None:
    listed = json.loads(_ok(run, "--repo", reg, "namespace", "list", "--json"))
    assert [(n["namespace"], n["model_count"], n["version_count"], n["collection_count"],
             n["manifest"]) for n in listed] == [
        ("ai", 1, 0, 1, False), ("ai/nlp", 1, 1, 0, False), ("ai/vision", 2, 2, 0, False),
        ("default", 1, 0, 0, False)]
    assert not list(reg.rglob("_namespace.json"))  # nothing was written to make them exist
    text = _ok(run, "--repo", reg, "namespace", "list").splitlines()
    assert text[2] == "ai/vision\t2 model(s)\t2 version(s)\t0 collection(s)\t-"
    shown = json.loads(_ok(run, "--repo", reg, "namespace", "show", "ai", "--json"))
    assert (shown["models"], shown["collections"], shown["namespaces"]) == (
        ["ai/vision"], ["ai/prod"], ["ai/nlp", "ai/vision"])
    client = ModelBoxClient(reg)
    spaces = client.namespaces()
    assert all(isinstance(s, Namespace) for s in spaces)
    assert [(s.name, s.model_count, s.version_count) for s in spaces] == [
        ("ai", 1, 0), ("ai/nlp", 1, 1), ("ai/vision", 2, 2), ("default", 1, 0)]
    vision = client.namespace("ai/vision/")
    assert [m.id for m in vision.models()] == ["ai/vision/ssd", "ai/vision/yolo"]
    assert [c.id for c in client.namespace("ai").collections()] == ["ai/prod"]
    with pytest.raises(NamespaceNotFoundError, match="namespace ai/audio does not exist"):
        client.namespace("ai/audio")
    client.close()
    for argv, needle in ((("show", "ai/audio"), "ai/audio"), (("show", "ai/../x"), "'..'"),
                         (("show", "ai/vision/yolo"), "ai/vision/yolo")):  # a model, no ns
        refused = run("--repo", reg, "namespace", *argv)
        assert_refused(refused.code, refused.err, needle)


def test_model_list_exact_is_list_models_of_one_namespace(reg: Path, run: Run) -> None:
    def names(*argv: str) -> list[str]:
        out = _ok(run, "--repo", reg, "model", "list", *argv, "--json")
        return [m["namespace"] + "/" + m["name"] for m in json.loads(out)]

    assert names("--namespace", "ai") == [
        "ai/vision", "ai/nlp/bert", "ai/vision/ssd", "ai/vision/yolo"]  # nested, as before
    assert names("--namespace", "ai", "--exact") == ["ai/vision"]
    assert names("--namespace", "ai/vision", "--exact") == ["ai/vision/ssd", "ai/vision/yolo"]
    assert names("--namespace", "nowhere", "--exact") == []
    text = _ok(run, "--repo", reg, "model", "list", "--namespace", "ai/nlp", "--exact")
    assert text == "ai/nlp/bert\t\t\n"
    usage = run("--repo", reg, "model", "list", "--exact")
    assert usage.code == 2 and "--exact needs --namespace" in usage.err
    client = ModelBoxClient(reg)
    assert [m.id for m in client.models("ai", exact=True)] == ["ai/vision"]
    assert len(client.models("ai")) == 4
    with pytest.raises(InvalidValueError, match="needs a namespace"):
        client.models(exact=True)
    client.close()


def test_set_owner_is_one_audited_commit_in_an_optional_manifest(reg: Path, run: Run) -> None:
    repo = ("--repo", reg)
    made = json.loads(_ok(run, *repo, "namespace", "set-owner", "ai", "acme/ml",
                          "lead@example.com", "--json"))
    assert made == {"namespace": "ai", "owners": ["@acme/ml", "lead@example.com"]}
    manifest = reg / "models" / "ai" / "_namespace.json"
    assert json.loads(manifest.read_text()) == {
        "kind": "namespace", "namespace": "ai", "owners": ["@acme/ml", "lead@example.com"]}
    message = _git(reg, "log", "-1", "--format=%B")
    assert "Modelbox-Operation: namespace.owner" in message
    assert "Modelbox-Target: ai" in message
    assert "Modelbox-After: @acme/ml lead@example.com" in message
    assert _git(reg, "status", "--porcelain") == ""
    # The same owners again: no commit.
    head = _git(reg, "rev-parse", "HEAD")
    _ok(run, *repo, "namespace", "set-owner", "ai", "@acme/ml,lead@example.com")
    assert _git(reg, "rev-parse", "HEAD") == head
    # Inherited below, overridden by a nested namespace's own owners.
    client = ModelBoxClient(reg)
    nlp = client.namespace("ai/nlp")
    assert (nlp.owners, nlp.effective_owners, nlp.owners_from) == (
        [], ["@acme/ml", "lead@example.com"], "ai")
    assert nlp.set_owner("@nlp-team").owners == ["@nlp-team"]
    assert client.namespace("ai/nlp").owners_from == "ai/nlp"
    # A namespace holding no model yet may be given owners; then it exists.
    audio = client.set_namespace_owner("ai/audio", "@audio")
    assert (audio.name, audio.model_count, audio.effective_owners) == ("ai/audio", 0, ["@audio"])
    assert audio.clear_owner().owners == []
    with pytest.raises(NamespaceNotFoundError):
        client.namespace("ai/audio")
    client.close()
    shown = _ok(run, *repo, "namespace", "show", "ai/vision")
    assert "owners: @acme/ml lead@example.com (from ai)" in shown
    log = _ok(run, *repo, "log")
    assert "namespace.owner  ai/nlp  - -> @nlp-team" in log
    assert "namespace.owner  ai/audio  @audio -> -" in log
    cleared = _ok(run, *repo, "namespace", "set-owner", "ai/nlp", "--clear")
    assert cleared == "Cleared the owners of ai/nlp\n"
    assert not (reg / "models" / "ai" / "nlp" / "_namespace.json").exists()
    assert _ok(run, *repo, "check").startswith("ok")


def test_a_wrong_set_owner_call_is_one_line_and_changes_nothing(reg: Path, run: Run) -> None:
    _ok(run, "--repo", reg, "namespace", "set-owner", "ai", "@acme/ml")
    before = fingerprint(reg)
    for owners, needle in ((["Jane Doe"], "'Jane Doe'"), (["@a", "a b"], "'a b'"),
                           (["@alice\n* @mallory"], "is not a user"),
                           ([f"@x{i}" for i in range(65)], "at most 64")):
        refused = run("--repo", reg, "namespace", "set-owner", "ai", *owners)
        assert_refused(refused.code, refused.err, needle)
    for namespace, needle in (("AI", "differs only in case"), ("ai/_x", "'_x'"),
                              ("../x", "'..'"), ("ai//x", "'//'")):
        refused = run("--repo", reg, "namespace", "set-owner", namespace, "@team")
        assert_refused(refused.code, refused.err, needle)
    for argv in ((), ("--clear", "@x")):
        usage = run("--repo", reg, "namespace", "set-owner", "ai", *argv)
        assert usage.code == 2 and "--clear" in usage.err
    assert fingerprint(reg) == before
    client = ModelBoxClient(reg)
    with pytest.raises(InvalidValueError, match="clear_owner"):
        client.namespace("ai").set_owner()
    client.close()


EXPECTED = """\
# Generated by `modelbox codeowners --write` from the namespaces' and models' owners.
# Edit them (`modelbox namespace set-owner NS OWNER...`,
# `modelbox model update MODEL --owner ...`), then regenerate.

/models/ai/ @acme/ml
/models/ai/nlp/ @nlp
/models/ai/vision/_* @acme/ml
/models/ai/vision/_artifacts/ @acme/ml
/models/ai/vision/_versions/ @acme/ml
/models/ai/vision/yolo/ @alice
/models/default/ ops@example.com
"""


def test_codeowners_has_one_rule_per_namespace_inherited_below_and_overridden_by_models(
    reg: Path, run: Run
) -> None:
    repo = ("--repo", reg)
    for namespace, owner in (("ai", "@acme/ml"), ("ai/nlp", "@nlp"),
                             ("default", "ops@example.com")):
        _ok(run, *repo, "namespace", "set-owner", namespace, owner)
    # ai/vision has no owners of its own: ai/vision/ssd falls under /models/ai/ (@acme/ml),
    # yolo has its own owner; the model ai/vision (owner-less, in namespace ai) keeps ai's
    # owners for its own entries without handing them to the models below it.
    assert _ok(run, *repo, "codeowners") == EXPECTED
    _ok(run, *repo, "namespace", "set-owner", "ai/vision", "@vision")
    text = _ok(run, *repo, "codeowners")
    assert "/models/ai/vision/ @vision\n" in text
    assert "/models/ai/vision/_* @acme/ml\n" in text  # the model ai/vision: its namespace's
    assert "/models/ai/vision/_namespace.json @vision\n" in text
    rules = [line.split()[0] for line in text.splitlines() if line.startswith("/")]
    assert rules == sorted(rules)  # the last matching rule wins: specific ones come later
    assert json.loads(_ok(run, *repo, "codeowners", "--write", "--json"))["written"] is True
    assert (reg / "CODEOWNERS").read_text() == text
    assert _ok(run, *repo, "check").startswith("ok")


def test_a_hand_edited_namespace_manifest_is_read_defensively(
    reg: Path, run: Run, registry_path: Path
) -> None:
    repo = ("--repo", reg)
    _ok(run, *repo, "namespace", "set-owner", "ai", "@acme/ml")
    manifest = reg / "models" / "ai" / "_namespace.json"
    cases = [
        ('{"kind": "namespace", "namespace": "ai", "owners": ["@alice\\n* @mallory"]}\n',
         "owners.0"),
        ('{"kind": "namespace", "namespace": "ai/vision", "owners": ["@x"]}\n',
         "names ai/vision but sits in the folder of ai"),
        ('{"kind": "namespace", "namespace": "ai", "owners": ["@x"], "extra": 1}\n', "extra"),
        ('{"kind": "namespace", "namespace": "ai", "owners": [' + "[" * 200 + "]" * 200
         + "]}\n", "nest"),
        ("<<<<<<< HEAD\n{}\n", "not valid JSON"),
    ]
    for text, needle in cases:
        manifest.write_text(text)
        _git(reg, "commit", "-q", "-am", "hand edit")
        checked = run(*repo, "check")
        assert checked.code == 1 and "models/ai/_namespace.json" in checked.out + checked.err
        assert needle in checked.out + checked.err, (needle, checked)
        if "sits in the folder" in needle:
            continue  # a valid document in the wrong folder: readers use it where it is
        for argv in (("namespace", "list"), ("namespace", "show", "ai/nlp"), ("codeowners",)):
            refused = run(*repo, *argv)
            assert_refused(refused.code, refused.err, "models/ai/_namespace.json")
        # Listing models never reads namespace manifests.
        assert "ai/nlp/bert" in _ok(run, *repo, "model", "list")
    with pytest.raises(ManifestError):
        ModelBoxClient(registry_path).namespaces()
    # set-owner over a broken manifest says so too, and writes nothing.
    before = fingerprint(reg)
    refused = run(*repo, "namespace", "set-owner", "ai", "@fixed")
    assert_refused(refused.code, refused.err, "models/ai/_namespace.json")
    assert fingerprint(reg) == before
    # A stray _namespace.json at the top of models/ is no namespace's: check says so.
    _git(reg, "rm", "-q", "models/ai/_namespace.json")
    (reg / "models" / "_namespace.json").write_text('{"namespace": "ai"}\n')
    _git(reg, "add", "models/_namespace.json")
    _git(reg, "commit", "-q", "-m", "stray")
    checked = run(*repo, "check")
    assert checked.code == 1 and "models/_namespace.json" in checked.out + checked.err


def test_the_pre_commit_validate_hook_checks_namespace_manifests(
    reg: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hooks import validate

    monkeypatch.chdir(reg)
    path = "models/ai/vision/_namespace.json"
    (reg / path).write_text('{"kind": "namespace", "namespace": "ai/vision", '
                            '"owners": ["@vision"]}\n')
    _git(reg, "add", path)  # pre-commit checks what is staged
    assert validate.main([path]) == 0
    (reg / path).write_text('{"kind": "namespace", "namespace": "ai/vision", '
                            '"owners": ["Jane Doe"]}\n')
    _git(reg, "add", path)
    capsys.readouterr()
    assert validate.main([path]) == 1
    assert path in capsys.readouterr().out


def test_a_proposed_owner_change_shows_in_the_review_diff(reg: Path, run: Run) -> None:
    _ok(run, "--repo", reg, "namespace", "set-owner", "ai", "@acme/ml")
    _ok(run, "--repo", reg, "--branch", "propose", "namespace", "set-owner", "ai", "@acme/ml",
        "@security")
    _ok(run, "--repo", reg, "--branch", "propose", "namespace", "set-owner", "ai/nlp", "@nlp")
    shown = json.loads(_ok(run, "--repo", reg, "diff", "main", "propose", "--format", "json"))
    assert shown["namespaces"] == [
        {"namespace": "ai", "before": ["@acme/ml"], "after": ["@acme/ml", "@security"]},
        {"namespace": "ai/nlp", "before": [], "after": ["@nlp"]}]
    markdown = _ok(run, "--repo", reg, "diff", "main", "propose")
    assert "| `ai` | @acme/ml | @acme/ml @security |" in markdown
    assert "| `ai/nlp` | — | @nlp |" in markdown


def test_deleting_a_model_keeps_the_owners_of_the_namespace_sharing_its_folder(
    reg: Path, run: Run
) -> None:
    _ok(run, "--repo", reg, "namespace", "set-owner", "ai/vision", "@vision")
    before = _git(reg, "rev-parse", "HEAD").strip()
    _ok(run, "--repo", reg, "model", "delete", "ai/vision")  # the model, not the namespace
    # What changed is checked as hooks and CI check it: the folder left holds no model, and
    # is no model's folder missing its manifest.
    assert _ok(run, "--repo", reg, "check", "--since", before).startswith("ok")
    assert (reg / "models" / "ai" / "vision" / "_namespace.json").is_file()
    assert not (reg / "models" / "ai" / "vision" / "_model.json").exists()
    shown = json.loads(_ok(run, "--repo", reg, "namespace", "show", "ai/vision", "--json"))
    assert (shown["owners"], shown["models"]) == (["@vision"], ["ai/vision/ssd",
                                                                "ai/vision/yolo"])
    assert _ok(run, "--repo", reg, "check").startswith("ok")

"""Bad input: exit 1 with one clear line naming the value, and the registry untouched."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from core_helpers import assert_error, git_out, repo_state

if TYPE_CHECKING:
    from conftest import Run


@pytest.fixture
def populated(registry_path: Path, run: Run) -> Path:
    """A registry holding model m with v1 (tagged prod) and v2."""
    repo = ("--repo", str(registry_path))
    for argv in (("model", "create", "m"), ("version", "create", "m", "v1", "--tag", "prod"),
                 ("version", "create", "m", "v2")):
        assert run(*repo, *argv).code == 0
    return registry_path


BAD_COMMANDS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    # invalid names
    (("model", "create", "../x"), ("'..'", "must not start with '.'")),
    (("model", "create", "a..b"), ("'a..b'", "'..'")),
    (("model", "create", ".hidden"), ("'.hidden'", "must not start with '.'")),
    (("model", "create", "x.lock"), ("'x.lock'", "'.lock'")),
    (("model", "create", ""), ("''", "must not be empty")),
    (("model", "create", "a b"), ("'a b'",)),
    (("model", "create", "a\x01b"), ("'a\\x01b'", "control characters")),
    (("model", "create", "x."), ("'x.'", "must not end with '.'")),
    (("model", "create", "ns/a@b"), ("'ns/a@b'", "'@' or ':'")),
    (("model", "create", "a:b"), ("'a:b'", "'@' or ':'")),
    (("model", "create", "a;rm"), ("'a;rm'",)),
    (("version", "create", "m", "v/1"), ("'v/1'", "'/'")),
    (("version", "create", "m", "..v"), ("'..v'",)),
    (("version", "create", "m", "v3", "--tag", "a/b"), ("'a/b'", "'/'")),
    (("version", "create", "m", "v3", "--tag", "x.lock"), ("'x.lock'",)),
    (("tag", "m@v1", "a/b"), ("'a/b'", "'/'")),
    (("tag", "m@v1", ".x"), ("'.x'",)),
    (("tag", "m@v1", ""), ("''", "must not be empty")),
    (("untag", "m", "a..b"), ("'a..b'", "'..'")),
    (("resolve", "m:a..b"), ("'a..b'",)),
    (("resolve", "m@v1:prod"), ("not both",)),
    (("version", "show", "m@"), ("must not be empty",)),
    (("log", "../m"), ("'..'",)),
    (("model", "list", "--namespace", "../x"), ("'..'",)),
    (("meta", "set", "m@..", "k", "1"), ("'..'",)),
    # unknown things
    (("model", "show", "nope"), ("default/nope", "does not exist")),
    (("model", "show", "ai/vision/nope"), ("ai/vision/nope",)),
    (("version", "show", "m@v9"), ("m@v9", "does not exist")),
    (("version", "show", "nope@v1"), ("default/nope", "does not exist")),
    (("version", "create", "nope", "v1"), ("default/nope", "does not exist")),
    (("resolve", "m:nope"), ("m:nope", "not assigned")),
    (("resolve", "nope:prod"), ("default/nope",)),
    (("tag", "m@v9", "staging"), ("m@v9",)),
    (("tag", "m:nope", "staging"), ("m:nope",)),
    (("untag", "m", "nope"), ("m:nope",)),
    (("untag", "nope", "prod"), ("default/nope",)),
    (("meta", "set", "m@v9", "k", "1"), ("m@v9",)),
    (("meta", "set", "m:nope", "k", "1"), ("m:nope",)),
    (("meta", "unset", "m@v1", "nokey"), ("'nokey'",)),
    (("version", "list", "nope"), ("default/nope",)),
    (("version", "archive", "m@v9"), ("m@v9",)),
    (("version", "delete", "m@v9"), ("m@v9",)),
    # duplicates and conflicts
    (("model", "create", "m"), ("default/m", "already exists")),
    (("model", "create", "default/m"), ("default/m", "already exists")),
    (("version", "create", "m", "v1"), ("default/m@v1", "already exists")),
    (("version", "create", "m", "v3", "--tag", "prod"), ("default/m:prod", "already points to v1")),
    (("version", "delete", "m@v1"), ("prod", "--force")),
    # malformed values
    (("meta", "set", "m@v1", "k", "{bad"), ("'{bad'", "not JSON")),
    (("meta", "set", "m@v1", "k", "coco-2017"), ("'coco-2017'", "not JSON")),
    (("meta", "set", "m@v1", "k", "NaN"), ("JSON",)),
    (("meta", "set", "m@v1", "", "1"), ("metadata key",)),
    (("version", "create", "m", "v3", "--framework", "caffe9"), ("'caffe9'", "pytorch")),
    (("version", "create", "m", "v3", "--meta", "novalue"), ("'novalue'", "KEY=VALUE")),
    (("model", "create", "n", "--meta", "=1"), ("'=1'",)),
    # `resolve m` (a bare model) is a usage error, exit 2: tests/releases/test_releases_resolver.py
]


@pytest.mark.parametrize(
    ("argv", "needles"), BAD_COMMANDS, ids=[" ".join(a) for a, _ in BAD_COMMANDS]
)
def test_bad_input_is_one_clear_error_and_changes_nothing(
    populated: Path, run: Run, argv: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    before = repo_state(populated)
    assert_error(run("--repo", populated, *argv), *needles)
    assert repo_state(populated) == before


def test_a_directory_that_is_no_registry_is_a_clear_error(tmp_path: Path, run: Run) -> None:
    assert_error(run("--repo", tmp_path, "model", "list"), str(tmp_path), "modelbox init")
    assert_error(run("model", "list"), "no modelbox registry")


def test_a_git_repository_that_is_no_registry_is_a_clear_error(tmp_path: Path, run: Run) -> None:
    git_out(tmp_path, "init", "-q")
    assert_error(run("model", "list"), "no modelbox registry")


def corrupt(root: Path, path: str, content: str) -> None:
    """Commit a hand-edited file with plain git."""
    (root / path).write_text(content)
    git_out(root, "commit", "-q", "-am", f"hand edit {path}")


@pytest.mark.parametrize(
    "argv",
    [("model", "show", "m"), ("version", "create", "m", "v3"), ("meta", "set", "m", "k", "1"),
     ("model", "list"), ("version", "list", "m")],
)
def test_a_malformed_model_manifest_is_named_in_the_error(
    populated: Path, run: Run, argv: tuple[str, ...]
) -> None:
    corrupt(populated, "models/default/m/_model.json", '{"kind": "model", oops\n')
    before = repo_state(populated)
    assert_error(run("--repo", populated, *argv), "models/default/m/_model.json", "not valid JSON")
    assert repo_state(populated) == before


def test_a_manifest_breaking_its_schema_is_named_with_the_field(populated: Path, run: Run) -> None:
    corrupt(populated, "models/default/m/_versions/v1/_version.json",
            '{"kind": "version", "model": "default/m", "version": "v1", "framework": 7}\n')
    before = repo_state(populated)
    result = run("--repo", populated, "version", "show", "m@v1")
    assert_error(result, "models/default/m/_versions/v1/_version.json")
    assert repo_state(populated) == before
    assert run("--repo", populated, "check").code == 1


def test_a_malformed_tag_map_is_named_in_the_error(populated: Path, run: Run) -> None:
    corrupt(populated, "models/default/m/_tags.json", '{"kind": "tags", "tags": {"prod": 1}}\n')
    before = repo_state(populated)
    for argv in (("resolve", "m:prod"), ("tag", "m@v2", "staging"), ("untag", "m", "prod")):
        assert_error(run("--repo", populated, *argv), "models/default/m/_tags.json", "tags.prod")
    assert repo_state(populated) == before


def test_malformed_registry_settings_are_named_in_the_error(populated: Path, run: Run) -> None:
    corrupt(populated, ".modelbox/registry.json", "[1, 2\n")
    assert_error(run("--repo", populated, "model", "list"), ".modelbox/registry.json")


def test_a_registry_of_an_unknown_format_is_refused(populated: Path, run: Run) -> None:
    corrupt(populated, ".modelbox/registry.json", '{"kind": "registry", "format": 2}\n')
    assert_error(run("--repo", populated, "model", "list"), "format 2", "upgrade modelbox")


USAGE_ERRORS = [
    ("model", "create"),
    ("version", "create"),  # `version create m` names it vN (seed 004), no usage error
    ("tag", "m@v1"),
    ("model", "create", "x", "--bogus"),
    ("frobnicate",),
    ("model", "frobnicate"),
    ("log", "-n", "0"),
    ("log", "-n", "many"),
]


@pytest.mark.parametrize("argv", USAGE_ERRORS, ids=[" ".join(a) for a in USAGE_ERRORS])
def test_usage_errors_exit_2_and_change_nothing(
    populated: Path, run: Run, argv: tuple[str, ...]
) -> None:
    before = repo_state(populated)
    result = run("--repo", populated, *argv)
    assert result.code == 2, result
    assert "Traceback" not in result.err
    assert "Error" in result.err or "Usage" in result.err
    assert repo_state(populated) == before

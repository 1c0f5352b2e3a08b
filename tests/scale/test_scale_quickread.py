"""Issue 15: ``modelbox resolve`` reads the branch through ``git cat-file`` without opening
the registry (``modelbox/opening.py``, ``modelbox/refs/catfile.py``), and answers exactly
as the registry does.

Every reference form is answered both ways and compared. The reader answers only the
plain case: each test of an unusual or hostile repository (a replaced object, a symbolic
or escaping ref, a linked worktree, no git, a missing object) checks that the quick reader
refuses it (``NotPlainError``) and that the command still gives the registry's answer; each
would fail if the quick reader read on.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import Git, Run
from hostile import modelbox

from modelbox import resolver
from modelbox.errors import ModelboxError
from modelbox.names import parse_reference
from modelbox.opening import read_branch
from modelbox.refs.catfile import NotPlainError
from modelbox.refs.listing import listed_snapshot
from modelbox.registry import Registry

REFS = [
    "m:prod", "m@v1", "m:latest", "m@v2", "c:ship", "c:v1", "c@v0", "c:latest",
    "e:latest", "e@ck1", "nope:prod", "m:nope", "m@nope", "m:v1", "m@prod", "m", "e:x",
    "c:v9",
]
TAGS = "models/default/m/_tags.json"


def _ok(run: Run, *argv: str | Path) -> None:
    result = run(*argv)
    assert result.code == 0, (argv, result.err)


@pytest.fixture
def reg(tmp_path: Path, run: Run) -> Path:
    """A model with two versions (tags prod and stage), a collection, an experiment."""
    root = tmp_path / "registry"
    _ok(run, "init", root)
    for argv in [
        ("model", "create", "m"),
        ("version", "create", "m", "v1", "--tag", "prod"),
        ("version", "create", "m", "v2", "--tag", "stage"),
        ("collection", "create", "c"),
        ("link", "m@v1", "c", "--tag", "ship"),
        ("link", "m@v2", "c"),
        ("experiment", "create", "e"),
        ("checkpoint", "create", "e", "ck1"),
    ]:
        _ok(run, "--repo", root, *argv)
    return root


def answer(read: object) -> object:
    """What a resolve returned, or the error it raised (kind and line)."""
    try:
        return read() if callable(read) else read
    except ModelboxError as exc:
        return (type(exc).__name__, str(exc))


def quick(path: Path, ref: str) -> object:
    """The quick reader's answer (NotPlainError propagates: the test says which it wants)."""
    parsed = parse_reference(ref)
    return answer(lambda: read_branch(
        path, lambda files: resolver.resolve(files, parsed, version_needed=True)))


def full(path: Path, ref: str) -> object:
    def read() -> object:
        registry = Registry.open(path)
        try:
            return resolver.resolve(registry.snapshot(), parse_reference(ref),
                                    version_needed=True)
        finally:
            registry.close()
    return answer(read)


def cli(path: Path, ref: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = modelbox("resolve", ref, cwd=path, env=env)
    return proc.code, proc.out, proc.err


def test_every_form_answers_as_the_registry(reg: Path) -> None:
    for ref in REFS:
        assert quick(reg, ref) == full(reg, ref), ref
    assert quick(reg, "m:prod") == resolver.Target(parse_reference("m").model, "v1",
                                                   tag="prod")


def test_packed_refs_and_a_subfolder_read_quickly(reg: Path, git: Git) -> None:
    git("pack-refs", "--all", cwd=reg)
    assert not (reg / ".git" / "refs" / "heads" / "main").exists()
    sub = reg / "models" / "default"
    for ref in ("m:prod", "c:v1", "m@nope"):
        assert quick(sub, ref) == full(sub, ref), ref


def test_a_registry_on_its_own_branch_is_read_through_the_registry(
        tmp_path: Path, run: Run, git: Git) -> None:
    code = tmp_path / "code"
    git("init", "-q", code)
    git("commit", "-q", "--allow-empty", "-m", "code", cwd=code)
    _ok(run, "init", code, "--branch", "registry")
    _ok(run, "--repo", code, "model", "create", "m")
    _ok(run, "--repo", code, "version", "create", "m", "v1", "--tag", "prod")
    with pytest.raises(NotPlainError):  # finding it lists every branch: dulwich does that
        quick(code, "m:prod")
    assert cli(code, "m:prod") == (0, "v1\n", "")


def test_replaced_objects_are_not_read(reg: Path, git: Git) -> None:
    # dulwich never reads refs/replace/; git does unless told not to. A replace ref (local,
    # or fetched by someone's refspec) must not make resolve answer another version.
    real = git("rev-parse", f"HEAD:{TAGS}", cwd=reg).strip()
    forged = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=reg, check=True, capture_output=True,
        input=b'{"kind": "tags", "tags": {"prod": "v2"}}\n').stdout.decode().strip()
    git("replace", real, forged, cwd=reg)
    assert git("cat-file", "-p", real, cwd=reg).count('"v2"') == 1  # git now sees v2
    assert quick(reg, "m:prod") == full(reg, "m:prod")
    assert cli(reg, "m:prod") == (0, "v1\n", "")
    # and `check`, which lists and reads the tree through git too
    registry = Registry.open(reg)
    try:
        head = registry.head()
        assert listed_snapshot(registry.repo, head).read(TAGS) == \
            registry.repo.snapshot(head).read(TAGS)
    finally:
        registry.close()


def test_a_ref_escaping_the_git_dir_is_not_followed(reg: Path, git: Git) -> None:
    # HEAD naming refs/heads/../../ORIG would be read from the work tree (a pulled file).
    head = git("rev-parse", "HEAD", cwd=reg).strip()
    (reg / "ORIG").write_text(head + "\n", encoding="ascii")
    (reg / ".git" / "HEAD").write_text("ref: refs/heads/../../ORIG\n", encoding="ascii")
    with pytest.raises(NotPlainError):
        quick(reg, "m:prod")


def test_a_bare_registry_is_not_mistaken_for_the_one_around_it(
        reg: Path, run: Run, git: Git) -> None:
    # A bare clone inside another registry's work tree: walking on past it (as a reader
    # that knew only .git folders would) reads the outer registry's answer.
    inner = reg / "inner.git"
    git("clone", "-q", "--bare", reg, inner)
    _ok(run, "--repo", reg, "tag", "m@v2", "prod")  # the outer registry moves on
    with pytest.raises(NotPlainError):
        quick(inner, "m:prod")
    assert full(inner, "m:prod") != full(reg, "m:prod")
    assert modelbox("--repo", inner, "resolve", "m:prod").out == "v1\n"


def test_a_symbolic_branch_is_read_through_the_registry(reg: Path, git: Git) -> None:
    git("branch", "other", cwd=reg)
    (reg / ".git" / "refs" / "heads" / "main").write_text("ref: refs/heads/other\n",
                                                          encoding="ascii")
    with pytest.raises(NotPlainError):
        quick(reg, "m:prod")
    assert cli(reg, "m:prod") == (0, "v1\n", "")


def test_a_linked_worktree_is_read_through_the_registry(reg: Path, git: Git,
                                                         tmp_path: Path) -> None:
    linked = tmp_path / "linked"
    git("worktree", "add", "-q", "--detach", linked, cwd=reg)
    with pytest.raises(NotPlainError):
        quick(linked, "m:prod")
    assert cli(linked, "m:prod") == (0, "v1\n", "")


def test_without_git_or_with_dulwich_chosen_the_registry_answers(
        reg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELBOX_GIT_TRANSPORT", "dulwich")
    with pytest.raises(NotPlainError):
        quick(reg, "m:prod")
    assert cli(reg, "m:prod") == (0, "v1\n", "")
    monkeypatch.delenv("MODELBOX_GIT_TRANSPORT")
    empty = tmp_path / "no-git"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(NotPlainError):
        quick(reg, "m:prod")
    assert cli(reg, "m:prod") == (0, "v1\n", "")


def test_a_partial_clone_is_read_through_the_registry(reg: Path, git: Git) -> None:
    # git would fetch a missing object from the promisor remote; dulwich reads what is here.
    git("config", "remote.origin.promisor", "true", cwd=reg)
    with pytest.raises(NotPlainError):
        quick(reg, "m:prod")


def test_a_git_dir_sharing_another_is_read_through_the_registry(reg: Path) -> None:
    # A commondir file points git (and dulwich) at another folder's refs and objects; the
    # quick reader would read this folder's own.
    (reg / ".git" / "commondir").write_text(".\n", encoding="ascii")
    with pytest.raises(NotPlainError):
        quick(reg, "m:prod")
    assert cli(reg, "m:prod") == (0, "v1\n", "")


@pytest.mark.parametrize("setting", [
    ("include.path", "extra.cfg"),  # an included file may hold what the reader refuses
    ("includeIf.gitdir:/.path", "extra.cfg"),
    ("extensions.objectFormat", "sha1"),  # sha256 would be read with 64-hex ids
])
def test_a_config_the_reader_does_not_follow_is_read_through_the_registry(
        reg: Path, git: Git, setting: tuple[str, str]) -> None:
    (reg / ".git" / "extra.cfg").write_text("[user]\n\tname = someone\n", encoding="utf-8")
    if setting[0].startswith("extensions."):
        git("config", "core.repositoryformatversion", "1", cwd=reg)
    git("config", *setting, cwd=reg)
    with pytest.raises(NotPlainError):
        quick(reg, "m:prod")
    assert cli(reg, "m:prod") == (0, "v1\n", "")


def test_a_packed_refs_file_that_is_not_plain_is_read_through_the_registry(
        reg: Path, git: Git) -> None:
    # A tag named with a character outside the plain set (git allows it): the whole file
    # goes to dulwich's strict reader, as every other command reads it.
    head = git("rev-parse", "HEAD", cwd=reg).strip()
    git("tag", "caf\u00e9", head, cwd=reg)
    git("pack-refs", "--all", cwd=reg)
    assert not (reg / ".git" / "refs" / "heads" / "main").exists()
    with pytest.raises(NotPlainError):
        quick(reg, "m:prod")
    assert cli(reg, "m:prod") == (0, "v1\n", "")


def test_a_missing_object_is_named_by_the_registry(reg: Path, git: Git) -> None:
    sha = git("rev-parse", f"HEAD:{TAGS}", cwd=reg).strip()
    loose = reg / ".git" / "objects" / sha[:2] / sha[2:]
    assert loose.exists()
    loose.chmod(0o644)
    loose.unlink()
    with pytest.raises(NotPlainError):
        quick(reg, "m:prod")
    code, out, err = cli(reg, "m:prod")
    assert (code, out) == (1, "") and err.startswith("modelbox: error: ")
    assert sha in err and "git fsck" in err and len(err.splitlines()) == 1


def test_the_git_child_is_gone_after_a_read(reg: Path) -> None:
    assert quick(reg, "m:prod") == full(reg, "m:prod")
    assert _cat_file_children() == set()


def _cat_file_children() -> set[int]:
    """This process's children running ``git cat-file`` (the quick reader's git)."""
    me = os.getpid()
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me and b"cat-file" in argv:
                found.add(int(entry.name))
    return found

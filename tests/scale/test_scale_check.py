"""The check engine at scale stays a check: remembered verdicts never hide a problem.

``modelbox check`` remembers the documents it found clean in ``.git/modelbox/check-verdicts``
(by path, blob id, level and engine; :mod:`modelbox.verdicts`) and reads the registry's tree
in bulk through ``git`` (:mod:`modelbox.refs.listing`). Each test here fills the verdicts
with a clean run first, then brings a problem in the way a user or a broken file could — a
new commit, a blob moved elsewhere, a hand-edited or foreign verdict file, a ``--schema``
run — and asserts that the problem is still found.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modelbox.validate import validate_worktree
from modelbox.verdicts import FILE, Verdicts, engine, engine_of

if TYPE_CHECKING:
    from conftest import Git, Run

MODEL = "team/m"
FOLDER = f"models/{MODEL}"
V2 = f"{FOLDER}/_versions/v2/_version.json"
TAGS = f"{FOLDER}/_tags.json"
PACKAGE = Path(__file__).resolve().parents[2] / "modelbox"


@pytest.fixture
def reg(tmp_path: Path, run: Run) -> Path:
    """A registry made with modelbox: one model, three versions, v1 tagged ``staging``,
    checked once (so its verdicts are remembered)."""
    path = tmp_path / "reg"
    for argv in (("init", path), ("--repo", path, "model", "create", MODEL),
                 *(("--repo", path, "version", "create", MODEL, v) for v in ("v1", "v2", "v3")),
                 ("--repo", path, "tag", f"{MODEL}@v1", "staging")):
        assert run(*argv).code == 0, argv
    assert _check(run, path) == []
    assert V2 in _verdict_paths(path)
    return path


def _check(run: Run, path: Path, *args: str) -> list[str]:
    """The problems ``modelbox check`` reports (exit 1 when there are any but warnings)."""
    result = run("--repo", path, "check", "--json", *args)
    found = json.loads(result.out)
    assert result.code == (1 if any(not p["warning"] for p in found) else 0), result
    return [f"{'warning: ' * p['warning']}{p['path']}: {p['message']}" for p in found]


def _move_by_hand(git: Git, run: Run, path: Path, version: str) -> None:
    """Move the tag ``staging`` with a plain git commit (then sync the refs)."""
    _edit(path, TAGS, tags={"staging": version})
    _commit(git, path, f"staging -> {version}")
    assert run("--repo", path, "refs", "sync").code == 0


def _verdict_paths(path: Path) -> set[str]:
    lines = (path / ".git" / "modelbox" / FILE).read_text().splitlines()[1:-1]
    return {line.split(" ", 2)[2] for line in lines}


def _commit(git: Git, path: Path, message: str = "by hand") -> None:
    git("add", "-A", cwd=path)
    git("commit", "-qm", message, cwd=path)


def _edit(path: Path, name: str, **fields: object) -> None:
    file = path / name
    document = json.loads(file.read_text())
    document.update(fields)
    file.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def _break_v2(git: Git, path: Path) -> None:
    """Commit a version manifest the schema and the pydantic model refuse."""
    _edit(path, V2, framework="caffe")
    _commit(git, path)


def test_a_new_commit_breaking_a_remembered_document_is_found(reg: Path, run: Run,
                                                               git: Git) -> None:
    _break_v2(git, reg)
    problems = _check(run, reg)
    assert any(p.startswith(f"{V2}: framework: ") for p in problems), problems
    assert _check(run, reg, "--schema") == problems  # and again: a broken one is not kept


def test_a_remembered_document_moved_to_another_place_is_judged_there(reg: Path, run: Run,
                                                                      git: Git) -> None:
    # v2's bytes (clean where they were) copied over v3's manifest: same blob, new path.
    shutil.copyfile(reg / V2, reg / FOLDER / "_versions" / "v3" / "_version.json")
    _commit(git, reg)
    problems = _check(run, reg)
    assert any("names team/m@v2 but sits at team/m@v3" in p for p in problems), problems


def test_rules_between_files_are_checked_when_every_document_is_remembered(
    reg: Path, run: Run, git: Git
) -> None:
    # The tag map's blob is unchanged (its verdict is remembered); the version it names goes.
    git("rm", "-rq", f"{FOLDER}/_versions/v1", cwd=reg)
    _commit(git, reg)
    problems = _check(run, reg)
    assert any(p.startswith(f"{TAGS}: tags.staging: points to v1, which does not exist")
               for p in problems), problems


def test_a_hand_edited_verdict_file_is_not_trusted(reg: Path, run: Run, git: Git) -> None:
    _break_v2(git, reg)
    broken = _check(run, reg)
    # Claim the broken blob clean, as a hand edit (or a torn write) would, and check again.
    file = reg / ".git" / "modelbox" / FILE
    blob = git("rev-parse", f"HEAD:{V2}", cwd=reg).strip()
    lines = file.read_text().splitlines()
    file.write_text("\n".join([*lines[:-1], f"s {blob} {V2}", lines[-1]]) + "\n")
    assert _check(run, reg) == broken
    # The file was written anew, whole and trusted again: the broken blob is not in it.
    assert f"s {blob} {V2}" not in file.read_text()
    assert _check(run, reg) == broken


@pytest.mark.parametrize("damage", [b"", b"garbage\n", b"modelbox-check-verdicts 1\n"])
def test_a_damaged_verdict_file_is_judged_afresh_and_rebuilt(reg: Path, run: Run,
                                                            damage: bytes) -> None:
    file = reg / ".git" / "modelbox" / FILE
    file.write_bytes(damage)
    assert _check(run, reg) == []
    assert V2 in _verdict_paths(reg)


def test_verdicts_of_another_engine_are_not_trusted(reg: Path, run: Run, git: Git) -> None:
    _break_v2(git, reg)
    broken = _check(run, reg)
    blob = git("rev-parse", f"HEAD:{V2}", cwd=reg).strip()
    # An older engine (other rules) found these bytes clean, and wrote so in good order.
    older = Verdicts(reg / ".git", engine_id="0" * 64)
    older.add(V2, blob, schema=True)
    older.save()
    assert _check(run, reg) == broken


def test_a_change_to_the_engine_code_is_another_engine(tmp_path: Path) -> None:
    copy = tmp_path / "modelbox"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert engine_of(copy) == engine()
    with (copy / "check.py").open("a") as f:
        f.write("\n# a new rule\n")
    assert engine_of(copy) != engine()
    (copy / "check.py").write_bytes((PACKAGE / "check.py").read_bytes())
    (copy / "schemas" / "version.schema.json").write_text("{}")
    assert engine_of(copy) != engine()


def test_a_schema_run_does_not_trust_a_verdict_of_the_pydantic_model_alone(
    reg: Path, run: Run, git: Git
) -> None:
    _break_v2(git, reg)
    broken = _check(run, reg, "--schema")
    blob = git("rev-parse", f"HEAD:{V2}", cwd=reg).strip()
    weak = Verdicts(reg / ".git")  # this engine, a verdict of the model alone ('p')
    weak.add(V2, blob, schema=False)
    weak.save()
    assert _check(run, reg, "--schema") == broken


def test_the_bulk_listing_finds_what_the_plain_reading_finds(
    reg: Path, run: Run, git: Git, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tree read by one git ls-tree / cat-file gives the same problems, in the same
    order, as dulwich reading it object by object."""
    stray = reg / FOLDER / "_versions" / "v2" / "notes.txt"
    stray.write_text("a raw file")
    (reg / FOLDER / "_versions" / "v9" / "_artifacts").mkdir(parents=True)
    (reg / FOLDER / "_versions" / "v9" / "_artifacts" / "w.json").write_text("{}")
    (reg / "models" / "team" / "orphan" / "_versions" / "v1").mkdir(parents=True)
    _edit(reg, f"{FOLDER}/_versions/v3/_version.json", version="v4")
    (reg / "models" / "team" / "orphan" / "_versions" / "v1" / "_version.json").write_text(
        (reg / V2).read_text())
    _commit(git, reg)
    listed = _check(run, reg)
    assert len(listed) >= 5, listed
    monkeypatch.setenv("MODELBOX_GIT_TRANSPORT", "dulwich")
    (reg / ".git" / "modelbox" / FILE).unlink()
    assert _check(run, reg) == listed


def test_check_since_finds_a_problem_a_remembered_whole_check_did_not_have(
    reg: Path, run: Run, git: Git
) -> None:
    base = git("rev-parse", "HEAD", cwd=reg).strip()
    _break_v2(git, reg)
    problems = _check(run, reg, "--since", base)
    assert any(p.startswith(f"{V2}: framework: ") for p in problems), problems


def test_the_validate_hook_over_many_files_never_trusts_a_stale_verdict(
    tmp_path: Path, run: Run, git: Git
) -> None:
    """`pre-commit run --all-files` (past 200 documents the hook remembers verdicts)."""
    path = tmp_path / "reg"
    assert run("init", path).code == 0
    assert run("--repo", path, "model", "create", MODEL).code == 0
    assert run("--repo", path, "version", "create", MODEL, "v0").code == 0
    template = json.loads((reg_v0 := path / FOLDER / "_versions" / "v0" / "_version.json")
                          .read_text())
    for i in range(1, 221):
        folder = reg_v0.parent.parent / f"v{i}"
        folder.mkdir()
        (folder / "_version.json").write_text(
            json.dumps({**template, "version": f"v{i}"}, indent=2, sort_keys=True) + "\n")
    _commit(git, path)
    files = [str(p) for p in sorted((path / "models").rglob("*.json"))]
    assert validate_worktree(path, files) == []
    assert V2 in _verdict_paths(path)
    _edit(path, V2, framework="caffe")
    git("add", V2, cwd=path)  # staged, as under pre-commit
    problems = [str(p) for p in validate_worktree(path, files)]
    assert any(p.startswith(f"{V2}: framework: ") for p in problems), problems


def test_a_tag_moved_by_hand_after_a_remembered_walk_is_warned(reg: Path, run: Run,
                                                               git: Git) -> None:
    _move_by_hand(git, run, reg, "v2")
    warnings = _check(run, reg)
    assert [w for w in warnings if "tags.staging: v1 -> v2 changed outside modelbox" in w]
    _move_by_hand(git, run, reg, "v3")  # a descendant of the remembered head
    warnings = _check(run, reg)
    assert [w for w in warnings if "v1 -> v2 changed outside" in w], warnings
    assert [w for w in warnings if "v2 -> v3 changed outside" in w], warnings
    assert _check(run, reg) == warnings  # the same head: the same warnings


def test_a_branch_reset_to_another_history_is_walked_whole(reg: Path, run: Run,
                                                           git: Git) -> None:
    base = git("rev-parse", "HEAD", cwd=reg).strip()
    _move_by_hand(git, run, reg, "v2")
    assert [w for w in _check(run, reg) if "v1 -> v2 changed outside" in w]
    git("reset", "-q", "--hard", base, cwd=reg)
    _move_by_hand(git, run, reg, "v3")
    warnings = _check(run, reg)
    assert [w for w in warnings if "v1 -> v3 changed outside" in w], warnings
    assert not [w for w in warnings if "v1 -> v2" in w], warnings  # not in this history


def test_a_hand_edited_walk_memo_is_not_trusted(reg: Path, run: Run, git: Git) -> None:
    _move_by_hand(git, run, reg, "v2")
    warnings = _check(run, reg)
    memo = reg / ".git" / "modelbox" / "check-outside.json"
    stored = json.loads(memo.read_text())
    stored["payload"]["warnings"] = []  # the digest left as it was
    memo.write_text(json.dumps(stored))
    assert _check(run, reg) == warnings

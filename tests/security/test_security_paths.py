"""Hostile trees and listings: nothing pulled from a remote or read from a store is ever
written outside its folder, or into a ``.git`` folder.

Each attack is a commit built with the real git CLI (``git mktree``, ``git hash-object``,
``git commit-tree``, ``git update-ref``) in the shared bare remote that a clone pulls from,
or a folder listing placed in the store; each must end in one error line, exit 1, with the
clone, HOME and the folder around them unchanged (a refused clone leaves no folder).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import Run
from hostile import assert_refused, fingerprint, modelbox


def git_out(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True,
                          check=False)
    assert proc.returncode == 0, (args, proc.stderr)
    return proc.stdout.decode().strip()


@pytest.fixture(params=["git", "dulwich"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MODELBOX_GIT_TRANSPORT", str(request.param))
    return str(request.param)


@pytest.fixture
def remote(tmp_path: Path, run: Run) -> Path:
    """A bare remote holding a registry with one model and version."""
    reg, bare = tmp_path / "origin-work", tmp_path / "remote.git"
    git_out(tmp_path, "init", "--quiet", "--bare", str(bare))
    for argv in (("init", reg), ("--repo", reg, "model", "create", "team/m"),
                 ("--repo", reg, "version", "create", "team/m", "v1", "--tag", "prod")):
        assert run(*argv).code == 0
    git_out(reg, "remote", "add", "origin", str(bare))
    assert run("--repo", reg, "push").code == 0, "push"
    return bare


# -- building hostile commits in the remote ---------------------------------------------
Entry = tuple[str, str, str, str]  # mode, type, sha, name


def blob(bare: Path, data: bytes) -> str:
    return git_out(bare, "hash-object", "-w", "--stdin", stdin=data)


def tree(bare: Path, entries: list[Entry]) -> str:
    text = "".join(f"{mode} {kind} {sha}\t{name}\n" for mode, kind, sha, name in entries)
    return git_out(bare, "mktree", stdin=text.encode())


def raw_tree(bare: Path, entries: list[tuple[str, str, str]]) -> str:
    """A tree object written byte by byte (``git mktree`` refuses a name holding '/')."""
    data = b"".join(f"{mode} {name}".encode("utf-8", "surrogateescape") + b"\0"
                    + bytes.fromhex(sha) for mode, sha, name in sorted(entries, key=lambda e: e[2]))
    return git_out(bare, "hash-object", "-w", "--literally", "-t", "tree", "--stdin",
                   stdin=data)


def head_entries(bare: Path, commit: str = "main") -> list[Entry]:
    out = git_out(bare, "ls-tree", commit)
    return [(meta.split()[0], meta.split()[1], meta.split()[2], name)
            for meta, _, name in (line.partition("\t") for line in out.splitlines())]


def commit(bare: Path, top: str, parent: str, message: str = "evil") -> str:
    return git_out(bare, "commit-tree", top, "-p", parent, "-m", message)


def move_main(bare: Path, sha: str) -> None:
    git_out(bare, "update-ref", "refs/heads/main", sha)


def escape_tree(bare: Path) -> str:
    """``{pwned: blob, config: a core.fsmonitor command}``: what a `..` or `.git` entry
    would carry out of the clone."""
    payload = blob(bare, b"[core]\n\tfsmonitor = touch /tmp/modelbox-pwned\n")
    return tree(bare, [("100644", "blob", blob(bare, b"pwned\n"), "pwned"),
                       ("100644", "blob", payload, "config")])


def add_top_entry(bare: Path, name: str, mode: str = "040000", sha: str | None = None,
                  kind: str = "tree") -> str:
    """A commit on main whose top tree gains one entry ``name`` (default: a folder)."""
    entries = [*head_entries(bare), (mode, kind, sha or escape_tree(bare), name)]
    return commit(bare, tree(bare, entries), git_out(bare, "rev-parse", "main"))


HOSTILE_NAMES = {
    "dotdot": "..",
    "dotgit": ".git",
    "dotgit-upper": ".GIT",
    "ntfs-trailing-space": ".git ",
    "ntfs-trailing-dots": ".git..",
    "ntfs-stream": ".git::$INDEX_ALLOCATION",
    "ntfs-short-name": "git~1",
    "hfs-zero-width": ".g\u200cit",
    "hfs-bom": "\ufeff.gIt",
    "backslash": "..\\x",
}


def hostile_head(bare: Path, case: str) -> str:
    """Make main of ``bare`` a commit holding the attack ``case``; return its sha."""
    main = git_out(bare, "rev-parse", "main")
    if case in HOSTILE_NAMES:
        sha = add_top_entry(bare, HOSTILE_NAMES[case])
    elif case == "nested-dotgit":  # models/.git/config: .git at any depth
        inner = tree(bare, [("040000", "tree", escape_tree(bare), ".git")])
        sha = add_top_entry(bare, "extra", sha=inner)
    elif case == "absolute":  # an entry named "/tmp/..." (mktree refuses it; raw bytes)
        top = raw_tree(bare, [(m, s, n) for m, _, s, n in head_entries(bare)]
                       + [("100644", blob(bare, b"pwned\n"), str(bare.parent / "abs-pwned"))])
        sha = commit(bare, top, main)
    elif case == "slash-in-name":  # one entry "../pwned": both components in one name
        top = raw_tree(bare, [(m, s, n) for m, _, s, n in head_entries(bare)]
                       + [("100644", blob(bare, b"pwned\n"), "../pwned")])
        sha = commit(bare, top, main)
    elif case == "not-utf8":  # bytes no file name modelbox writes can hold
        top = raw_tree(bare, [(m, s, n) for m, _, s, n in head_entries(bare)]
                       + [("100644", blob(bare, b"x\n"), "bad\udcff\udcfename")])
        sha = commit(bare, top, main)
    elif case == "too-deep":  # a path longer than PATH_MAX, 2,100 folders deep
        script = (f"commit refs/heads/main\ncommitter E <e@x> 0 +0000\ndata 4\ndeep\n"
                  f"from {main}\nM 100644 inline {'a/' * 2100}f\ndata 2\nx\n\n")
        git_out(bare, "fast-import", "--quiet", stdin=script.encode())
        sha = git_out(bare, "rev-parse", "main")
    elif case == "symlink":
        sha = add_top_entry(bare, "link", "120000", blob(bare, b"../.."), "blob")
    elif case == "gitlink":
        sha = add_top_entry(bare, "sub", "160000", main, "commit")
    elif case == "intermediate":  # `..` in one commit, gone again in the next
        evil = add_top_entry(bare, "..")
        sha = commit(bare, git_out(bare, "rev-parse", "main^{tree}"), evil, "undo")
    else:
        raise AssertionError(case)
    move_main(bare, sha)
    return sha


PULL_CASES = [*HOSTILE_NAMES, "nested-dotgit", "absolute", "slash-in-name", "not-utf8",
              "too-deep", "symlink", "gitlink", "intermediate"]


@pytest.mark.parametrize("case", PULL_CASES)
def test_a_pull_of_a_hostile_tree_is_refused_and_writes_nothing(
    tmp_path: Path, run: Run, transport: str, remote: Path, case: str,
) -> None:
    victim = tmp_path / "victim"
    assert run("clone", remote, victim).code == 0
    hostile_head(remote, case)
    home = tmp_path / "home"
    before = fingerprint(victim, home, tmp_path, ignore=("remote.git",))

    code, _, err = modelbox("--repo", victim, "pull")

    assert_refused(code, err, "refusing commit", "may not be written", "nothing was changed")
    assert fingerprint(victim, home, tmp_path, ignore=("remote.git",)) == before
    assert not (tmp_path / "abs-pwned").exists()
    if case == "dotgit":  # still a working clone: once the commit is gone, pulls work
        move_main(remote, git_out(victim, "rev-parse", "main"))
        assert run("--repo", victim, "pull").code == 0


@pytest.mark.parametrize("case", ["dotdot", "dotgit", "absolute", "not-utf8", "symlink",
                                  "intermediate"])
def test_a_clone_of_a_hostile_remote_is_refused_and_leaves_no_folder(
    tmp_path: Path, transport: str, remote: Path, case: str,
) -> None:
    hostile_head(remote, case)
    home = tmp_path / "home"
    before = fingerprint(home, tmp_path, ignore=("remote.git",))

    code, _, err = modelbox("clone", remote, tmp_path / "victim")

    assert_refused(code, err, "refusing commit", "may not be written")
    assert fingerprint(home, tmp_path, ignore=("remote.git",)) == before
    assert not (tmp_path / "victim").exists()


def malformed_head(bare: Path) -> None:
    """Make main of ``bare`` a commit whose tree's last entry has a truncated object id."""
    data = b"".join(f"{m} {n}".encode() + b"\0" + bytes.fromhex(s)
                    for m, _, s, n in head_entries(bare))
    data += b"100644 zzz\0" + bytes.fromhex(blob(bare, b"x\n"))[:10]
    top = git_out(bare, "hash-object", "-w", "--literally", "-t", "tree", "--stdin",
                  stdin=data)
    move_main(bare, commit(bare, top, git_out(bare, "rev-parse", "main")))


@pytest.mark.parametrize("command", ["pull", "clone"])
def test_a_malformed_tree_from_a_remote_is_one_error_line(
    tmp_path: Path, run: Run, transport: str, remote: Path, command: str,
) -> None:
    victim = tmp_path / "victim"
    if command == "pull":
        assert run("clone", remote, victim).code == 0
    malformed_head(remote)
    before = fingerprint(tmp_path / "home", tmp_path, ignore=("remote.git",))

    code, _, err = (modelbox("--repo", victim, "pull") if command == "pull"
                    else modelbox("clone", remote, victim))

    # git's upload-pack cannot pack the object: its own one line; otherwise dulwich's words.
    assert_refused(code, err, *([] if (transport, command) == ("git", "pull")
                                else ["malformed", "SHA truncated"]))
    assert fingerprint(tmp_path / "home", tmp_path, ignore=("remote.git",)) == before


def test_a_merge_with_a_hostile_branch_is_refused_before_anything_moves(
    tmp_path: Path, run: Run, remote: Path,
) -> None:
    """The diverged case: a local commit, then the remote's hostile one; no merge commit."""
    victim = tmp_path / "victim"
    assert run("clone", remote, victim).code == 0
    assert run("--repo", victim, "version", "create", "team/m", "v2").code == 0
    hostile_head(remote, "dotgit")
    before = fingerprint(victim, tmp_path / "home")

    code, _, err = modelbox("--repo", victim, "pull")

    assert_refused(code, err, ".git")
    assert fingerprint(victim, tmp_path / "home") == before


def test_a_push_that_must_pull_a_hostile_commit_first_is_refused(
    tmp_path: Path, run: Run, transport: str, remote: Path,
) -> None:
    """push retries through pull when the remote moved: the same check, nothing sent."""
    victim = tmp_path / "victim"
    assert run("clone", remote, victim).code == 0
    assert run("--repo", victim, "version", "create", "team/m", "v2").code == 0
    hostile = hostile_head(remote, "dotdot")
    # Caches of push's own refs sync of the local branch: may be refreshed (for that
    # branch's head, never for the remote's commit).
    marker = (".git/modelbox/tag-refs-synced", ".git/modelbox/tag-history.json")
    before = fingerprint(victim, tmp_path / "home", ignore=marker)
    mine = git_out(victim, "rev-parse", "main").strip()

    code, _, err = modelbox("--repo", victim, "push")

    assert_refused(code, err, "'..'")
    assert fingerprint(victim, tmp_path / "home", ignore=marker) == before
    kept = victim / ".git/modelbox/tag-history.json"
    assert not kept.exists() or json.loads(kept.read_text())["commit"] == mine
    assert git_out(remote, "rev-parse", "main") == hostile


# -- folder listings for `get` -----------------------------------------------------------
def _store_object(store: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    path = store / "sha256" / digest[:2] / digest[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return digest


LISTINGS: dict[str, list[tuple[str, bytes]]] = {
    "dotdot-member": [("../x", b"pwned\n")],
    "dotgit-member": [(".git/config", b"[core]\n\tfsmonitor = touch /tmp/pwned\n"),
                      (".git/HEAD", b"ref: refs/heads/main\n")],
    "nested-dotgit-member": [("a/.GIT/config", b"[core]\n")],
    "duplicate-path": [("weights.bin", b"good\n"), ("weights.bin", b"evil\n")],
    "file-and-folder": [("a", b"file\n"), ("a/b", b"below a file\n")],
}


@pytest.mark.parametrize("case", list(LISTINGS))
def test_get_refuses_a_hostile_folder_listing_and_places_nothing(
    tmp_path: Path, run: Run, case: str,
) -> None:
    reg = tmp_path / "reg"
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "ok.txt").write_text("ok\n")
    for argv in (("init", reg), ("--repo", reg, "model", "create", "m"),
                 ("--repo", reg, "version", "create", "m", "v1"),
                 ("--repo", reg, "artifact", "add", "m@v1", folder)):
        assert run(*argv).code == 0, argv
    # A co-user of the store writes a listing of their own, and a commit naming it.
    store = reg / ".git" / "modelbox" / "store"
    files = [{"path": path, "sha256": _store_object(store, data), "size": len(data)}
             for path, data in LISTINGS[case]]
    listing = json.dumps({"files": files, "kind": "directory"}, indent=2).encode()
    pointer = reg / "models/default/m/_versions/v1/_artifacts/folder.json"
    doc = json.loads(pointer.read_text())
    doc.update(sha256=_store_object(store, listing), files=len(files),
               size=sum(f["size"] for f in files))  # type: ignore[misc]  # int values
    pointer.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    git_out(reg, "commit", "--quiet", "-am", "a hostile listing")
    out = tmp_path / "out"
    out.mkdir()
    before = fingerprint(reg, out, tmp_path / "home", tmp_path / "cache")

    code, _, err = modelbox("--repo", reg, "get", "m@v1", "-o", out)

    assert_refused(code, err)
    assert fingerprint(reg, out, tmp_path / "home", tmp_path / "cache") == before
    assert not (tmp_path / "x").exists()


# -- tag refs from folder names -----------------------------------------------------------
@pytest.mark.parametrize("folder", ["x.lock", "a..b", "x@{1}", "a b"])
def test_a_pulled_model_folder_no_ref_can_name_makes_no_ref_and_blocks_no_other(
    tmp_path: Path, run: Run, remote: Path, folder: str,
) -> None:
    """refs are built from folder paths: a folder that is not a model name gets no ref
    (git would refuse it, or read it as a revision expression), and the others still sync."""
    victim = tmp_path / "victim"
    assert run("clone", remote, victim).code == 0
    work = tmp_path / "origin-work"
    source = work / "models" / "team" / "m"
    target = work / "models" / "team" / folder
    for path in sorted(source.rglob("*.json")):
        (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        (target / path.relative_to(source)).write_bytes(path.read_bytes())
    git_out(work, "add", "-A")
    git_out(work, "commit", "--quiet", "-m", "a model folder by hand")
    assert run("--repo", work, "tag", "team/m@v1", "staging").code == 0  # a ref to make
    git_out(work, "push", "--quiet", "--no-verify", "origin", "main")

    pulled = modelbox("--repo", victim, "pull")
    synced = modelbox("--repo", victim, "refs", "sync")

    assert pulled.code == 0 and synced.code == 0, (pulled, synced)
    refs = git_out(victim, "for-each-ref", "--format=%(refname)", "refs/modelbox/tags")
    assert refs.splitlines() == ["refs/modelbox/tags/team/m/prod",
                                 "refs/modelbox/tags/team/m/staging"]
    checked = modelbox("--repo", victim, "check")
    assert checked.code == 1 and folder in checked.out + checked.err


# -- the rules themselves (git's verify_path, with its NTFS and HFS+ protections) -----------
REFUSED_PATHS = [
    "", "/etc/passwd", "C:/x", "c:x", "a//b", "a/", "./a", "a/./b", "..", "a/../../b",
    ".git", "a/.git/hooks/x", ".GIT/config", ".Git", ".git.", ".git ", ".git . .",
    ".git::$INDEX_ALLOCATION/x", ".git:stream", "git~1", "GIT~1/config", "a/git~1. ",
    ".g\u200cit", "\u200d.git", ".git\ufeff", ".G\u206ait", "a\\b", "..\\x", "a\0b",
    "bad\udcffname", "bad\ufffdname", "x" * 256, "a/" * 2100 + "b",
]
ALLOWED_PATHS = [
    "models/team/m/_model.json", ".modelbox/registry.json", ".gitmodules", ".gitignore",
    ".github/workflows/ci.yml", "...", "a..b", "git~2", "git~10", "gitx", ".gitx", "x.git",
    "sub/.git-credentials-backup", "caf\u00e9/\u00fcber.json", "x" * 255, "a b/c d",
]


@pytest.mark.parametrize("path", REFUSED_PATHS, ids=ascii)
def test_a_path_git_would_not_check_out_is_refused(path: str) -> None:
    from modelbox.errors import UnsafePathError
    from modelbox.pathcheck import check_path, unsafe_path

    assert unsafe_path(path) is not None
    with pytest.raises(UnsafePathError, match="may not be written"):
        check_path(path, "a test")


@pytest.mark.parametrize("path", ALLOWED_PATHS, ids=ascii)
def test_a_path_git_checks_out_is_allowed(path: str) -> None:
    from modelbox.pathcheck import unsafe_path

    assert unsafe_path(path) is None


@pytest.mark.parametrize("mode", [0o120000, 0o160000, 0o100600, 0o644])
def test_tree_entries_other_than_files_and_folders_are_refused(mode: int) -> None:
    from modelbox.pathcheck import unsafe_mode

    assert unsafe_mode(mode) is not None
    assert unsafe_mode(0o100644) is None and unsafe_mode(0o100755) is None


# -- the quarantine lets good objects in, and cleans up after a kill ------------------------
@pytest.mark.parametrize("unpack_limit", ["1", "1000"], ids=["pack", "loose"])
def test_a_good_pull_admits_every_object_the_quarantine_held(
    tmp_path: Path, run: Run, transport: str, remote: Path, unpack_limit: str,
) -> None:
    victim = tmp_path / "victim"
    assert run("clone", remote, victim).code == 0
    git_out(victim, "config", "fetch.unpackLimit", unpack_limit)
    work = tmp_path / "origin-work"
    for version in ("v2", "v3"):
        assert run("--repo", work, "version", "create", "team/m", version).code == 0
    assert run("--repo", work, "push").code == 0
    stale, young = (victim / ".git" / "objects" / f"tmp_objdir-modelbox-{n}"
                    for n in ("stale", "young"))
    stale.mkdir()
    young.mkdir()
    os.utime(stale, (1, 1))
    packs = set((victim / ".git" / "objects" / "pack").glob("*.idx"))

    assert modelbox("--repo", victim, "pull").code == 0

    if unpack_limit == "1" or transport == "dulwich":  # the new objects came as a pack
        assert set((victim / ".git" / "objects" / "pack").glob("*.idx")) > packs

    assert git_out(victim, "rev-parse", "main") == git_out(remote, "rev-parse", "main")
    git_out(victim, "fsck", "--no-dangling", "--connectivity-only")
    assert git_out(victim, "status", "--porcelain") == ""
    assert sorted(p.name for p in (victim / ".git" / "objects").glob("tmp_objdir-*")) == [
        young.name]


def test_get_refuses_two_artifacts_that_name_one_file(tmp_path: Path, run: Run) -> None:
    """A folder artifact `d` holding `x`, and a file artifact added as `d/x`: which bytes
    would `get` leave at d/x? Neither: one line, nothing placed."""
    reg, folder, other = tmp_path / "reg", tmp_path / "d", tmp_path / "y"
    folder.mkdir()
    (folder / "x").write_text("good\n")
    other.write_text("evil\n")
    for argv in (("init", reg), ("--repo", reg, "model", "create", "m"),
                 ("--repo", reg, "version", "create", "m", "v1"),
                 ("--repo", reg, "artifact", "add", "m@v1", folder),
                 ("--repo", reg, "artifact", "add", "m@v1", other, "--as", "d/x")):
        assert run(*argv).code == 0, argv
    out = tmp_path / "out"
    before = fingerprint(reg, out, tmp_path / "home")

    code, _, err = modelbox("--repo", reg, "get", "m@v1", "-o", out)

    assert_refused(code, err, "'d/x'", "named twice")
    assert fingerprint(reg, out, tmp_path / "home") == before


@pytest.mark.parametrize("case", ["dotdot", "symlink"])
def test_check_reports_a_path_that_entered_before_the_checks(
    tmp_path: Path, run: Run, transport: str, case: str,
) -> None:
    """A registry that took such a commit earlier (an older modelbox, plain git): `check`
    names the path instead of saying ok."""
    reg = tmp_path / "reg"
    assert run("init", reg).code == 0
    assert run("--repo", reg, "model", "create", "m").code == 0
    hostile_head(reg, case)

    code, out, err = modelbox("--repo", reg, "check")

    assert code == 1, (out, err)
    assert "may not be written" in out + err
    assert ("'..'" if case == "dotdot" else "symbolic link") in out + err


# -- what `artifact add` puts in a listing ----------------------------------------------------
def test_adding_a_cloned_model_folder_leaves_its_git_folder_out(
    tmp_path: Path, run: Run,
) -> None:
    """A model cloned from a hub holds `.git`: as git and DVC do, it is not part of the
    folder (`get` would refuse to place it)."""
    reg, folder, out = tmp_path / "reg", tmp_path / "model", tmp_path / "out"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"weights\n")
    git_out(folder, "init", "--quiet")
    for argv in (("init", reg), ("--repo", reg, "model", "create", "m"),
                 ("--repo", reg, "version", "create", "m", "v1"),
                 ("--repo", reg, "artifact", "add", "m@v1", folder),
                 ("--repo", reg, "get", "m@v1", "-o", out)):
        assert run(*argv).code == 0, argv
    assert sorted(p.name for p in (out / "model").iterdir()) == ["w.bin"]


@pytest.mark.parametrize("name", [".GIT", "git~1", ".git."])
def test_adding_a_folder_holding_a_git_alias_is_refused(
    tmp_path: Path, run: Run, name: str,
) -> None:
    reg, folder = tmp_path / "reg", tmp_path / "model"
    (folder / name).mkdir(parents=True)
    (folder / name / "config").write_text("[core]\n\tfsmonitor = touch /tmp/pwned\n")
    (folder / "w.bin").write_bytes(b"weights\n")
    for argv in (("init", reg), ("--repo", reg, "model", "create", "m"),
                 ("--repo", reg, "version", "create", "m", "v1")):
        assert run(*argv).code == 0, argv
    before = fingerprint(reg, tmp_path / "home", tmp_path / "cache")

    code, _, err = modelbox("--repo", reg, "artifact", "add", "m@v1", folder)

    assert_refused(code, err, name, "get` would not place")
    assert fingerprint(reg, tmp_path / "home", tmp_path / "cache") == before

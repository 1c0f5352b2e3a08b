"""Issue 14, items 2 and 7: artifacts by name, and a work tree that keeps weights out of Git.

* A path an open version has already is replaced only with ``--replace``, and the audit log
  says what it named before and after; ``track --as``, ``track_artifacts(names=)``,
  ``artifact remove``, and ``track --no-check`` for a store the machine cannot reach.
* ``get`` into the registry's work tree lists what it places in ``.git/info/exclude``;
  ``modelbox-no-raw-artifacts`` looks at every staged file; a commit needs a Git identity.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hostile import assert_refused, fingerprint, modelbox

from hooks.no_raw_artifacts import main as no_raw_artifacts
from modelbox import ModelBoxClient
from modelbox.errors import ArtifactExistsError, InvalidValueError

if TYPE_CHECKING:
    from conftest import Git, Run
    from s3server import S3Server

BUCKET = "modelbox-wtsafety"
M = "ai/yolo"
V1 = f"{M}@v1"
POINTERS = "models/ai/yolo/_versions/v1/_artifacts"


@pytest.fixture
def reg(tmp_path: Path, run: Run) -> Path:
    path = tmp_path / "reg"
    for argv in (("init", path), ("--repo", path, "model", "create", M),
                 ("--repo", path, "version", "create", M, "v1")):
        assert run(*argv).code == 0, argv
    return path


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "model.pt").write_bytes(b"\x80\x02first weights")
    (folder / "model.safetensors").write_bytes(os.urandom(4096))
    return folder


def _s3(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    server.create_bucket(BUCKET)
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)


def _log(run: Run, reg: Path, operation: str) -> list[dict[str, str]]:
    result = run("--repo", reg, "log", V1, "--json")
    assert result.code == 0, result
    return [e for e in json.loads(result.out) if e["operation"] == operation]


def _listed(run: Run, reg: Path) -> dict[str, dict[str, object]]:
    result = run("--repo", reg, "artifact", "list", V1, "--json")
    assert result.code == 0, result
    return {a["path"]: a for a in json.loads(result.out)}


def _sha(run: Run, reg: Path, name: str) -> str:
    return str(_listed(run, reg)[name]["sha256"])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- item 2: artifacts by name ---------------------------------------------------------------
def test_adding_over_an_added_artifact_needs_replace_and_logs_before_and_after(
    reg: Path, weights: Path, tmp_path: Path, run: Run
) -> None:
    assert run("--repo", reg, "artifact", "add", V1, weights / "model.pt").code == 0
    first = _sha(run, reg, "model.pt")
    (weights / "model.pt").write_bytes(b"\x80\x02retrained weights")
    before = fingerprint(reg)
    refused = modelbox("--repo", reg, "artifact", "add", V1, weights / "model.pt")
    assert_refused(refused.code, refused.err, f"{V1} already has an artifact model.pt",
                   f"sha256:{first}", "--replace")
    assert fingerprint(reg) == before  # nothing uploaded, nothing committed

    assert run("--repo", reg, "artifact", "add", V1, weights / "model.pt", "--replace").code == 0
    second = _sha(run, reg, "model.pt")
    assert second != first
    [event, _] = _log(run, reg, "artifact.add")
    assert (event["before"], event["after"]) == (f"model.pt={first}", f"model.pt={second}")
    shown = run("--repo", reg, "log", V1).out
    assert f"model.pt={first} -> model.pt={second}" in shown


def test_adding_the_same_bytes_again_needs_no_replace(
    reg: Path, weights: Path, run: Run
) -> None:
    for _ in range(2):
        assert run("--repo", reg, "artifact", "add", V1, weights / "model.pt").code == 0
    assert len(_log(run, reg, "artifact.add")) == 1


def test_tracking_over_an_added_artifact_needs_replace(
    reg: Path, weights: Path, run: Run, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finding: ``add m@v1 model.pt`` then ``track m@v1 s3://b/x/model.pt`` left only the
    tracked one, and the log said ``- -> model.pt=s3://...``."""
    _s3(s3_server, monkeypatch)
    uri = f"s3://{BUCKET}/{uuid.uuid4().hex}/model.pt"
    s3_server.client().pipe_file(uri, b"tracked weights")
    assert run("--repo", reg, "artifact", "add", V1, weights / "model.pt").code == 0
    sha = _sha(run, reg, "model.pt")
    before = fingerprint(reg)
    refused = modelbox("--repo", reg, "artifact", "track", V1, uri)
    assert_refused(refused.code, refused.err, "already has an artifact model.pt", "--replace")
    assert fingerprint(reg) == before
    assert _listed(run, reg)["model.pt"]["sha256"] == sha

    assert run("--repo", reg, "artifact", "track", V1, uri, "--replace").code == 0
    assert _listed(run, reg)["model.pt"]["uri"] == uri
    [event] = _log(run, reg, "artifact.track")
    assert (event["before"], event["after"]) == (f"model.pt={sha}", f"model.pt={uri}")


def test_adding_over_a_tracked_artifact_needs_replace(
    reg: Path, weights: Path, run: Run
) -> None:
    uri = "s3://offline-bucket/exports/model.pt"
    assert run("--repo", reg, "artifact", "track", V1, uri, "--no-check").code == 0
    before = fingerprint(reg)
    refused = modelbox("--repo", reg, "artifact", "add", V1, weights / "model.pt")
    assert_refused(refused.code, refused.err, "already has an artifact model.pt", uri)
    assert fingerprint(reg) == before
    assert run("--repo", reg, "artifact", "add", V1, weights / "model.pt", "--replace").code == 0
    sha = _sha(run, reg, "model.pt")
    [event] = _log(run, reg, "artifact.add")
    assert (event["before"], event["after"]) == (f"model.pt={uri}", f"model.pt={sha}")


def test_a_replacement_among_new_artifacts_pairs_before_and_after(
    reg: Path, weights: Path, run: Run
) -> None:
    assert run("--repo", reg, "artifact", "add", V1, weights / "model.pt").code == 0
    old = _sha(run, reg, "model.pt")
    (weights / "model.pt").write_bytes(b"\x80\x02v2")
    assert run("--repo", reg, "artifact", "add", V1, weights / "model.pt",
               weights / "model.safetensors", "--replace").code == 0
    new, st = _sha(run, reg, "model.pt"), _sha(run, reg, "model.safetensors")
    [event, _] = _log(run, reg, "artifact.add")
    assert event["before"] == f"model.pt={old} model.safetensors=-"
    assert event["after"] == f"model.pt={new} model.safetensors={st}"


def test_track_as_gives_two_uris_with_one_file_name_their_own_names(
    reg: Path, run: Run
) -> None:
    a, b = "s3://offline/run-a/model.pt", "s3://offline/run-b/model.pt"
    refused = modelbox("--repo", reg, "artifact", "track", V1, a, b, "--no-check")
    assert_refused(refused.code, refused.err, "use --as")
    refused = modelbox("--repo", reg, "artifact", "track", V1, a, b, "--as", "x.pt",
                       "--no-check")
    assert_refused(refused.code, refused.err, "--as names one artifact")
    assert run("--repo", reg, "artifact", "track", V1, a, "--no-check").code == 0
    result = run("--repo", reg, "artifact", "track", V1, b, "--as", "model-b.pt", "--no-check")
    assert result.code == 0 and f"Tracked {b} as model-b.pt" in result.out
    listed = _listed(run, reg)
    assert (listed["model.pt"]["uri"], listed["model-b.pt"]["uri"]) == (a, b)


def test_track_artifacts_takes_names(reg: Path) -> None:
    client = ModelBoxClient(reg)
    try:
        mv = client.model_version(V1)
        uris = ["s3://offline/a/model.pt", "s3://offline/b/model.pt"]
        with pytest.raises(InvalidValueError, match="one name per URI"):
            mv.track_artifacts(uris, names=["only-one.pt"], check=False)
        tracked = mv.track_artifacts(uris, names=["a.pt", "b.pt"], check=False)
        assert [(t.path, t.uri, t.verified) for t in tracked] == [
            ("a.pt", uris[0], False), ("b.pt", uris[1], False)]
        with pytest.raises(ArtifactExistsError, match=r"artifact a\.pt"):
            mv.track_artifacts(["s3://offline/c/model.pt"], names=["a.pt"], check=False)
        mv.track_artifacts(["s3://offline/c/model.pt"], names=["a.pt"], check=False,
                           replace=True)
        assert {a.path: a.uri for a in mv.artifacts()} == {
            "a.pt": "s3://offline/c/model.pt", "b.pt": uris[1]}
    finally:
        client.close()


def test_artifact_remove_is_one_audited_commit_and_refuses_unknown_names(
    reg: Path, weights: Path, run: Run, git: Git
) -> None:
    assert run("--repo", reg, "artifact", "add", V1, weights / "model.pt",
               weights / "model.safetensors").code == 0
    pt, st = _sha(run, reg, "model.pt"), _sha(run, reg, "model.safetensors")
    before = fingerprint(reg)
    refused = modelbox("--repo", reg, "artifact", "remove", V1, "model.pt", "nope.bin")
    assert_refused(refused.code, refused.err, f"{V1} has no artifact 'nope.bin'",
                   f"modelbox artifact list {V1}")
    assert fingerprint(reg) == before  # model.pt was not removed either

    head = git("rev-parse", "HEAD", cwd=reg).strip()
    result = run("--repo", reg, "artifact", "remove", V1, "model.pt", "model.safetensors")
    assert result.code == 0, result
    assert git("rev-list", "--count", f"{head}..HEAD", cwd=reg).strip() == "1"
    assert _listed(run, reg) == {}
    [event] = _log(run, reg, "artifact.remove")
    assert event["before"] == f"model.pt={pt} model.safetensors={st}"
    assert event["after"] is None
    assert f"model.pt={pt} model.safetensors={st} -> -" in run("--repo", reg, "log", V1).out


def test_no_check_records_a_uri_whose_store_cannot_be_reached(
    reg: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    uri = "s3://offline-bucket/exports/model.pt"
    before = fingerprint(reg)
    refused = modelbox("--repo", reg, "artifact", "track", V1, uri)
    assert refused.code == 1 and len(refused.err.splitlines()) == 1, refused
    assert fingerprint(reg) == before

    result = run("--repo", reg, "artifact", "track", V1, uri, "--no-check")
    assert result.code == 0 and "not checked: size and checksum unknown" in result.out
    assert _listed(run, reg)["model.pt"]["verified"] is False
    assert run("--repo", reg, "artifact", "list", V1).out.split("\t")[:3] == ["model.pt", uri, "?"]
    pointer = json.loads((reg / POINTERS / "model.pt.json").read_text())
    assert (pointer["verified"], pointer["size"], pointer["etag"]) == (False, 0, None)
    assert run("--repo", reg, "check").code == 0
    # A scheme modelbox does not allow is refused without contacting anything, too.
    refused = modelbox("--repo", reg, "artifact", "track", V1, "file:///etc/passwd",
                       "--no-check", "--as", "p")
    assert_refused(refused.code, refused.err, "not a remote URI")


def test_get_fetches_an_unchecked_uri_and_says_it_is_unverified_until_tracked_again(
    reg: Path, tmp_path: Path, run: Run, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _s3(s3_server, monkeypatch)
    uri = f"s3://{BUCKET}/{uuid.uuid4().hex}/model.pt"
    s3_server.client().pipe_file(uri, b"offline weights")
    assert run("--repo", reg, "artifact", "track", V1, uri, "--no-check").code == 0
    result = run("--repo", reg, "get", V1, "-o", tmp_path / "out")
    assert result.code == 0, result
    assert (tmp_path / "out" / "model.pt").read_bytes() == b"offline weights"
    assert "placed unverified" in result.err and "--no-check" in result.err

    # Tracking the same URI again, reachable now, records its size and ETag: no --replace.
    assert run("--repo", reg, "artifact", "track", V1, uri).code == 0
    tracked = _listed(run, reg)["model.pt"]
    assert (tracked["verified"], tracked["size"]) == (True, len(b"offline weights"))
    result = run("--repo", reg, "get", V1, "-o", tmp_path / "again")
    assert result.code == 0 and "unverified" not in result.err


# -- item 7: work tree safety ----------------------------------------------------------------
def _staged(reg: Path, git: Git) -> list[str]:
    git("add", "-A", cwd=reg)
    return git("diff", "--cached", "--name-only", cwd=reg).split()


def test_get_at_the_registry_root_excludes_the_placed_files_from_git(
    reg: Path, weights: Path, run: Run, git: Git
) -> None:
    """The finding: ``get m:tag`` defaults to ``-o .``; inside the registry, ``git add -A``
    then staged the weights."""
    (weights / "hf").mkdir()
    (weights / "hf" / "model.safetensors").write_bytes(os.urandom(2048))
    assert run("--repo", reg, "artifact", "add", V1, weights / "model.safetensors",
               weights / "hf").code == 0
    result = modelbox("get", V1, cwd=reg)  # -o . by default
    assert result.code == 0, result
    assert (reg / "model.safetensors").is_file() and (reg / "hf" / "model.safetensors").is_file()
    assert "added /hf/ /model.safetensors to" in result.err and "info/exclude" in result.err
    exclude = (reg / ".git" / "info" / "exclude").read_text()
    assert exclude.splitlines()[-2:] == ["/hf/", "/model.safetensors"]
    assert _staged(reg, git) == []
    assert git("status", "--porcelain", cwd=reg) == ""

    again = modelbox("get", V1, cwd=reg)  # once: a second get adds nothing and says nothing
    assert again.code == 0 and "exclude" not in again.err
    assert (reg / ".git" / "info" / "exclude").read_text() == exclude
    # The registry's own files are never hidden: only the placed paths are listed.
    assert run("--repo", reg, "model", "create", "ai/other").code == 0


def test_get_into_a_folder_of_the_work_tree_excludes_that_folder(
    reg: Path, weights: Path, run: Run, git: Git
) -> None:
    assert run("--repo", reg, "artifact", "add", V1, weights / "model.safetensors").code == 0
    result = modelbox("get", V1, "-o", "weights [v1]", cwd=reg)
    assert result.code == 0, result
    assert "/weights \\[v1]/" in (reg / ".git" / "info" / "exclude").read_text().splitlines()
    assert _staged(reg, git) == []


def test_get_outside_the_work_tree_leaves_the_exclude_file_alone(
    reg: Path, weights: Path, tmp_path: Path, run: Run
) -> None:
    assert run("--repo", reg, "artifact", "add", V1, weights / "model.safetensors").code == 0
    exclude = reg / ".git" / "info" / "exclude"
    before = exclude.read_text() if exclude.exists() else None
    result = run("--repo", reg, "get", V1, "-o", tmp_path / "elsewhere")
    assert result.code == 0 and "exclude" not in result.err
    assert (exclude.read_text() if exclude.exists() else None) == before


@pytest.mark.parametrize(("name", "data"), [
    ("model.safetensors", b"small but weights"),
    ("checkpoints/last.ckpt", b"x"),
    ("dump.dat", b"\0" * (1024 * 1024 + 1)),
])
def test_the_no_raw_artifacts_hook_refuses_weights_anywhere_in_the_repository(
    reg: Path, git: Git, monkeypatch: pytest.MonkeyPatch, name: str, data: bytes
) -> None:
    file = reg / name
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(data)
    (reg / "README.md").write_text("# models\n")
    git("add", "-A", cwd=reg)
    monkeypatch.chdir(reg)
    staged = git("diff", "--cached", "--name-only", cwd=reg).split()
    assert no_raw_artifacts(staged) == 1
    assert no_raw_artifacts(["README.md"]) == 0
    # A big file may be meant (raise --max-kb); a weight extension never is.
    assert no_raw_artifacts(["--max-kb=4096", name]) == (0 if name == "dump.dat" else 1)


def test_the_hook_names_the_file_and_the_way_out(
    reg: Path, git: Git, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (reg / "model.safetensors").write_bytes(b"weights")
    git("add", "-A", cwd=reg)
    monkeypatch.chdir(reg)
    assert no_raw_artifacts(["model.safetensors"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("model.safetensors: (file): a weights file (7 bytes) staged for Git")
    assert "git rm --cached model.safetensors" in out and "modelbox artifact add" in out


# -- item 7: a commit needs an identity --------------------------------------------------------
@pytest.fixture
def forget_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Called: no Git identity anywhere from then on (no variables, an empty HOME and an
    empty global config)."""

    def forget() -> None:
        home = tmp_path / "nobody"
        home.mkdir()
        (home / ".gitconfig").write_text("", encoding="utf-8")
        for name in ("NAME", "EMAIL"):
            for role in ("AUTHOR", "COMMITTER"):
                monkeypatch.delenv(f"GIT_{role}_{name}", raising=False)
        monkeypatch.delenv("EMAIL", raising=False)
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))

    return forget


IDENTITY = "no Git identity: run git config --global user.name"


def test_without_an_identity_init_refuses_and_creates_nothing(
    tmp_path: Path, forget_identity: Callable[[], None]
) -> None:
    forget_identity()
    # git refuses the same commit (with user.useConfigOnly, as modelbox never guesses).
    scratch = tmp_path / "scratch"
    subprocess.run(["git", "init", "-q", str(scratch)], check=True)
    proc = subprocess.run(["git", "-c", "user.useConfigOnly=true", "commit", "-q",
                           "--allow-empty", "-m", "x"], cwd=scratch, capture_output=True,
                          text=True, check=False)
    assert proc.returncode != 0 and "Please tell me who you are" in proc.stderr
    before = fingerprint(tmp_path, ignore=("scratch",))
    result = modelbox("init", tmp_path / "fresh")
    assert_refused(result.code, result.err, IDENTITY, "git config --global user.email",
                   "git refuses to commit without one too")
    assert not (tmp_path / "fresh").exists()
    assert fingerprint(tmp_path, ignore=("scratch",)) == before


def test_without_an_identity_every_write_refuses_before_touching_anything(
    reg: Path, weights: Path, tmp_path: Path, run: Run, forget_identity: Callable[[], None]
) -> None:
    assert run("--repo", reg, "artifact", "add", V1, weights / "model.safetensors").code == 0
    forget_identity()
    roots = (reg, tmp_path / "cache", tmp_path / "out")
    before = fingerprint(*roots)
    for argv in (
        ("model", "create", "ai/other"),
        ("artifact", "add", V1, weights / "model.pt"),
        ("artifact", "track", V1, "s3://offline/x.pt", "--no-check"),
        ("artifact", "remove", V1, "model.safetensors"),
        ("meta", "set", V1, "k", "1"),
        ("get", V1, "-o", tmp_path / "out"),
    ):
        result = modelbox("--repo", reg, *argv)
        assert_refused(result.code, result.err, IDENTITY)
        assert fingerprint(*roots) == before, argv
    # Reads need no identity, as in git.
    assert modelbox("--repo", reg, "artifact", "list", V1).code == 0
    assert modelbox("--repo", reg, "log").code == 0


def test_email_from_the_environment_is_an_identity_as_for_git(
    tmp_path: Path, run: Run, forget_identity: Callable[[], None], git: Git,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forget_identity()
    monkeypatch.setenv("EMAIL", "trainer@example.com")
    assert run("init", tmp_path / "fresh").code == 0
    author = git("log", "-1", "--format=%ae", cwd=tmp_path / "fresh").strip()
    assert author == "trainer@example.com"


def test_without_an_identity_a_pull_that_must_merge_refuses_before_anything_moves(
    reg: Path, weights: Path, tmp_path: Path, run: Run, git: Git,
    forget_identity: Callable[[], None],
) -> None:
    """Both clones recorded downloads: joining the audit chains takes a merge commit, so
    the pull is refused whole, not after the branch has moved."""
    assert run("--repo", reg, "artifact", "add", V1, weights / "model.pt").code == 0
    mine = tmp_path / "mine"
    assert run("clone", reg, mine).code == 0
    assert run("--repo", reg, "get", V1, "-o", tmp_path / "a").code == 0
    assert run("--repo", reg, "model", "create", "ai/other").code == 0
    assert run("--repo", mine, "get", V1, "-o", tmp_path / "b").code == 0
    forget_identity()
    before = fingerprint(mine, ignore=(".git/objects", ".git/FETCH_HEAD", ".git/refs/remotes",
                                       ".git/logs/refs/remotes", ".git/modelbox/remotes"))
    result = modelbox("--repo", mine, "pull")
    assert_refused(result.code, result.err, IDENTITY)
    after = fingerprint(mine, ignore=(".git/objects", ".git/FETCH_HEAD", ".git/refs/remotes",
                                      ".git/logs/refs/remotes", ".git/modelbox/remotes"))
    assert after == before


@pytest.mark.parametrize("name", ["../_version", "../../_model", "", "model.pt/", "/etc/passwd",
                                  ".", "model.pt\n", "a\tb"])
def test_remove_and_track_as_refuse_names_that_leave_the_artifacts_folder(
    reg: Path, weights: Path, run: Run, name: str
) -> None:
    assert run("--repo", reg, "artifact", "add", V1, weights / "model.pt").code == 0
    before = fingerprint(reg)
    for argv in (("artifact", "remove", V1, name),
                 ("artifact", "track", V1, "s3://offline/x.pt", "--no-check", "--as", name)):
        result = run("--repo", reg, *argv)
        assert_refused(result.code, result.err)
        assert fingerprint(reg) == before, argv
    assert list(_listed(run, reg)) == ["model.pt"]


def test_a_changed_folder_needs_replace_and_nothing_is_uploaded_without_it(
    reg: Path, weights: Path, run: Run
) -> None:
    folder = weights / "hf"
    folder.mkdir()
    (folder / "config.json").write_text('{"layers": 2}\n')
    assert run("--repo", reg, "artifact", "add", V1, folder).code == 0
    old = _sha(run, reg, "hf")
    (folder / "config.json").write_text('{"layers": 3}\n')
    before = fingerprint(reg)  # the store is .git/modelbox/store: nothing may be sent
    result = run("--repo", reg, "artifact", "add", V1, folder)
    assert_refused(result.code, result.err, "already has an artifact hf", "--replace")
    assert fingerprint(reg) == before
    assert run("--repo", reg, "artifact", "add", V1, folder, "--replace").code == 0
    [event, _] = _log(run, reg, "artifact.add")
    assert event["before"] == f"hf={old}" and event["after"] == f"hf={_sha(run, reg, 'hf')}"


def test_the_python_api_download_into_the_work_tree_is_excluded_too(
    reg: Path, weights: Path, git: Git
) -> None:
    client = ModelBoxClient(reg)
    try:
        mv = client.model_version(V1)
        mv.upload_artifact([weights / "model.safetensors"])
        placed = mv.download_artifacts(reg / "exports")
    finally:
        client.close()
    assert placed == [reg / "exports" / "model.safetensors"]
    assert "/exports/" in (reg / ".git" / "info" / "exclude").read_text().splitlines()
    assert _staged(reg, git) == []

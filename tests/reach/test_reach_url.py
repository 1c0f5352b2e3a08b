"""Issue 16, item 2: read a registry from its URL, without a clone.

``modelbox --repo URL CMD`` and ``ModelBoxClient(URL)`` read through a mirror cached in
``$MODELBOX_CACHE_DIR/registries/<key>``. The servers are the collaboration tests' real
ones (``git daemon``, ``git http-backend`` behind an HTTP server, ``file://``) and an ssh
stand-in that runs the remote command here, as sshd would (no sshd on this machine).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from collab.collab_helpers import git_out, ok
from collab.collab_servers import BareRemote, bare_remote, git_servers
from collab.test_collab_ssh import HOST, ssh_log
from hostile import MODELBOX, assert_refused, fingerprint
from security.test_security_paths import hostile_head

from modelbox import ModelBoxClient
from modelbox.errors import ReadOnlyRegistryError
from modelbox.locations import strip_credentials, url_key

if TYPE_CHECKING:
    from conftest import Run

__all__ = ["bare_remote", "git_servers", "ssh_log"]  # fixtures, imported to be used here

M = "team/m"


def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "modelbox" / "registries"


def mirror_of(tmp_path: Path, url: str) -> Path:
    return cache(tmp_path) / url_key(url)


@pytest.fixture
def source(tmp_path: Path, run: Run, bare_remote: BareRemote) -> Path:
    """A registry (shared folder store) with ``team/m@v1`` (staging), ``@v2``
    (production), each with an artifact and a metric, pushed to ``bare_remote``."""
    reg = tmp_path / "source"
    store = tmp_path / "shared-store"
    ok(run, "init", reg, "--store", store)
    ok(run, "--repo", reg, "model", "create", M)
    for version, content in (("v1", b"one\n"), ("v2", b"two\n")):
        weights = tmp_path / f"{version}.bin"
        weights.write_bytes(content)
        ok(run, "--repo", reg, "version", "create", M, version)
        ok(run, "--repo", reg, "artifact", "add", f"{M}@{version}", weights)
        ok(run, "--repo", reg, "metrics", "log", f"{M}@{version}", "acc=0.9")
    ok(run, "--repo", reg, "tag", f"{M}@v1", "staging")
    ok(run, "--repo", reg, "tag", f"{M}@v2", "production")
    ok(run, "--repo", reg, "push", bare_remote.urls["file"])
    return reg


def push(run: Run, source: Path, remote: BareRemote) -> None:
    ok(run, "--repo", source, "push", remote.urls["file"])


@pytest.mark.parametrize("transport", ["file", "git", "http"])
def test_get_through_a_url_places_the_tagged_version_and_writes_nothing_in_cwd(
    transport: str, tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = bare_remote.urls[transport]
    work = tmp_path / "cwd"
    work.mkdir()
    out = tmp_path / "out"

    monkeypatch.chdir(work)
    code, _, err = run("--repo", url, "get", f"{M}:production", "-o", out)

    assert code == 0, err
    assert (out / "v2.bin").read_bytes() == b"two\n"
    assert run("--repo", url, "resolve", f"{M}:production").out == "v2\n"
    assert list(work.iterdir()) == []  # reads never write into the current folder
    mirror = mirror_of(tmp_path, url)
    assert git_out(mirror / "repo", "rev-parse", "--is-bare-repository") == "true\n"
    assert git_out(mirror / "repo", "rev-parse", "main") == git_out(source, "rev-parse", "main")


def test_every_read_command_answers_as_on_a_clone(
    tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
) -> None:
    url = bare_remote.urls["git"]
    clone = tmp_path / "clone"
    ok(run, "clone", bare_remote.urls["file"], clone)
    commands = [
        ("resolve", f"{M}:production"), ("model", "list"), ("version", "list", M),
        ("version", "show", f"{M}:production"), ("artifact", "list", f"{M}:staging"),
        ("log",), ("log", f"{M}:production"), ("lineage", f"{M}@v1"),
        ("metrics", "show", f"{M}@v2"), ("diff",), ("model", "list", "--json"),
    ]
    for argv in commands:
        through_url = run("--repo", url, *argv)
        on_clone = run("--repo", clone, *argv)
        assert through_url.code == on_clone.code == 0, (argv, through_url, on_clone)
        if argv[0] != "diff":  # diff names the folder it compares
            assert through_url.out == on_clone.out, argv


def test_writes_through_a_url_are_refused_in_one_line_and_the_remote_is_unchanged(
    tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
) -> None:
    url = bare_remote.urls["http"]
    before = fingerprint(bare_remote.path)

    code, _, err = run("--repo", url, "tag", f"{M}@v1", "production")

    assert_refused(code, err, "read-only", "modelbox clone")
    client = ModelBoxClient(url)
    try:
        with pytest.raises(ReadOnlyRegistryError, match="clone it"):
            client.new_model("team/other")
        version = client.model_version(f"{M}@v1")
        with pytest.raises(ReadOnlyRegistryError):
            version.log_metrics({"acc": 1.0})
        assert client.resolve(f"{M}:production") == "v2"
    finally:
        client.close()
    assert fingerprint(bare_remote.path) == before


def test_branch_names_the_remote_branch_to_read(
    tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
) -> None:
    ok(run, "--repo", source, "--branch", "review", "tag", f"{M}@v1", "production")
    git_out(source, "push", "-q", bare_remote.urls["file"], "review")
    url = bare_remote.urls["git"]

    assert ok(run, "--repo", url, "--branch", "review", "resolve", f"{M}:production").out \
        == "v1\n"
    assert ok(run, "--repo", url, "resolve", f"{M}:production").out == "v2\n"
    code, _, err = run("--repo", url, "--branch", "nope", "resolve", f"{M}:production")
    assert_refused(code, err, "has no branch 'nope'")


def test_a_fresh_mirror_is_read_until_its_ttl_then_fetched(
    tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = bare_remote.urls["git"]
    monkeypatch.setenv("MODELBOX_URL_TTL", "3600")
    assert ok(run, "--repo", url, "resolve", f"{M}:production").out == "v2\n"
    ok(run, "--repo", source, "tag", f"{M}@v1", "production")
    push(run, source, bare_remote)

    # Within the TTL the mirror is read as it is; --refresh fetches; so does an expired TTL.
    assert ok(run, "--repo", url, "resolve", f"{M}:production").out == "v2\n"
    assert ok(run, "--repo", url, "resolve", f"{M}:production", "--refresh").out == "v1\n"
    ok(run, "--repo", source, "tag", f"{M}@v2", "production")
    push(run, source, bare_remote)
    monkeypatch.setenv("MODELBOX_URL_TTL", "0")
    assert ok(run, "--repo", url, "resolve", f"{M}:production").out == "v2\n"


def test_offline_never_fetches_and_says_so_when_there_is_no_mirror(
    tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
) -> None:
    url = bare_remote.urls["file"]
    code, _, err = run("--repo", url, "--offline", "resolve", f"{M}:production")
    assert_refused(code, err, "no cached copy", "without --offline")
    assert not (mirror_of(tmp_path, url) / "repo").exists()

    ok(run, "--repo", url, "resolve", f"{M}:production")
    shutil.rmtree(bare_remote.path)  # the remote is gone: offline reads still answer
    assert ok(run, "--repo", url, "--offline", "resolve", f"{M}:production").out == "v2\n"
    # ...and history was never fetched: offline cannot add it.
    code, _, err = run("--repo", url, "--offline", "log")
    assert_refused(code, err, "lacks the history", "without --offline")


def test_a_force_pushed_history_is_followed(
    tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
) -> None:
    url = bare_remote.urls["http"]
    assert ok(run, "--repo", url, "log").out.count("\n") > 5  # the whole history mirrored
    old = git_out(source, "rev-parse", "main").strip()
    git_out(source, "reset", "-q", "--hard", "main~3")  # before v2's tag and metric
    ok(run, "--repo", source, "tag", f"{M}@v1", "production")
    git_out(source, "push", "-q", "--force", bare_remote.urls["file"], "main")

    assert ok(run, "--repo", url, "--refresh", "resolve", f"{M}:production").out == "v1\n"
    mirror = mirror_of(tmp_path, url) / "repo"
    assert git_out(mirror, "rev-parse", "main") == git_out(source, "rev-parse", "main")
    assert old not in ok(run, "--repo", url, "log").out


@pytest.mark.parametrize("case", ["dotgit", "symlink"])
def test_a_hostile_remote_is_refused_and_the_mirror_keeps_what_it_had(
    case: str, tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
) -> None:
    url = bare_remote.urls["git"]
    assert ok(run, "--repo", url, "resolve", f"{M}:production").out == "v2\n"
    mirror = mirror_of(tmp_path, url)
    before = fingerprint(mirror, tmp_path / "home")
    evil = hostile_head(bare_remote.path, case)

    code, _, err = run("--repo", url, "--refresh", "resolve", f"{M}:production")

    assert_refused(code, err, "refusing commit", "may not be written")
    assert fingerprint(mirror, tmp_path / "home") == before  # no object, ref or state moved
    assert subprocess.run(["git", "-C", str(mirror / "repo"), "cat-file", "-e", evil],
                          capture_output=True, check=False).returncode != 0
    assert ok(run, "--repo", url, "--offline", "resolve", f"{M}:production").out == "v2\n"


def test_a_hostile_commit_deep_in_history_is_refused_when_history_is_fetched(
    tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
) -> None:
    hostile_head(bare_remote.path, "intermediate")  # `..` in one commit, gone in the next
    url = bare_remote.urls["file"]
    code, _, err = run("--repo", url, "log")
    assert_refused(code, err, "refusing commit", "may not be written")
    assert not list(cache(tmp_path).glob("*/repo.tmp-*"))


def test_a_first_fetch_of_a_hostile_remote_leaves_no_mirror(
    tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
) -> None:
    hostile_head(bare_remote.path, "dotgit")
    url = bare_remote.urls["http"]
    code, _, err = run("--repo", url, "resolve", f"{M}:production")
    assert_refused(code, err, "refusing commit", "may not be written")
    mirror = mirror_of(tmp_path, url)
    assert not (mirror / "repo").exists() and not list(mirror.glob("repo.tmp-*"))
    assert not (mirror / "state.json").exists()


def test_an_unreachable_url_is_one_line_and_leaves_no_mirror(
    tmp_path: Path, git_servers: object, run: Run,
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"git://127.0.0.1:{port}/none.git"
    code, _, err = run("--repo", url, "resolve", f"{M}:production")
    assert_refused(code, err, "cannot reach")
    assert not (mirror_of(tmp_path, url) / "repo").exists()


def test_a_repository_that_is_not_a_registry_is_one_line(
    tmp_path: Path, bare_remote: BareRemote, run: Run,
) -> None:
    plain = tmp_path / "plain"
    git_out(tmp_path, "init", "-q", "-b", "main", str(plain))
    (plain / "README").write_text("code\n")
    git_out(plain, "add", "README")
    git_out(plain, "commit", "-qm", "code")
    git_out(plain, "push", "-q", bare_remote.urls["file"], "main")
    code, _, err = run("--repo", bare_remote.urls["git"], "model", "list")
    assert_refused(code, err, "is not a modelbox registry")
    code, _, err = run("--repo", f"{bare_remote.urls['http']}-missing", "model", "list")
    assert_refused(code, err, "not a Git repository")


def test_the_mirror_is_keyed_and_written_without_credentials(
    tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
) -> None:
    plain = bare_remote.urls["http"]
    secret = plain.replace("http://", "http://reader:s3cr3t-t0ken@")
    assert strip_credentials(secret) == plain
    assert ok(run, "--repo", secret, "resolve", f"{M}:production").out == "v2\n"
    assert [p.name for p in cache(tmp_path).iterdir()] == [url_key(plain)]
    for path in cache(tmp_path).rglob("*"):
        assert "s3cr3t" not in path.name
        if path.is_file():
            assert b"s3cr3t" not in path.read_bytes(), path


def test_a_download_is_recorded_in_a_local_log_never_in_the_remote(
    tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
) -> None:
    url = bare_remote.urls["git"]
    refs = git_out(bare_remote.path, "for-each-ref")
    ok(run, "--repo", url, "get", f"{M}:staging", "-o", tmp_path / "out")
    lines = (mirror_of(tmp_path, url) / "downloads.log").read_text().splitlines()
    event = json.loads(lines[-1])
    assert event["operation"] == "artifact.download" and event["target"] == f"{M}@v1"
    assert event["author"] == "Test User <test@example.com>" and event["url"] == url
    assert git_out(bare_remote.path, "for-each-ref") == refs  # no audit chain pushed


def test_concurrent_first_readers_share_one_whole_mirror(
    tmp_path: Path, source: Path, bare_remote: BareRemote,
) -> None:
    url = bare_remote.urls["git"]
    procs = [subprocess.Popen([MODELBOX, "--repo", url, "resolve", f"{M}:production"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [out for out, _ in results] == ["v2\n"] * 4, results
    mirror = mirror_of(tmp_path, url)
    assert sorted(p.name for p in mirror.iterdir()) == ["modelbox", "repo", "state.json"]


def test_a_mirror_deleted_between_and_during_reads_is_fetched_anew(
    tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
) -> None:
    url = bare_remote.urls["file"]
    assert ok(run, "--repo", url, "resolve", f"{M}:production").out == "v2\n"
    shutil.rmtree(cache(tmp_path))
    assert ok(run, "--repo", url, "resolve", f"{M}:production").out == "v2\n"

    client = ModelBoxClient(url)
    try:
        shutil.rmtree(cache(tmp_path))  # under an open reader that still needs history
        assert [e.operation for e in client.log(f"{M}:production")][:1] == ["tag.assign"]
    finally:
        client.close()
    assert (mirror_of(tmp_path, url) / "repo").is_dir()


@pytest.mark.parametrize("form", ["scp"])  # ssh:// is tested with push and clone
def test_get_over_ssh(
    form: str, tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
    ssh_log: Path,
) -> None:
    path = bare_remote.path
    url = f"ssh://{HOST}{path}" if form == "ssh://" else f"git@{HOST}:{path}"
    ok(run, "--repo", url, "get", f"{M}:production", "-o", tmp_path / "out")
    assert (tmp_path / "out" / "v2.bin").read_bytes() == b"two\n"
    assert set(ssh_log.read_text().split()) <= {HOST, f"git@{HOST}"}


def test_the_default_per_clone_store_is_read_over_file_and_refused_over_the_network(
    tmp_path: Path, bare_remote: BareRemote, run: Run,
) -> None:
    reg = tmp_path / "own-store"
    ok(run, "init", reg)
    (tmp_path / "w.bin").write_bytes(b"weights\n")
    ok(run, "--repo", reg, "model", "create", M)
    ok(run, "--repo", reg, "version", "create", M, "v1")
    ok(run, "--repo", reg, "artifact", "add", f"{M}@v1", tmp_path / "w.bin")
    ok(run, "--repo", reg, "push", bare_remote.urls["file"])  # objects: the remote's store

    ok(run, "--repo", bare_remote.urls["file"], "get", f"{M}@v1", "-o", tmp_path / "a")
    assert (tmp_path / "a" / "w.bin").read_bytes() == b"weights\n"
    code, _, err = run("--repo", bare_remote.urls["git"], "get", f"{M}@v1", "-o",
                            tmp_path / "b")
    assert_refused(code, err, "cannot be read over the network", "shared store")
    assert not (tmp_path / "b").exists()


def test_without_git_dulwich_fetches_the_whole_history_and_checks_it(
    tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELBOX_GIT_TRANSPORT", "dulwich")
    url = bare_remote.urls["git"]
    assert ok(run, "--repo", url, "resolve", f"{M}:production").out == "v2\n"
    state = json.loads((mirror_of(tmp_path, url) / "state.json").read_text())
    assert state["full"] is True
    hostile_head(bare_remote.path, "dotgit")
    result = run("--repo", url, "--refresh", "resolve", f"{M}:production")
    assert result.code == 1 and "may not be written" in result.err, result
    assert ok(run, "--repo", url, "--offline", "resolve", f"{M}:production").out == "v2\n"


def test_a_cache_folder_that_cannot_be_written_is_one_line(
    tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
) -> None:
    cache(tmp_path).parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(cache(tmp_path), ignore_errors=True)
    cache(tmp_path).write_text("not a folder\n")  # as if replaced mid-way by something else
    result = run("--repo", bare_remote.urls["file"], "resolve", f"{M}:production")
    assert_refused(result.code, result.err, "cannot write the cached mirror", "run the command")


@pytest.mark.parametrize("argv", [("pull",), ("gc", "--dry-run"), ("install-hooks",),
                                  ("check",), ("refs", "sync")])
def test_commands_that_need_a_clone_are_refused_through_a_url_before_any_fetch(
    argv: tuple[str, ...], tmp_path: Path, run: Run,
) -> None:
    result = run("--repo", "git://127.0.0.1:1/registry.git", *argv)
    assert_refused(result.code, result.err, f"`modelbox {argv[0]}` works on a clone")
    assert not cache(tmp_path).exists()


def test_history_swaps_a_whole_mirror_in_for_the_shallow_one(
    tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
) -> None:
    url = bare_remote.urls["git"]
    ok(run, "--repo", url, "resolve", f"{M}:production")
    mirror = mirror_of(tmp_path, url)
    assert git_out(mirror / "repo", "rev-parse", "--is-shallow-repository") == "true\n"

    assert "tag.assign" in ok(run, "--repo", url, "log", f"{M}:production").out

    assert git_out(mirror / "repo", "rev-parse", "--is-shallow-repository") == "false\n"
    assert git_out(mirror / "repo", "rev-list", "--count", "main") \
        == git_out(source, "rev-list", "--count", "main")
    assert sorted(p.name for p in mirror.iterdir()) == ["modelbox", "repo", "state.json"]
    assert json.loads((mirror / "state.json").read_text())["full"] is True

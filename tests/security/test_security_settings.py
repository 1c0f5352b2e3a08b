"""Pointers, settings, secrets and terminal output from a remote are untrusted (issue 13).

The hostile remote is a bare repository made with real git; the attacker edits it with a
plain ``git commit`` + ``git push`` (no modelbox, no hooks), and the victim meets the result
through ``modelbox clone`` / ``pull`` and the command under test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hostile import assert_refused, fingerprint, modelbox

from modelbox import canonical
from modelbox.redact import safe_text

if TYPE_CHECKING:
    from conftest import Git, Run

SECRET = "SECRET"
T = "2026-11-23T14:00:00Z"
V1 = "models/default/m/_versions/v1"
ESCAPES = ("\x1b", "\x07", "\x9b")


# -- a hostile remote -------------------------------------------------------------------
@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare remote holding a registry with the model ``m`` and its version ``v1``, built
    once per module by real processes in an environment as isolated as ``isolated_env``."""
    root = tmp_path_factory.mktemp("template")
    (root / "home").mkdir()
    (root / "home" / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "FSSPEC_", "GIT_", "MODELBOX_"))}
    env.update(HOME=str(root / "home"), GIT_CONFIG_NOSYSTEM="1",
               GIT_CONFIG_GLOBAL=str(root / "home" / ".gitconfig"),
               MODELBOX_CACHE_DIR=str(root / "cache"), XDG_CACHE_HOME=str(root / "cache"))
    for role in ("AUTHOR", "COMMITTER"):
        env.update({f"GIT_{role}_NAME": "Origin", f"GIT_{role}_EMAIL": "origin@example.com"})
    origin, bare = root / "origin", root / "remote.git"
    for argv in (["modelbox", "init", origin],
                 ["modelbox", "--repo", origin, "model", "create", "m"],
                 ["modelbox", "--repo", origin, "version", "create", "m", "v1"],
                 ["git", "init", "--bare", "-q", bare],
                 ["git", "-C", origin, "remote", "add", "origin", bare],
                 ["modelbox", "--repo", origin, "push"]):
        if argv[0] == "modelbox":
            argv[0] = str(Path(sys.executable).with_name("modelbox"))
        subprocess.run([str(a) for a in argv], env=env, check=True, capture_output=True)
    return bare


@pytest.fixture
def remote(tmp_path: Path, template: Path) -> Path:
    """A fresh copy of the template remote, for one test to attack."""
    return Path(shutil.copytree(template, tmp_path / "remote.git"))


def attack(git: Git, bare: Path, files: dict[str, bytes], message: str = "edit",
           author: str = "Mallory") -> None:
    """Commit ``files`` to the remote's main branch with plain git, as an attacker would."""
    work = bare.parent / f"attacker-{len(list(bare.parent.glob('attacker-*')))}"
    git("clone", "-q", bare, work)
    for path, data in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(data)
    git("add", "-A", cwd=work)
    (work.parent / "message.txt").write_text(message, encoding="utf-8")
    git("commit", "-q", "--cleanup=verbatim", f"--author={author} <m@example.com>",
        "-F", work.parent / "message.txt", cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)


def settings(**fields: object) -> bytes:
    return canonical.encode({"kind": "registry", "format": 1, "branch": "main", **fields})


@pytest.fixture
def victim(tmp_path: Path, run: Run, remote: Path) -> Path:
    """A clone of the remote, made before the attack."""
    path = tmp_path / "victim"
    assert run("clone", remote, path).code == 0
    return path


def _state(path: Path) -> dict[str, str]:
    """The clone as a user sees it: work tree, index, HEAD and local refs (a fetch may add
    objects and remote-tracking refs; those change nothing the user relies on)."""
    return fingerprint(path, ignore=(".git/objects", ".git/refs/remotes", ".git/logs",
                                     ".git/FETCH_HEAD", ".git/packed-refs"))


# -- pointers ---------------------------------------------------------------------------
@pytest.fixture
def victim_file(tmp_path: Path) -> Path:
    path = tmp_path / "private" / "id_rsa"
    path.parent.mkdir()
    path.write_text("-----BEGIN PRIVATE KEY----- the victim's own file\n")
    return path


POINTER_URIS = {
    "local": "local://{f}",
    "file": "file://{f}",
    "FILE-upper-case": "FILE://{f}",
    "bare-path": "{f}",
    "chained-simplecache-file": "simplecache::file://{f}",
    "chained-simplecache-s3": "simplecache::s3://bucket/x",
    "chained-zip": "zip://id_rsa::file://{f}",
    "memory": "memory://x/id_rsa",
    "data": "data:text/plain;base64,SGVsbG8=",
    "reference": "reference://{f}",
    "dir": "dir://{f}",
    "unlisted-sftp": "sftp://127.0.0.1:1/id_rsa",
}


def _pointer(uri: str, size: int) -> bytes:
    return canonical.encode({
        "kind": "artifact", "path": "id_rsa", "size": size, "uri": uri, "created_at": T,
        "file_type": "OTHER", "mime_type": "application/octet-stream",
    })


@pytest.mark.parametrize("uri", POINTER_URIS.values(), ids=POINTER_URIS.keys())
def test_get_refuses_a_pulled_pointer_to_a_local_or_chained_url(
    tmp_path: Path, run: Run, git: Git, remote: Path, victim: Path, victim_file: Path,
    uri: str,
) -> None:
    uri = uri.format(f=victim_file)
    attack(git, remote, {f"{V1}/_artifacts/id_rsa.json":
                         _pointer(uri, victim_file.stat().st_size)})
    assert run("--repo", victim, "pull").code == 0
    out = tmp_path / "out"
    before = fingerprint(victim, out, tmp_path / "cache")
    code, _, err = run("--repo", victim, "get", "m@v1", "-o", out)
    assert_refused(code, err, "the pointer id_rsa of default/m@v1")
    assert fingerprint(victim, out, tmp_path / "cache") == before  # nothing copied


@pytest.mark.parametrize("listed", ["file local", "memory", "simplecache zip", "data dir"])
def test_git_config_cannot_allow_a_local_protocol(
    tmp_path: Path, run: Run, git: Git, remote: Path, victim: Path, victim_file: Path,
    listed: str,
) -> None:
    scheme = listed.split(maxsplit=1)[0]
    attack(git, remote, {f"{V1}/_artifacts/id_rsa.json":
                         _pointer(f"{scheme}://{victim_file}", victim_file.stat().st_size)})
    assert run("--repo", victim, "pull").code == 0
    git("config", "modelbox.allowedSchemes", listed, cwd=victim)
    out = tmp_path / "out"
    code, _, err = run("--repo", victim, "get", "m@v1", "-o", out)
    assert_refused(code, err, "the pointer id_rsa of default/m@v1", f"{scheme}:")
    assert not out.exists()


def test_git_config_of_the_clone_extends_the_scheme_list(
    tmp_path: Path, run: Run, git: Git, remote: Path, victim: Path,
) -> None:
    attack(git, remote, {f"{V1}/_artifacts/x.bin.json":
                         _pointer("sftp://127.0.0.1:1/x.bin", 3).replace(b"id_rsa", b"x.bin")})
    assert run("--repo", victim, "pull").code == 0
    refused = run("--repo", victim, "get", "m@v1", "-o", tmp_path / "out")
    assert_refused(refused.code, refused.err, "sftp://", "modelbox.allowedSchemes")
    git("config", "modelbox.allowedSchemes", "sftp", cwd=victim)
    allowed = run("--repo", victim, "get", "m@v1", "-o", tmp_path / "out")
    assert "not allowed" not in allowed.err  # now it is tried (and fails to connect)


def test_a_repository_cannot_extend_the_scheme_list(
    tmp_path: Path, run: Run, git: Git, remote: Path, victim: Path,
) -> None:
    # The attacker commits a git config of its own beside the pointer: never read.
    attack(git, remote, {
        f"{V1}/_artifacts/x.bin.json":
            _pointer("sftp://127.0.0.1:1/x.bin", 3).replace(b"id_rsa", b"x.bin"),
        ".gitconfig": b"[modelbox]\n\tallowedSchemes = sftp\n",
    })
    assert run("--repo", victim, "pull").code == 0
    code, _, err = run("--repo", victim, "get", "m@v1", "-o", tmp_path / "out")
    assert_refused(code, err, "sftp://", "not allowed")


@pytest.mark.parametrize("uri", ["local:///etc/passwd", "simplecache::s3://b/k",
                                 "memory://x", "/etc/passwd"])
def test_artifact_track_refuses_local_and_chained_urls(
    run: Run, registry_path: Path, uri: str,
) -> None:
    assert run("--repo", registry_path, "model", "create", "m").code == 0
    before = fingerprint(registry_path)
    code, _, err = run("--repo", registry_path, "artifact", "track", "m", uri)
    assert_refused(code, err, uri)
    assert fingerprint(registry_path) == before


# -- settings ---------------------------------------------------------------------------
BAD_BRANCHES = ["../../../x", "HEAD", "-x", "a..b", "x.lock", "a b", "a\x1b[2Jb"]


@pytest.mark.parametrize("branch", BAD_BRANCHES)
def test_pull_refuses_a_registry_json_naming_an_unsafe_branch(
    run: Run, git: Git, remote: Path, victim: Path, branch: str,
) -> None:
    attack(git, remote, {".modelbox/registry.json": settings(branch=branch)})
    before = _state(victim)
    code, _, err = run("--repo", victim, "pull")
    assert_refused(code, err, "registry.json", "branch", "nothing was pulled")
    assert _state(victim) == before
    assert "Traceback" not in err and "\x1b" not in err


@pytest.mark.parametrize("branch", ["../../../x", "HEAD"])
def test_clone_refuses_a_registry_json_naming_an_unsafe_branch(
    tmp_path: Path, run: Run, git: Git, remote: Path, branch: str,
) -> None:
    attack(git, remote, {".modelbox/registry.json": settings(branch=branch)})
    code, _, err = run("clone", remote, tmp_path / "fresh")
    assert_refused(code, err, "branch")
    assert not (tmp_path / "fresh").exists()


BAD_STORES = {
    "memory": "memory://stolen",
    "chained": "simplecache::s3://bucket/p",
    "reference": "reference://x",
    "userinfo": f"s3://KEY:{SECRET}@bucket/p",
    "token-param": f"gs://bucket/p?token={SECRET}",
    "unlisted": "ftp://127.0.0.1:1/store",
}


@pytest.mark.parametrize("store", BAD_STORES.values(), ids=BAD_STORES.keys())
def test_pull_refuses_a_registry_json_naming_an_unsafe_store(
    run: Run, git: Git, remote: Path, victim: Path, store: str,
) -> None:
    attack(git, remote, {".modelbox/registry.json": settings(store=store)})
    before = _state(victim)
    code, out, err = run("--repo", victim, "pull")
    assert_refused(code, err, "store setting", "nothing was pulled")
    assert SECRET not in out + err
    assert _state(victim) == before


def test_a_relative_store_resolves_against_the_registry_root(
    tmp_path: Path, run: Run, git: Git, remote: Path, victim: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attack(git, remote, {".modelbox/registry.json": settings(store="objstore")})
    assert run("--repo", victim, "pull").code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "w.bin").write_bytes(b"weights")
    monkeypatch.chdir(elsewhere)
    assert run("--repo", victim, "artifact", "add", "m@v1", "w.bin").code == 0
    assert list((victim / "objstore" / "sha256").rglob("*"))
    assert not (elsewhere / "objstore").exists()


def test_init_stores_a_relative_store_relative_to_the_registry_root(
    tmp_path: Path, run: Run,
) -> None:
    assert run("init", "reg", "--store", "shared/store").code == 0
    data = json.loads((tmp_path / "reg" / ".modelbox" / "registry.json").read_text())
    assert data["store"] == "../shared/store"


INIT_STORES = {
    "s3-userinfo": f"s3://KEY:{SECRET}@bucket/p",
    "secret-param": f"s3://bucket/p?secret={SECRET}",
    "https-userinfo": f"https://user:{SECRET}@host/p",
    "gs-token": f"gs://bucket/p?token={SECRET}",
    "presigned": f"https://h/p?X-Amz-Credential=AK&X-Amz-Signature={SECRET}",
    "sas-sig": f"az://c/p?sv=2020&sig={SECRET}",
    "memory": "memory://x",
    "chained": "simplecache::s3://bucket/p",
}


@pytest.mark.parametrize("store", INIT_STORES.values(), ids=INIT_STORES.keys())
def test_init_refuses_a_store_url_with_credentials_and_creates_nothing(
    tmp_path: Path, store: str,
) -> None:
    target = tmp_path / "reg"
    code, out, err = modelbox("init", target, "--store", store)
    assert_refused(code, err, "--store")
    assert SECRET not in out + err
    assert not target.exists()
    if "credential" in store.lower() or SECRET in store:
        assert "environment" in err


@pytest.mark.parametrize("branch", ["../x", "HEAD", "-x", "a..b", "x.lock", "refs/../x"])
def test_init_refuses_an_unsafe_branch_and_creates_nothing(
    tmp_path: Path, branch: str,
) -> None:
    target = tmp_path / "reg"
    code, _, err = modelbox("init", target, f"--branch={branch}")
    assert_refused(code, err, "branch")
    assert not target.exists()


def test_init_refuses_an_unsafe_branch_in_an_existing_repository(
    tmp_path: Path, git: Git,
) -> None:
    git("init", "-q", tmp_path / "repo")
    before = fingerprint(tmp_path / "repo")
    code, _, err = modelbox("init", tmp_path / "repo", "--branch", "HEAD")
    assert_refused(code, err, "branch")
    assert fingerprint(tmp_path / "repo") == before


# -- secrets in messages ----------------------------------------------------------------
@pytest.fixture
def weights(registry_path: Path, run: Run) -> Path:
    assert run("--repo", registry_path, "model", "create", "m").code == 0
    assert run("--repo", registry_path, "version", "create", "m", "v1").code == 0
    path = registry_path.parent / "w.bin"
    path.write_bytes(os.urandom(64))
    return path


UNREACHABLE = {
    "https-store": {"MODELBOX_STORE": f"https://user:{SECRET}@127.0.0.1:1/store"},
    "s3-endpoint": {
        "MODELBOX_STORE": "s3://bucket/p", "AWS_ENDPOINT_URL": f"http://admin:{SECRET}@127.0.0.1:1",
        "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_MAX_ATTEMPTS": "1",
    },
    "s3-endpoint-token": {
        "MODELBOX_STORE": "s3://bucket/p",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:1/?access_token={SECRET}",
        "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_MAX_ATTEMPTS": "1",
    },
}


@pytest.mark.parametrize("env", UNREACHABLE.values(), ids=UNREACHABLE.keys())
def test_an_unreachable_store_error_never_shows_its_credentials(
    registry_path: Path, weights: Path, env: dict[str, str],
) -> None:
    before = fingerprint(registry_path)
    code, out, err = modelbox("--repo", registry_path, "artifact", "add", "m@v1", weights,
                              env=env)
    assert_refused(code, err, "***")
    assert SECRET not in out + err
    assert fingerprint(registry_path) == before


@pytest.fixture(params=["git", "dulwich"])
def transport(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    yield {"MODELBOX_GIT_TRANSPORT": request.param}


TOKEN_URL = f"http://user:{SECRET}@127.0.0.1:1/r.git"


def test_clone_error_never_shows_the_token_of_the_remote_url(
    tmp_path: Path, transport: dict[str, str],
) -> None:
    code, out, err = modelbox("clone", TOKEN_URL, tmp_path / "c", env=transport)
    assert code == 1 and "modelbox: error: " in err and "Traceback" not in err
    assert SECRET not in out + err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("command", ["push", "pull", "status"])
def test_sync_errors_never_show_the_token_of_the_remote_url(
    registry_path: Path, git: Git, transport: dict[str, str], command: str,
) -> None:
    git("remote", "add", "origin", TOKEN_URL, cwd=registry_path)
    code, out, err = modelbox("--repo", registry_path, command, env=transport)
    assert code == 1 and "modelbox: error: " in err and "Traceback" not in err
    assert SECRET not in out + err


BAD_S3_SETTINGS = {
    "endpoint-not-a-url": {"AWS_ENDPOINT_URL": "notaurl"},
    "endpoint-bad-port": {"AWS_ENDPOINT_URL": "http://127.0.0.1:99999"},
    "fsspec-client-key": {"FSSPEC_S3": '{"client_kwargs": {"1": 2}}'},
    "fsspec-client-kwargs-not-object": {"FSSPEC_S3": '{"client_kwargs": 5}'},
    "fsspec-config-key": {"FSSPEC_S3": '{"config_kwargs": {"7": true}}'},
    "fsspec-endpoint-not-string": {"FSSPEC_S3": '{"endpoint_url": 5}'},
}


@pytest.mark.parametrize("env", BAD_S3_SETTINGS.values(), ids=BAD_S3_SETTINGS.keys())
def test_bad_s3_settings_in_the_environment_are_one_line(
    registry_path: Path, weights: Path, run: Run, monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
) -> None:
    for name, value in {"MODELBOX_STORE": "s3://bucket/p", **env}.items():
        monkeypatch.setenv(name, value)
    before = fingerprint(registry_path)
    code, _, err = run("--repo", registry_path, "artifact", "add", "m@v1", weights)
    assert_refused(code, err)
    assert fingerprint(registry_path) == before


# -- terminal escapes -------------------------------------------------------------------
EVIL = "\x1b]0;pwned\x07\x1b[2J\x9b31m"


def _strings(document: object) -> list[str]:
    if isinstance(document, dict):
        return [s for value in document.values() for s in _strings(value)]
    if isinstance(document, list):
        return [s for value in document for s in _strings(value)]
    return [document] if isinstance(document, str) else []


def _no_raw_escapes(text: str) -> None:
    for char in ESCAPES:
        assert char not in text, repr(text)


def test_log_shows_hostile_commit_text_escaped(
    run: Run, git: Git, remote: Path, victim: Path,
) -> None:
    model = json.loads((victim / "models/default/m/_model.json").read_text())
    attack(git, remote, {"models/default/m/_model.json": canonical.encode(
        {**model, "description": f"hi{EVIL}"})},
        message=(f"update m{EVIL}\n\nModelbox-Operation: model.update{EVIL}\n"
                 f"Modelbox-Target: default/m{EVIL}\nModelbox-Before: a{EVIL}\n"
                 f"Modelbox-After: b{EVIL}\n"),
        author=f"Mallory{EVIL}")
    assert run("--repo", victim, "pull").code == 0
    code, out, err = modelbox("--repo", victim, "log")
    assert code == 0, err
    _no_raw_escapes(out + err)
    assert "\\x1b]0;pwned\\x07" in out
    code, out, _ = modelbox("--repo", victim, "log", "--json")
    _no_raw_escapes(out)
    events = json.loads(out)  # the JSON document keeps the text as it is, escaped
    assert events[0]["subject"] == f"update m{EVIL}"
    assert EVIL in events[0]["author"]


@pytest.mark.parametrize("command", [("model", "show", "m"), ("version", "show", "m@v1"),
                                     ("model", "list"), ("version", "list", "m")])
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_show_and_list_escape_a_hostile_description(
    run: Run, git: Git, remote: Path, victim: Path, command: tuple[str, ...], as_json: bool,
) -> None:
    edits = {}
    for path, field in (("models/default/m/_model.json", "owner"),
                        (f"{V1}/_version.json", "name")):
        document = json.loads((victim / path).read_text())
        document.update({"description": f"d{EVIL}", field: f"o{EVIL}"})
        edits[path] = canonical.encode(document)
    attack(git, remote, edits)
    assert run("--repo", victim, "pull").code == 0
    argv = [*command, "--json"] if as_json else list(command)
    code, out, err = modelbox("--repo", victim, *argv)
    assert code == 0, err
    _no_raw_escapes(out + err)
    if as_json:  # the document keeps the text as it is, JSON-escaped
        assert f"d{EVIL}" in _strings(json.loads(out))
    elif command != ("version", "list", "m"):  # that one shows no free text
        assert "\\x1b]0;pwned\\x07" in out


def test_an_error_quoting_hostile_text_is_escaped(
    run: Run, git: Git, remote: Path, victim: Path,
) -> None:
    attack(git, remote, {f"{V1}/_artifacts/x.bin.json": _pointer(
        f"memory://x{EVIL}", 3).replace(b"id_rsa", b"x.bin")})
    assert run("--repo", victim, "pull").code == 0
    code, _, err = modelbox("--repo", victim, "get", "m@v1", "-o", victim.parent / "out")
    assert_refused(code, err, "x.bin")
    _no_raw_escapes(err)


def test_log_lines_are_redacted_and_escaped_and_library_noise_dropped() -> None:
    # What the CLI installs for every command, then log lines quoting a URL.
    script = (
        "import logging\n"
        "from modelbox.cli import _log_to_stderr\n"
        "_log_to_stderr()\n"
        f"logging.getLogger('modelbox.x').warning('retry https://u:{SECRET}@h/x\\x1b[2J')\n"
        f"logging.getLogger('urllib3').error('failed https://u:{SECRET}@h/y')\n"
        "logging.getLogger('urllib3').warning('Retrying, noise')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stderr and "\x1b" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "modelbox: warning: retry https://***@h/x\\x1b[2J",
        "modelbox: warning: failed https://***@h/y",
    ]


def test_the_validate_hook_escapes_hostile_text(registry_path: Path, run: Run) -> None:
    assert run("--repo", registry_path, "model", "create", "m").code == 0
    path = registry_path / "models/default/m/_model.json"
    document = json.loads(path.read_text())
    path.write_bytes(canonical.encode({**document, f"x{EVIL}": 1}))
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("modelbox-hook-validate")), str(path)],
        cwd=registry_path, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "x\\x1b]0;pwned" in proc.stdout
    _no_raw_escapes(proc.stdout + proc.stderr)


@pytest.mark.parametrize("branch", ["../../../x", "HEAD"])
def test_a_committed_unsafe_branch_setting_is_one_line_on_every_command(
    registry_path: Path, git: Git, branch: str,
) -> None:
    (registry_path / ".modelbox/registry.json").write_bytes(settings(branch=branch))
    git("commit", "-q", "-am", "hand edit", cwd=registry_path)
    before = fingerprint(registry_path)
    for argv in (("model", "list"), ("model", "create", "n"), ("check",)):
        code, _, err = modelbox("--repo", registry_path, *argv)
        assert_refused(code, err, "registry.json", "branch")
    assert fingerprint(registry_path) == before


CHECKED = {
    "pointer-local": (f"{V1}/_artifacts/x.bin.json",
                      _pointer("local:///etc/passwd", 3).replace(b"id_rsa", b"x.bin"), "uri"),
    "pointer-chained": (f"{V1}/_artifacts/x.bin.json",
                        _pointer("simplecache::s3://b/k", 3).replace(b"id_rsa", b"x.bin"),
                        "uri"),
    "store-credentials": (".modelbox/registry.json",
                          settings(store=f"s3://KEY:{SECRET}@bucket/p"), "store"),
    "store-memory": (".modelbox/registry.json", settings(store="memory://x"), "store"),
}


@pytest.mark.parametrize(("path", "data", "field"), CHECKED.values(), ids=CHECKED.keys())
def test_check_reports_a_committed_unsafe_pointer_or_store(
    registry_path: Path, run: Run, git: Git, path: str, data: bytes, field: str,
) -> None:
    assert run("--repo", registry_path, "model", "create", "m").code == 0
    assert run("--repo", registry_path, "version", "create", "m", "v1").code == 0
    (registry_path / path).parent.mkdir(parents=True, exist_ok=True)
    (registry_path / path).write_bytes(data)
    git("add", "-A", cwd=registry_path)
    git("commit", "-q", "-m", "hand edit", cwd=registry_path)
    code, out, err = run("--repo", registry_path, "check")
    assert code == 1, (out, err)
    assert f"{path}: {field}" in out + err
    assert SECRET not in out + err


@pytest.mark.parametrize("text", [
    "a." * 100_000 + "@", "&" + "key" * 100_000 + "=", "a://" * 50_000 + "@=",
    "&a=b" * 50_000 + "@", "a@" * 100_000 + "://@", "\x1b" * 200_000,
], ids=["dotted-scheme", "key-runs", "schemes", "params", "at-runs", "escapes"])
def test_sanitizing_hostile_text_takes_linear_time(text: str) -> None:
    # Descriptions and commit text from a remote go through it on every command.
    started = time.perf_counter()
    safe_text(text)
    assert time.perf_counter() - started < 1.0


def test_every_command_prints_through_the_sanitizer() -> None:
    # A command calling click.echo/print itself would show remote text raw: only the
    # sanitizer (cli/_common.py) and the error line (cli/__init__.py) may.
    cli = Path(__file__).resolve().parents[2] / "modelbox" / "cli"
    offenders = [
        f"{path.name}:{number}"
        for path in sorted(cli.glob("*.py")) if path.name not in ("_common.py", "__init__.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if any(call in line for call in ("click.echo(", "click.secho(", "print(", "sys.stdout"))
    ]
    assert not offenders, offenders

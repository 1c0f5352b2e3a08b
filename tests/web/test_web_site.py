"""Issue 18 item 1: ``modelbox site build OUT`` writes every page and twin as files with
relative links, and rebuilds only the pages whose inputs changed."""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

import pytest
from conftest import Run
from web_helpers import Parsed, demo

from modelbox import ModelBoxClient
from modelbox.registry import Registry
from modelbox.web import pages, site


@pytest.fixture
def reg(tmp_path: Path) -> Path:
    return demo(tmp_path / "registry")


def _build(reg: Path, out: Path, jobs: int | None = None) -> site.BuildReport:
    registry = Registry.open(reg)
    try:
        return site.build(registry, out, jobs=jobs)
    finally:
        registry.close()


def _files(out: Path) -> dict[str, float]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*")
            if p.is_file()}


def test_every_link_of_the_built_site_names_a_file_of_it(reg: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    report = _build(reg, out)
    assert "m/vision/yolo/_model" in report.written and not report.removed
    pages = sorted(out.rglob("*.html"))
    assert len(pages) > 10
    for page in pages:
        parsed = Parsed(page.read_text(encoding="utf-8"))
        targets = parsed.links() + [str(a.get("src") or a.get("href"))
                                    for tag, a in parsed.elements if tag in ("script", "link")
                                    and (a.get("src") or a.get("href"))]
        for href in targets:
            if href.startswith(("#", "data:")):  # an anchor; the inline (empty) icon
                continue
            assert not href.startswith(("/", "http:", "https:")), (page, href)  # relative
            target = posixpath.normpath(posixpath.join(
                str(page.parent.relative_to(out)), href))
            assert (out / target).is_file(), f"{page.relative_to(out)} links {href}"
        assert (page.with_suffix(".json")).is_file()


def test_a_second_build_rewrites_nothing(reg: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    _build(reg, out)
    before = _files(out)
    report = _build(reg, out)
    assert report.written == [] and report.removed == []
    after = _files(out)
    assert {k: v for k, v in after.items() if k != site.MANIFEST} == {
        k: v for k, v in before.items() if k != site.MANIFEST}


def test_a_tag_move_rewrites_that_model_and_the_lists_only(reg: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    _build(reg, out)
    before = _files(out)
    with ModelBoxClient(reg) as client:
        client.model("vision/yolo").version("v9").tag("staging")
    report = _build(reg, out)
    written = set(report.written)
    assert {"m/vision/yolo/_model", "m/vision/yolo/_v/v9", "m/vision/yolo/_v/v1",
            "log", "index"} <= written
    assert "m/vision/yolo/_v/v0" not in written  # its tags did not change
    assert not any(p.startswith(("m/nlp/", "x/")) for p in written)
    after = _files(out)
    assert after["m/nlp/bert/_model.html"] == before["m/nlp/bert/_model.html"]
    doc = json.loads((out / "m/vision/yolo/_model.json").read_text())
    assert doc["tags"]["staging"] == "v9"
    assert doc["timeline"][0]["after"] == "v9"


def test_a_deleted_models_pages_are_removed(reg: Path, tmp_path: Path, run: Run) -> None:
    out = tmp_path / "site"
    _build(reg, out)
    assert (out / "m/nlp/bert/_model.html").is_file()
    assert run("--repo", reg, "model", "delete", "nlp/bert").code == 0
    report = _build(reg, out)
    assert "m/nlp/bert/_model" in report.removed
    assert not (out / "m/nlp/bert/_model.html").exists()
    assert not (out / "m/nlp/bert/_model.json").exists()
    assert not (out / "m/nlp/_ns.html").exists()  # the namespace is gone too


def test_a_torn_or_foreign_site_manifest_means_a_full_rebuild(reg: Path, tmp_path: Path,
                                                               ) -> None:
    out = tmp_path / "site"
    first = _build(reg, out)
    (out / site.MANIFEST).write_text('{"kind": "modelbox-site", "format": 1, "pa')
    assert sorted(_build(reg, out).written) == sorted(first.written)
    (out / "m/vision/yolo/_model.json").unlink()  # a page deleted by hand comes back
    assert _build(reg, out).written == ["m/vision/yolo/_model"]


def test_site_build_on_the_command_line(reg: Path, tmp_path: Path, run: Run) -> None:
    out = tmp_path / "site"
    result = run("--repo", reg, "site", "build", out, "--json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["written"] > 10 and doc["kept"] == 0
    again = run("--repo", reg, "site", "build", out)
    assert again.code == 0 and "0 pages" in again.out
    (tmp_path / "file").write_text("x")
    bad = run("--repo", reg, "site", "build", tmp_path / "file")
    assert bad.code in (1, 2) and "Traceback" not in bad.err
    one = run("--repo", reg, "site", "build", tmp_path / "one", "--jobs", "1", "--json")
    assert one.code == 0 and json.loads(one.out)["workers"] == 1
    zero = run("--repo", reg, "site", "build", tmp_path / "zero", "--jobs", "0")
    assert zero.code == 2 and "Traceback" not in zero.err and not (tmp_path / "zero").exists()


def test_a_site_build_leaves_the_registry_as_it_was(reg: Path, tmp_path: Path, git: object,
                                                   ) -> None:
    import subprocess

    def state() -> str:
        return subprocess.run(["git", "for-each-ref"], cwd=reg, capture_output=True,
                              text=True, check=True).stdout

    before = state()
    _build(reg, tmp_path / "site")
    assert state() == before


def test_an_incremental_log_reads_only_new_commits_and_equals_a_full_build(
        reg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "PAGE_SIZE", 4)
    out = tmp_path / "site"
    _build(reg, out)
    with ModelBoxClient(reg) as client:
        for version in ("v0", "v1", "v9", "v0", "v1"):
            client.model("vision/yolo").version(version).tag("staging")
    seen: list[int] = []
    seed = pages.Reader.seed_events

    def seeded(self: pages.Reader, start: int, events: list[dict[str, object]]) -> None:
        seen.append(start)
        seed(self, start, events)

    monkeypatch.setattr(pages.Reader, "seed_events", seeded)
    report = _build(reg, out)
    assert seen and seen[0] > 0  # the old full pages were not read again
    assert "log/1" not in report.written
    full = tmp_path / "full"
    _build(reg, full)
    for page in [*sorted(full.glob("log/*.json")), full / "log.json"]:
        assert (out / page.relative_to(full)).read_bytes() == page.read_bytes(), page


def _contents(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def test_worker_processes_write_the_same_files_as_one_process(
        reg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(site, "POOL_MIN", 0)  # the demo registry is small: fork anyway
    one = _build(reg, tmp_path / "one", jobs=1)
    two = _build(reg, tmp_path / "two", jobs=2)
    assert (one.workers, two.workers) == (1, 2)
    assert one.written == two.written
    assert _contents(tmp_path / "one") == _contents(tmp_path / "two")  # manifest included
    with ModelBoxClient(reg) as client:
        client.model("vision/yolo").version("v9").tag("staging")
    again = _build(reg, tmp_path / "two", jobs=2)  # incremental, in workers
    _build(reg, tmp_path / "one", jobs=1)
    assert "m/vision/yolo/_v/v9" in again.written and "m/nlp/bert/_model" not in again.written
    assert _contents(tmp_path / "one") == _contents(tmp_path / "two")


def test_a_full_build_cuts_each_models_tag_timeline_from_the_whole_log(
        reg: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    _build(reg, out)
    registry = Registry.open(reg)
    try:
        expected = [e.to_json() for e in registry.log("vision/yolo")
                    if e.operation.startswith("tag.")]
    finally:
        registry.close()
    doc = json.loads((out / "m/vision/yolo/_model.json").read_text())
    assert len(expected) >= 3 and doc["timeline"] == json.loads(json.dumps(expected))


def test_a_broken_version_manifest_is_an_error_page_not_a_failed_build(
        reg: Path, tmp_path: Path, git: object) -> None:
    import subprocess

    (reg / "models/vision/yolo/_versions/v1/_version.json").write_text("{not json")
    subprocess.run(["git", "commit", "-qam", "hand edit"], cwd=reg, check=True)
    out = tmp_path / "site"
    report = _build(reg, out, jobs=1)
    page = (out / "m/vision/yolo/_model.html").read_text(encoding="utf-8")
    assert 'id="error"' in page and "modelbox: error:" in page
    assert "m/nlp/bert/_model" in report.written  # the rest of the site is there

"""Issue 18 items 1-2: the pages of ``modelbox ui``, read over loopback HTTP from a real
``modelbox ui`` process, and their ``.json`` twins."""

from __future__ import annotations

import json
import posixpath
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_helpers import BRANCH, Parsed, demo, fetch, ui

from modelbox import ModelBoxClient
from modelbox.registry import Registry
from modelbox.web import pages


@pytest.fixture
def reg(tmp_path: Path) -> Path:
    return demo(tmp_path / "registry")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """One demo registry and one ``modelbox ui`` for the tests that only read."""
    path = demo(tmp_path_factory.mktemp("shared") / "registry")
    with ui(path) as base:
        yield path, base


def _follow(base: str, page: str, href: str) -> str:
    return posixpath.normpath(posixpath.join(posixpath.dirname(page), href))


def test_clicking_from_the_index_to_a_version_reaches_its_artifacts(
        shared: tuple[Path, str]) -> None:
    _, base = shared
    index = fetch(base)
    assert index.status == 200 and "text/html" in index.headers["Content-Type"]
    ns = next(a["href"] for a in Parsed(index.text).by_testid("ns-link")
              if a["href"] and "vision" in a["href"])
    ns_path = _follow(base, "index.html", str(ns))
    models = Parsed(fetch(base + ns_path).text).by_testid("model-link")
    model_path = _follow(base, ns_path, next(str(a["href"]) for a in models
                                             if "yolo/" in str(a["href"])))
    versions = Parsed(fetch(base + model_path).text).by_testid("version-link")
    hrefs = [str(a["href"]) for a in versions]
    assert hrefs[0].endswith("v9.html")  # newest first
    version_path = _follow(base, model_path, hrefs[-1])
    page = fetch(base + version_path)
    assert page.status == 200
    twin = fetch(base + version_path.replace(".html", ".json")).json()
    [artifact] = twin["artifacts"]
    assert artifact["path"] == "weights.bin" and artifact["size"] == 1000
    assert artifact["sha256"] in page.text
    assert twin["tags"] == ["champion"] and twin["collections"] == ["vision/zoo@v0"]


def test_model_page_has_versions_newest_first_and_every_tag_move(
        shared: tuple[Path, str]) -> None:
    _, base = shared
    doc = fetch(base + "m/vision/yolo/_model.json").json()
    html = fetch(base + "m/vision/yolo/_model.html").text
    assert [v["version"] for v in doc["versions"]] == ["v9", "v1", "v0"]
    assert doc["versions"][2]["released"] and doc["versions"][2]["size"] == 1000
    moves = [(e["target"], e["before"], e["after"]) for e in doc["timeline"]]
    assert moves[:3] == [("vision/yolo:champion", None, "v0"),
                         ("vision/yolo:staging", "v0", "v1"),
                         ("vision/yolo:staging", None, "v0")]
    assert all(e["author"] and e["time"] for e in doc["timeline"])
    assert 'id="timeline"' in html and html.count("tag.move") >= 1


def test_version_page_walks_lineage_to_the_experiment(
        shared: tuple[Path, str]) -> None:
    _, base = shared
    doc = fetch(base + "m/vision/yolo/_v/v9.json").json()
    html = fetch(base + "m/vision/yolo/_v/v9.html").text
    assert [n["kind"] for n in doc["lineage"]] == ["version", "checkpoint", "experiment"]
    assert "../../../../x/vision/yolo-train/_experiment.html" in Parsed(html).links()


def test_chart_data_is_decimated_and_the_full_series_is_one_link_away(tmp_path: Path) -> None:
    path = tmp_path / "registry"
    with ModelBoxClient(path, create=True) as client:
        version = client.new_model("m").new_model_version()
        for step in range(3000):
            version.log_metrics({"loss": (step * 7919) % 101 / 100}, step=step)
    with ui(path) as base:
        chart = fetch(base + "m/default/m/_metrics.json").json()["chart"]
        html = fetch(base + "m/default/m/_metrics.html").text
        [series] = chart
        full = fetch(base + "m/default/m/" + series["full"].split("m/default/m/")[1]
                     + ".json").json()
    assert series["total"] == 3000 and len(series["points"]) <= 2 * pages.CHART_POINTS
    assert len(full["series"]["loss"]) == 3000
    # Decimated by min and max per bucket: the extremes survive.
    assert max(p[2] for p in series["points"]) == 1.0 and min(p[2] for p in series["points"]) == 0
    assert 'data-testid="series-toggle"' in html and 'id="chart-svg"' in html


def test_decimation_keeps_every_point_of_a_short_series() -> None:
    points = [{"step": i, "wallclock": float(i), "value": float(i % 5)} for i in range(50)]
    assert pages.decimate(points) == [[i, float(i), float(i % 5)] for i in range(50)]
    assert pages.decimate([{"step": 1, "wallclock": 1.0, "value": "a tensor"}]) == []


def test_review_page_renders_the_diff_of_a_proposal_branch(
        shared: tuple[Path, str]) -> None:
    _, base = shared
    index = fetch(base + "index.json").json()
    doc = fetch(base + f"review/{BRANCH}.json").json()
    html = fetch(base + f"review/{BRANCH}.html").text
    assert index["reviews"] == [BRANCH]
    [moved] = doc["diff"]["tags"]
    assert (moved["tag"], moved["before"], moved["after"]) == ("champion", "v0", "v1")
    assert 'id="review-tags"' in html


def test_experiments_and_collections_pages_list_what_the_registry_holds(
        shared: tuple[Path, str]) -> None:
    _, base = shared
    runs = fetch(base + "experiments.json").json()["experiments"]
    run = fetch(base + "x/vision/yolo-train/_experiment.json").json()
    [zoo] = fetch(base + "collections.json").json()["collections"]
    assert [r["experiment"] for r in runs] == ["vision/yolo-train"]
    assert [c["checkpoint"] for c in run["checkpoints"]] == ["epoch-0", "epoch-1"] or len(
        run["checkpoints"]) == 2
    assert zoo["links"] == {"v0": "vision/yolo@v0"}


def test_audit_log_pages_count_from_the_oldest_so_old_pages_never_change(
        reg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "PAGE_SIZE", 4)
    registry = Registry.open(reg)
    first = pages.log(pages.Reader(registry), 1)
    assert first is not None and first["page"] == 1
    assert first["events"][0]["operation"] == "registry.init"
    ModelBoxClient(reg).model("nlp/bert").new_model_version()
    registry.close()
    registry = Registry.open(reg)
    again = pages.log(pages.Reader(registry), 1)
    latest = pages.latest_log(pages.Reader(registry))
    registry.close()
    assert again == first
    assert latest["events"][-1]["target"] == "nlp/bert@v0"


def test_the_server_answers_get_only_binds_loopback_and_never_writes(
        shared: tuple[Path, str]) -> None:
    reg, base = shared
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=reg, capture_output=True,
                          text=True, check=True).stdout
    assert base.startswith("http://127.0.0.1:")
    for method in ("POST", "PUT", "DELETE"):
        assert fetch(base + "index.html", method).status == 405
    assert fetch(base + "index.html", "HEAD").status == 200
    for missing in ("nope.html", "m/vision/nope/_model.html", "m/vision/yolo/_v/v7.html",
                    "log/0.html", "log/99.html", "m/../../etc/passwd.html",
                    "m/vision/yolo/_v/..%2f..%2f_model.html", "static/../pages.py",
                    "search.html", "m/vision/yolo/_series/v0.html"):
        assert fetch(base + missing).status == 404, missing
    after = subprocess.run(["git", "rev-parse", "HEAD"], cwd=reg, capture_output=True,
                           text=True, check=True).stdout
    assert after == head
    assert subprocess.run(["git", "status", "--porcelain"], cwd=reg, capture_output=True,
                          text=True, check=True).stdout == ""


def test_a_write_while_serving_shows_on_the_next_request(reg: Path) -> None:
    with ui(reg) as base:
        before = fetch(base + "m/nlp/bert/_model.json").json()
        ModelBoxClient(reg).model("nlp/bert").new_model_version()
        after = fetch(base + "m/nlp/bert/_model.json").json()
    assert before["versions"] == [] and [v["version"] for v in after["versions"]] == ["v0"]


def test_ui_reads_a_registry_by_url(reg: Path, tmp_path: Path) -> None:
    with ui(tmp_path, "--repo", reg.as_uri()) as base:
        doc = fetch(base + "m/vision/yolo/_model.json").json()
        log = fetch(base + "log.json").json()
    assert [v["version"] for v in doc["versions"]] == ["v9", "v1", "v0"]
    assert log["events"] and doc["timeline"]


def test_every_page_has_a_json_twin_with_the_same_path(
        shared: tuple[Path, str]) -> None:
    _, base = shared
    for path in ("index", "m/vision/_ns", "m/vision/yolo/_model", "m/vision/yolo/_v/v0",
                 "m/vision/yolo/_metrics", "experiments", "collections", "log",
                 "log/1"):
        twin = fetch(base + path + ".json")
        assert twin.status == 200 and "application/json" in twin.headers["Content-Type"]
        assert json.loads(twin.body)["path"] == path
        page = Parsed(fetch(base + path + ".html").text)
        resolved = {posixpath.normpath(posixpath.join(posixpath.dirname(path), href))
                    for href in page.links()}
        assert path + ".json" in resolved


def test_a_directory_artifacts_files_show_when_the_store_answers(tmp_path: Path) -> None:
    import shutil

    path = tmp_path / "registry"
    folder = tmp_path / "shards"
    folder.mkdir()
    for name in ("a.bin", "b.bin", "config.json"):
        (folder / name).write_bytes(name.encode() * 10)
    with ModelBoxClient(path, create=True) as client:
        client.new_model("m").new_model_version().upload_artifact([str(folder)])
    with ui(path) as base:
        doc = fetch(base + "m/default/m/_v/v0.json").json()
        html = fetch(base + "m/default/m/_v/v0.html").text
    [artifact] = doc["artifacts"]
    assert [f["path"] for f in artifact["listing"]["files"]] == ["a.bin", "b.bin",
                                                                  "config.json"]
    assert Parsed(html).by_testid("listing")
    registry = Registry.open(path)
    try:  # the static site never reads the store
        static = pages.version(pages.Reader(registry), "default/m", "v0")
    finally:
        registry.close()
    assert static is not None and "unavailable" in static["artifacts"][0]["listing"]
    shutil.rmtree(path / ".git" / "modelbox" / "store")
    with ui(path) as base:
        gone = fetch(base + "m/default/m/_v/v0.json").json()["artifacts"][0]["listing"]
        page = fetch(base + "m/default/m/_v/v0.html")
    assert gone["unavailable"].startswith("store not reachable")
    assert page.status == 200 and Parsed(page.text).by_testid("listing-unavailable")


def test_a_port_in_use_is_one_line_and_exit_1(shared: tuple[Path, str]) -> None:
    reg, base = shared
    port = base.rsplit(":", 1)[1].strip("/")
    exe = Path(sys.executable).with_name("modelbox")
    proc = subprocess.run([str(exe), "ui", "--port", port], cwd=reg, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("modelbox: error: cannot listen on 127.0.0.1:")
    assert len(proc.stderr.splitlines()) == 1

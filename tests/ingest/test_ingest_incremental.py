"""Per-checkpoint ingest cost independent of the run's length (issue 17, speed): a CSV read
from where the last read stopped (never trusting that offset blindly), and the series
appended to as text, byte for byte what the general writer writes."""

from __future__ import annotations

import json
import random
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from modelbox import lifecycle, metric_order
from modelbox import series_text as fast
from modelbox.audit import Change
from modelbox.errors import ManifestError
from modelbox.ingest.metrics import CsvFollower
from modelbox.ingest.watcher import Watcher
from modelbox.manifests import MetricPoint, MetricSeries
from modelbox.names import parse_model, parse_reference
from modelbox.registry import Registry, merge_metric_points, metric_points

from .trainers import torch_ckpt

PATH = "experiments/ai/run/_metrics.json"


def _old_path(data: bytes | None, points: list[tuple[str, int | None, float | str]],
              now: float) -> bytes:
    """What the watcher wrote before: parse, deduplicate, merge, encode."""
    from modelbox.manifests import parse

    current = parse(MetricSeries, PATH, data) if data else None
    seen = {(k, p.step) for k, s in current.series.items() for p in s} if current else set()
    fresh = []
    for key, step, value in points:
        if (key, step) not in seen:
            seen.add((key, step))
            fresh.extend(metric_points({key: value}, step=step, wallclock=now))
    return merge_metric_points(current, PATH, fresh)[0].to_bytes()


def _new_path(data: bytes | None, points: list[tuple[str, int | None, float | str]],
              now: float) -> bytes:
    loaded = fast.load(PATH, data)
    assert loaded is not None
    added = {key for key, step, value in points if loaded.add(key, step, value, now)}
    loaded.order(added)
    return loaded.to_bytes()


def _doc(series: dict[str, list[dict[str, object]]]) -> bytes:
    return MetricSeries.model_validate({"series": series}).to_bytes()


DOCUMENTS: dict[str, bytes | None] = {
    "none yet": None,
    "empty": _doc({}),
    "usual": _doc({f"m{i}": [{"step": s, "wallclock": 1.5 + s, "value": 1 / (s + 1)}
                             for s in range(20)] for i in range(3)}),
    "odd points": _doc({
        "loss": [{"step": 3, "wallclock": 5.0, "value": 0.25},
                 {"step": 1, "wallclock": 9.0, "value": 1e-300}],  # not in order
        "no-step": [{"step": None, "wallclock": 2.0, "value": "text é"},
                    {"step": None, "wallclock": 1.0, "value": 7.0}],
        "blob": [{"step": 0, "wallclock": 1.0, "value": {"bytes": "AAEC"}}],
        "ünïcode/key \"q\"": [{"step": 2, "wallclock": 1e20, "value": -0.0}],
        "empty": [],
    }),
    # Written by hand (a co-user's commit): ints where floats go, keys out of order,
    # JSON's Infinity, compact: the general writer's output is still the target.
    "by hand": (b'{"series":{"b":[{"value":1,"wallclock":3,"step":4}],'
                b'"a":[{"step":1,"value":2.5,"wallclock":Infinity}]},"kind":"metrics"}'),
}
POINTS: list[tuple[str, int | None, float | str]] = [
    ("loss", 2, 0.5), ("loss", 3, 9.0), ("m1", 25, 0.125), ("m1", 21, 3.0), ("m1", 25, 4.0),
    ("new", 7, 1.0), ("no-step", None, 4.0), ("b", 4, 2.0), ("a", 0, 1.0),
    ("ünïcode/key \"q\"", 1, 1e-7),
]


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_appending_writes_the_bytes_the_general_path_writes(name: str) -> None:
    data = DOCUMENTS[name]
    now = 1733140000.123456
    assert _new_path(data, POINTS, now) == _old_path(data, POINTS, now)
    assert _new_path(data, [], now) == ((data and _old_path(data, [], now)) or _doc({}))


@pytest.mark.parametrize("seed", range(8))
def test_a_series_kept_over_many_appends_writes_what_the_general_path_writes(
        seed: int) -> None:
    """The watcher keeps its series from commit to commit, compactly (each key's text back
    to back, its steps and wallclocks in arrays): round after round of points in order,
    out of order, repeated, without a step, past int64, under a wallclock that goes back,
    each document is byte for byte the general path's, and so is each latest value."""
    rng = random.Random(seed)
    kept = fast.load(PATH, None)
    assert kept is not None
    data: bytes | None = None
    for round_ in range(15):
        now = 1000.0 + round_ * rng.choice([1.0, 1.0, -0.25])
        points: list[tuple[str, int | None, float | str]] = []
        for _ in range(rng.randrange(1, 40)):
            step = rng.choice([round_ * 10 + rng.randrange(10)] * 6 + [
                rng.randrange(-3, 150), None, 2**70 + rng.randrange(3)])
            values: list[float | str] = [rng.random(), float(rng.randrange(3)), "text é"]
            value = rng.choice(values)
            points.append((rng.choice(["loss", "acc", "lr", "é/x"]), step, value))
        expected = _old_path(data, points, now)
        kept.order({key for key, step, value in points if kept.add(key, step, value, now)})
        assert kept.to_bytes() == expected
        data = expected
        document = MetricSeries.model_validate_json(data)
        for key, held in document.series.items():
            assert kept.latest(key) == metric_order.latest(held)
        reloaded = fast.load(PATH, data)
        assert reloaded is not None and reloaded.to_bytes() == data


@pytest.mark.parametrize("bad", [
    b'{"kind":"metrics","series":{"a":[{"step":1,"wallclock":1.0,"value":[1]}]}}',
    b'{"kind":"metrics","series":{"a":[{"step":true,"wallclock":1.0,"value":1.0}]}}',
    b'{"kind":"metrics","series":{"a":[{"step":1,"wallclock":1.0,"value":1.0,"x":1}]}}',
    b'{"kind":"metrics","series":{"a":[' + b'[' * 200 + b']' * 200 + b']}}',
    b'{"kind":"metrics",',
])
def test_a_hostile_series_document_is_refused_as_the_general_path_refuses_it(
        bad: bytes) -> None:
    with pytest.raises(ManifestError):
        _old_path(bad, POINTS, 1.0)
    with pytest.raises(ManifestError):
        fast.load(PATH, bad)


def test_a_document_of_another_shape_is_left_to_the_general_path() -> None:
    assert fast.load(PATH, b'{"kind":"metrics","series":{"a":{}}}') is None
    assert fast.load(PATH, b'{"kind":"metrics","other":1}') is None
    assert fast.load(PATH, b'[]') is None


def test_the_cache_is_used_only_for_the_document_it_wrote() -> None:
    cache = fast.SeriesCache(size=2)
    kept = fast.load(PATH, DOCUMENTS["usual"])
    assert kept is not None
    blob, other = "a" * 40, "b" * 40
    cache.keep(PATH, kept, blob)
    assert cache.take(PATH, other) is None  # someone else's commit since: read it again
    assert cache.take(PATH, blob) is None  # (and the kept series was let go)
    cache.keep(PATH, kept, blob)
    assert cache.take(PATH, None) is None  # the document was removed since
    cache.keep(PATH, kept, blob)
    assert cache.take("models/x/_metrics.json", blob) is None  # another path's document
    assert cache.take(PATH, blob) is kept
    assert cache.take(PATH, blob) is None  # handed over once: the caller changes it
    for n in range(3):  # a few documents are kept, the oldest goes first
        cache.keep(f"p{n}", kept, blob)
    assert cache.take("p0", blob) is None
    assert cache.take("p1", blob) is kept and cache.take("p2", blob) is kept


def _series_in(registry: Registry, path: str) -> bytes:
    with registry.transaction() as txn:
        series = registry.read_series(txn, path)
        assert series is not None
        return series.to_bytes()


def test_a_series_is_kept_only_as_the_commit_staged_it(registry_path: Path) -> None:
    """Registry.read_series hands over the series the registry last wrote: not one whose
    transaction failed after changing it, nor one whose path the same transaction then
    wrote other bytes to. Either would be served as the document and committed over it."""
    ref = parse_reference("ai/run")
    registry = Registry.open(registry_path)
    try:
        lifecycle.create_experiment(registry, ref.model)
        registry.append_metrics(ref, metric_points({"loss": 0.5}, step=1, wallclock=1.0))
        committed = _committed_series(registry_path)

        with pytest.raises(RuntimeError), registry.transaction() as txn:
            series = registry.read_series(txn, PATH)
            assert series is not None and series.add("loss", 2, 0.25, 2.0)
            registry.write_series(txn, PATH, series)
            raise RuntimeError("the commit fails after the series was changed")
        assert json.loads(_series_in(registry, PATH)) == committed

        replaced = _doc({"acc": [{"step": 7, "wallclock": 1.0, "value": 0.5}]})
        with registry.transaction() as txn:
            series = registry.read_series(txn, PATH)
            assert series is not None and series.add("loss", 3, 0.125, 3.0)
            registry.write_series(txn, PATH, series)
            txn.put(PATH, fast.Encoded(replaced))
            txn.change = Change("metrics.log", "ai/run", "metrics log ai/run acc")
        assert _series_in(registry, PATH) == replaced
    finally:
        registry.close()


def test_points_another_writer_commits_between_two_ingests_are_kept(
        registry_path: Path, tmp_path: Path) -> None:
    """The watcher keeps the series it wrote; a commit by anyone else in between changes
    the document's blob, and the next ingest reads the document instead."""
    out, log = _lightning_folder(tmp_path, "epoch,step,loss\n0,1,0.5\n")
    registry = Registry.open(registry_path)
    try:
        watcher = Watcher(registry, parse_model("ai/run"), out)
        torch_ckpt(out / "epoch=0-step=1.ckpt")
        assert len(watcher.poll()) == 1
        with closing(Registry.open(registry_path)) as other:  # another writer
            other.append_metrics(parse_reference("ai/run"),
                                 metric_points({"acc": 0.75}, step=1, wallclock=3.0))
        _csv(log, "0,2,0.25\n", "a")
        torch_ckpt(out / "epoch=0-step=2.ckpt")
        assert len(watcher.poll()) == 1
    finally:
        registry.close()
    document = _committed_series(registry_path)
    assert [p["step"] for p in document["series"]["loss"]] == [1, 2]
    assert [(p["step"], p["value"]) for p in document["series"]["acc"]] == [(1, 0.75)]


def _csv(path: Path, text: str, mode: str = "w") -> None:
    with path.open(mode) as f:
        f.write(text)


def _lightning_folder(tmp_path: Path, rows: str) -> tuple[Path, Path]:
    """A trainer's folder whose CSVLogger file starts with ``rows``: it and the file."""
    out = tmp_path / "out"
    (out / "logs").mkdir(parents=True)
    log = out / "logs" / "metrics.csv"
    _csv(log, rows)
    return out, log


def _committed_series(registry_path: Path) -> Any:
    """The experiment's series document at the registry's HEAD, as git reads it."""
    return json.loads(subprocess.run(
        ["git", "show", f"HEAD:{PATH}"], cwd=registry_path, check=True, capture_output=True,
        text=True).stdout)


def test_a_csv_is_read_from_where_the_last_read_stopped(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    _csv(path, "step,loss\n1,0.5\n2,0.4\n3,0.")  # the writer is mid-line
    position, points, mark, from_start = CsvFollower(path).read()
    assert (position, points, from_start) == ("step", [("loss", 1, 0.5), ("loss", 2, 0.4)],
                                              True)
    _csv(path, "3\n4,0.2\n", "a")
    _, points, mark, from_start = CsvFollower(path, mark).read()
    assert (points, from_start) == ([("loss", 3, 0.3), ("loss", 4, 0.2)], False)
    _, points, _, _ = CsvFollower(path, mark).read()
    assert points == []


@pytest.mark.parametrize("how", ["replaced", "truncated", "rewritten in place"])
def test_a_csv_replaced_or_rewritten_is_read_again_from_the_start(
        tmp_path: Path, how: str) -> None:
    """The remembered offset is hostile input too: a trainer restarted with the same log
    name rewrites the file; rows read from an old offset would be the wrong ones."""
    path = tmp_path / "metrics.csv"
    _csv(path, "step,loss\n1,0.5\n2,0.4\n")
    _, _, mark, _ = CsvFollower(path).read()
    if how == "replaced":
        (tmp_path / "new.csv").write_text("step,acc\n1,0.9\n")
        (tmp_path / "new.csv").replace(path)
        want = [("acc", 1, 0.9)]
    elif how == "truncated":
        _csv(path, "step,loss\n1,0.7\n")
        want = [("loss", 1, 0.7)]
    else:  # same inode, longer than before, different bytes before the old offset
        with path.open("r+") as f:
            f.write("step,loss\n7,0.75\n8,0.8\n9,0.9\n")
        want = [("loss", 7, 0.75), ("loss", 8, 0.8), ("loss", 9, 0.9)]
    _, points, _, from_start = CsvFollower(path, mark).read()
    assert (points, from_start) == (want, True)


def test_checkpoints_get_their_summary_and_the_series_each_row_once(
        registry_path: Path, tmp_path: Path) -> None:
    """Rows come from incremental reads, yet each checkpoint's summary is the newest value
    at or before its step, also when one is ingested after a newer one."""
    out, log = _lightning_folder(tmp_path, "epoch,step,loss\n")
    registry = Registry.open(registry_path)
    try:
        watcher = Watcher(registry, parse_model("ai/run"), out)
        for step in range(1, 31):
            _csv(log, f"0,{step},{step / 100}\n", "a")
            if step % 10 == 0:
                torch_ckpt(out / f"epoch=0-step={step}.ckpt")
                _csv(log, f"0,{step + 1},{(step + 1) / 100}\n", "a")  # a row past it
                assert len(watcher.poll()) == 1
        torch_ckpt(out / "epoch=0-step=5.ckpt")  # older than those ingested
        assert len(watcher.poll()) == 1
        manifests = {c.checkpoint: c.metrics for c in
                     lifecycle.list_checkpoints(registry, parse_model("ai/run"))}
    finally:
        registry.close()
    assert manifests == {"epoch-0-step-10": {"loss": 0.1}, "epoch-0-step-20": {"loss": 0.2},
                         "epoch-0-step-30": {"loss": 0.3}, "epoch-0-step-5": {"loss": 0.05}}
    document = _committed_series(registry_path)
    steps = [p["step"] for p in document["series"]["loss"]]
    assert steps == list(range(1, 32))
    assert all(isinstance(MetricPoint.model_validate(p), MetricPoint)
               for p in document["series"]["loss"])



@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_every_metrics_commit_writes_the_bytes_and_summary_the_general_path_writes(
        name: str) -> None:
    """Registry.append_metrics (each journal flush) goes through series_text.merge: the
    same document, byte for byte, and the same latest values, without the parse."""
    data = DOCUMENTS[name]
    points = [p for key, step, value in POINTS
              for p in metric_points({key: value}, step=step, wallclock=5.5)]
    points += metric_points({"blob": b"\x00\x01", "loss": 0.125, "text": "x"}, step=None,
                            wallclock=0.5)  # bytes, no step, an old wallclock
    points += metric_points({"loss": 7.0}, step=2, wallclock=6.0)  # again at a step
    old, old_latest = merge_metric_points(data, PATH, points)
    series = fast.load(PATH, data)
    assert series is not None
    new_latest = fast.merge(series, points)
    assert series.to_bytes() == old.to_bytes()
    assert new_latest == old_latest

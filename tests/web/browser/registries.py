"""The registries the browser tests open: a small real one, and a hostile one.

``demo`` is built through the public API, as a user's scripts build one: two namespaces,
three models with owners and tasks, versions with metric curves (by step and wallclock),
tags moved back and forth (the timeline), a collection, an experiment with checkpoints, one
promoted, and a promotion branch for the review page.

``hostile`` is what a co-user can push: strings that run a script if a page ever puts them
into HTML unescaped, in every field the API lets through (descriptions, metadata keys and
values, owners, tasks), a 10 MB description, and then, written straight into the manifests
with ``git`` as a hostile commit would, tag names the API refuses.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from browser.harness import payloads
from modelbox import ModelBoxClient

T0 = 1_780_000_000.0  # wallclock of the first metric point (2026-05-28)
REVIEW_BRANCH = "promote-yolo"
BIG_DESCRIPTION_BYTES = 10 * 1024 * 1024


def demo(path: Path, *, points: int = 40) -> Path:
    """A small registry in ``path``; returns ``path``."""
    with ModelBoxClient(path, create=True) as client:
        yolo = client.new_model("vision/yolo", owner="alice", task="detection",
                                description="Real-time object detector.")
        resnet = client.new_model("vision/resnet", owner="bob", task="classification",
                                  description="Image classifier.")
        client.new_model("nlp/bert", owner="carol", task="fill-mask",
                         description="A masked language model.")
        for number in range(3):
            version = yolo.new_model_version(description=f"yolo run {number}",
                                             metadata={"lr": 0.01 * (number + 1),
                                                       "epochs": 10 + number},
                                             framework="pytorch")
            for step in range(points):
                loss = 2.0 / (1 + step * (number + 1) / 8)
                # Runs of different speeds: by wallclock the curves separate.
                version.log_metrics({"loss": loss, "accuracy": 1 - loss / 2}, step=step,
                                    wallclock=T0 + step * (number + 2) * 30.0)
        weights = path.parent / f"{path.name}-weights.bin"
        weights.write_bytes(b"weights " * 512)
        resnet.new_model_version(description="baseline", framework="pytorch",
                                 artifacts=[str(weights)])
        yolo.version("v0").tag("staging")
        yolo.version("v1").tag("staging")
        yolo.version("v0").tag("champion")
        yolo.version("v2").tag("staging")
        client.flush()
        zoo = client.new_collection("vision/zoo", owner="alice", description="Picked models",
                                    display_name="Vision zoo")
        zoo.link("vision/yolo:champion")
        experiment = client.new_experiment("vision/yolo-train", owner="alice",
                                           framework="pytorch", task="detection")
        for epoch in range(3):
            experiment.new_checkpoint(epoch, {"loss": 1.0 / (epoch + 1)})
        experiment.checkpoints()[-1].promote("vision/resnet", "v1")
    with ModelBoxClient(path, branch=REVIEW_BRANCH) as review:
        review.model("vision/yolo").version("v2").tag("champion")
    return path


def hostile(path: Path) -> tuple[Path, dict[str, str]]:
    """A registry whose every free-text field carries :func:`payloads`; returns it and where
    to find the hostile objects: ``model`` (hostile strings the API accepts), ``version``,
    ``big`` (the version with the 10 MB description), ``tags`` (a model whose tag names
    were committed past the API)."""
    evil = list(payloads())
    text = " ".join(evil)
    with ModelBoxClient(path, create=True) as client:
        model = client.new_model("evil/xss", owner=evil[1], task=evil[2], description=text,
                                 metadata={p: p for p in evil})
        version = model.new_model_version(description=text, metadata={p: p for p in evil},
                                          unique_tags=["champion"])
        version.log_metrics({"loss": 1.0}, step=0)
        version.log_metrics({"loss": 0.5}, step=1)
        big = model.new_model_version(description=(evil[0] + " ") * (
            BIG_DESCRIPTION_BYTES // (len(evil[0]) + 1)))
        tagged = client.new_model("evil/tags", description="tags from a hostile push")
        target = tagged.new_model_version(unique_tags=["champion"])
    _hostile_tags(path, "evil/tags", target.version, evil)
    return path, {"model": "evil/xss", "version": version.version, "big": big.version,
                  "tags": "evil/tags"}


def _hostile_tags(path: Path, model: str, version: str, evil: list[str]) -> None:
    """Tags the API refuses, committed into the manifests with ``git``, as a co-user's
    hostile push would carry them."""
    tags_file = path / "models" / model / "_tags.json"
    tags = json.loads(tags_file.read_text(encoding="utf-8"))
    table = tags.get("tags", tags)
    for payload in evil:
        table[payload] = version
    tags_file.write_text(json.dumps(tags, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    manifest = path / "models" / model / "_versions" / version / "_version.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    if isinstance(data.get("unique_tags"), list):
        data["unique_tags"] += evil
        manifest.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n",
                            encoding="utf-8")
    subprocess.run(["git", "commit", "-qam", "tag: hostile names"], cwd=path, check=True)

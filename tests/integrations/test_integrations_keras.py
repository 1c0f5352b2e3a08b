"""Keras 3 on the JAX CPU backend trains a tiny model for real through ModelboxCallback."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from modelbox import ModelBoxClient

os.environ["KERAS_BACKEND"] = "jax"  # before keras is imported: the backend is chosen then
keras = pytest.importorskip(
    "keras", reason="Keras is not installed (pip install 'modelbox-registry[keras]' jax)")
pytest.importorskip("jax", reason="JAX is not installed (pip install jax)")
np = pytest.importorskip("numpy")

from modelbox.integrations.keras import ModelboxCallback  # noqa: E402  # after the skips

pytestmark = [
    pytest.mark.frameworks,
    # Keras' own variables under NumPy 2 (keras/src/backend/common/variables.py): theirs to fix.
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]


def _model() -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def test_fit_records_hyperparameters_metrics_events_and_a_loadable_checkpoint_per_epoch(
    registry_path: Path, tmp_path: Path,
) -> None:
    x = np.random.default_rng(0).random((48, 4)).astype("float32")
    y = (x.sum(axis=1) > 2).astype("float32")
    model = _model()
    callback = ModelboxCallback("exp/keras-run", registry_path,
                                hyperparameters={"hidden": 8}, save_dir=tmp_path / "ckpt")
    model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, callbacks=[callback],
              verbose=0)

    with ModelBoxClient(registry_path) as client:
        experiment = client.experiment("exp/keras-run")
        assert experiment.framework == "keras"
        params = experiment.metadata
        assert (params["hidden"], params["epochs"], params["optimizer"]) == (8, 3, "Adam")
        assert params["optimizer.learning_rate"] == pytest.approx(0.01)
        # 36 training rows in batches of 16: 3 steps an epoch
        series = experiment.metrics()
        assert [p["step"] for p in series["loss"]] == list(range(1, 10))
        assert [p["step"] for p in series["val_loss"]] == [3, 6, 9]
        assert [p["value"] for p in series["epoch"]] == [1.0, 2.0, 3.0]
        names = [e.name for e in experiment.events()]
        for event in ("train_start", "epoch_start", "epoch_end", "checkpoint_written",
                      "checkpoint_ingested", "train_end"):
            assert event in names
        assert names.count("epoch_end") == 3 and names.count("checkpoint_ingested") == 3
        checkpoints = experiment.checkpoints()
        assert [(c.id, c.epoch, c.step) for c in checkpoints] == [
            (f"exp/keras-run@epoch-{n}", n, 3 * n) for n in (1, 2, 3)]
        assert checkpoints[-1].metrics()["val_loss"][0]["step"] == 9
        assert all(e.source == "keras" for e in experiment.events())
    assert not list(registry_path.glob(".git/modelbox/callbacks/*"))

    code, _, err = _get(registry_path, "exp/keras-run@epoch-3", tmp_path / "got")
    assert code == 0, err
    loaded = keras.saving.load_model(tmp_path / "got" / "epoch-3.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)


def test_without_a_save_dir_checkpoints_live_only_in_the_registry(
    registry_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkdtemp makes the folder
    x = np.ones((8, 4), dtype="float32")
    callback = ModelboxCallback("exp/keras-tmp", registry_path, save_every=2)
    _model().fit(x, x[:, :1], epochs=4, batch_size=8, callbacks=[callback], verbose=0)
    with ModelBoxClient(registry_path) as client:
        checkpoints = client.experiment("exp/keras-tmp").checkpoints()
    assert [c.epoch for c in checkpoints] == [2, 4]
    assert callback._temporary is None
    assert list(tmp_path.glob("modelbox-keras-*")) == []  # removed after training


def _get(registry: Path, ref: str, out: Path) -> tuple[int, str, str]:
    import subprocess
    import sys

    done = subprocess.run(
        [str(Path(sys.executable).with_name("modelbox")), "get", ref, "-o", str(out), "-q"],
        cwd=registry, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr

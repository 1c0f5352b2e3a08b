"""Keras 3: ``ModelboxCallback``, a ``keras.callbacks.Callback`` (``docs/integrations.md``).

>>> model.fit(x, y, epochs=5, callbacks=[ModelboxCallback("vision/run-17", "registry")])

Each epoch's end saves the model (``model.save``, the ``.keras`` format) every
``save_every`` epochs and uploads it in the background as checkpoint ``EXP@epoch-N``;
batch logs become metric series at the global step, epoch logs (``val_*``) at the step the
epoch ended on.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from modelbox.integrations._run import TrainingRun

__all__ = ["ModelboxCallback"]


class ModelboxCallback(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped
    """Feed experiment ``experiment`` of the registry at ``registry`` from ``fit``.

    ``save_dir``: where the checkpoints are saved as ``filename`` (``{epoch}`` is the
    1-based epoch); by default a temporary folder removed after training, the registry
    being the place they are kept. ``save_every=0`` saves none. ``hyperparameters`` are
    recorded with what ``fit`` and the optimizer were given.
    """

    def __init__(
        self, experiment: str, registry: str | Path = ".", *,
        hyperparameters: Mapping[str, Any] | None = None, save_dir: str | Path | None = None,
        save_every: int = 1, filename: str = "epoch-{epoch}.keras", owner: str = "",
        flush_every: float = 30.0,
    ) -> None:
        super().__init__()
        self.run = TrainingRun(experiment, registry, framework="keras", source="keras",
                               owner=owner, flush_every=flush_every)
        self._hyperparameters = dict(hyperparameters or {})
        self._save_dir = Path(save_dir) if save_dir is not None else None
        self._save_every, self._filename = save_every, filename
        self._temporary: Path | None = None
        self._step = 0

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        params: dict[str, Any] = {}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            config = optimizer.get_config()
            params.update({f"optimizer.{k}": v for k, v in config.items()})
            params["optimizer"] = type(optimizer).__name__
        params.update({k: v for k, v in (self.params or {}).items() if k != "verbose"})
        params.update(self._hyperparameters)
        self.run.start(params)
        self.run.event("train_start")
        if self._save_dir is None and self._save_every:
            self._temporary = Path(tempfile.mkdtemp(prefix="modelbox-keras-"))

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.run.event("epoch_start", epoch=epoch + 1, step=self._step)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._step += 1
        self.run.log_metrics(logs or {}, self._step)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        number = epoch + 1
        values = {**(logs or {}), "epoch": number}
        self.run.log_metrics(values, self._step)
        self.run.event("epoch_end", epoch=number, step=self._step)
        folder = self._save_dir or self._temporary
        if folder is not None and self._save_every and number % self._save_every == 0:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / self._filename.format(epoch=number)
            self.model.save(path)
            self.run.checkpoint([path], f"epoch-{number}", epoch=number, step=self._step,
                                metrics=values)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self.run.event("train_end", step=self._step)
        try:
            self.run.close()
        finally:
            if self._temporary is not None:
                shutil.rmtree(self._temporary, ignore_errors=True)
                self._temporary = None

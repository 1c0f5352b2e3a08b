"""PyTorch Lightning: ``ModelboxCallback``, a ``lightning.pytorch.callbacks.Callback``.

>>> trainer = Trainer(callbacks=[ModelboxCallback("vision/run-17", "registry")])

Every checkpoint file the trainer writes (``ModelCheckpoint``, ``trainer.save_checkpoint``)
is seen as it is written: the callback wraps the strategy's ``CheckpointIO`` and, once its
``save_checkpoint`` returns, uploads the file in the background as checkpoint
``EXP@epoch-E-step-S`` (the epoch and global step the file records). Metrics are what
``self.log`` logged, at the global step; the module's ``hparams`` and the trainer's limits
are the hyperparameters. Only the global-zero process records anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

from modelbox.errors import ModelboxError
from modelbox.integrations._run import TrainingRun

__all__ = ["ModelboxCallback"]

_TRAINER_LIMITS = ("max_epochs", "min_epochs", "max_steps", "accumulate_grad_batches",
                   "gradient_clip_val", "precision", "check_val_every_n_epoch")


class ModelboxCallback(pl.callbacks.Callback):  # type: ignore[misc]  # lightning: untyped here
    """Feed experiment ``experiment`` of the registry at ``registry`` from ``Trainer.fit``;
    ``hyperparameters`` are recorded beside the module's ``hparams``."""

    def __init__(
        self, experiment: str, registry: str | Path = ".", *,
        hyperparameters: Mapping[str, Any] | None = None, owner: str = "",
        flush_every: float = 30.0,
    ) -> None:
        super().__init__()
        self.run = TrainingRun(experiment, registry, framework="pytorch", source="lightning",
                               owner=owner, flush_every=flush_every)
        self._hyperparameters = dict(hyperparameters or {})
        self._seen: dict[str, Any] = {}  # key -> the value object last logged
        self._trainer: pl.Trainer | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or not trainer.is_global_zero:
            return
        self._trainer = trainer
        io = trainer.strategy.checkpoint_io
        if not isinstance(io, _Notifying):
            trainer.strategy.checkpoint_io = _Notifying(io, self)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        params: dict[str, Any] = {k: getattr(trainer, k, None) for k in _TRAINER_LIMITS}
        params["model"] = type(pl_module).__name__
        params.update(dict(pl_module.hparams))
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None:
            params.update(dict(getattr(datamodule, "hparams", {}) or {}))
        params.update(self._hyperparameters)
        self.run.start(params)
        self.run.event("train_start", step=trainer.global_step)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run.started:
            self.run.event("epoch_start", epoch=trainer.current_epoch, step=trainer.global_step)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self._log(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:  # the sanity check's numbers are no measurement
            self._log(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run.started:
            self._log(trainer)
            self.run.event("epoch_end", epoch=trainer.current_epoch, step=trainer.global_step)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run.started:
            self._log(trainer)
            self.run.event("train_end", step=trainer.global_step)
            self.run.close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        if self.run.started:  # what was staged still lands; the trainer's error goes on
            self.run.event("train_failed", step=trainer.global_step,
                           error=type(exception).__name__)
            with contextlib.suppress(ModelboxError):  # the trainer's error is the one to see
                self.run.close()

    def _log(self, trainer: pl.Trainer) -> None:
        """What ``self.log`` logged since the last look: ``logged_metrics`` keeps every
        key's latest value, a new tensor object each time it is logged again."""
        if not self.run.started:
            return
        fresh = {k: v for k, v in trainer.logged_metrics.items() if self._seen.get(k) is not v}
        self._seen.update(fresh)
        self.run.log_metrics(fresh, trainer.global_step)

    def saved(self, path: Path, checkpoint: Mapping[str, Any]) -> None:
        """The trainer wrote ``path`` (called by the wrapped CheckpointIO)."""
        if not self.run.started:
            return
        epoch, step = checkpoint.get("epoch"), checkpoint.get("global_step")
        if not isinstance(epoch, int) or not isinstance(step, int):
            epoch = step = None
        name = f"epoch-{epoch}-step-{step}" if epoch is not None else _segment(path.stem)
        metrics = dict(self._trainer.callback_metrics) if self._trainer is not None else {}
        self.run.checkpoint([path], name, epoch=epoch, step=step, metrics=metrics)


class _Notifying(CheckpointIO):  # type: ignore[misc]  # lightning: untyped here
    """The strategy's CheckpointIO, telling the callback of each file it has written."""

    def __init__(self, inner: CheckpointIO, callback: ModelboxCallback) -> None:
        self.inner, self.callback = inner, callback

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        self.inner.save_checkpoint(checkpoint, path, storage_options=storage_options)
        self.callback.saved(Path(path), checkpoint)

    def load_checkpoint(self, path: Any, map_location: Any | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        loaded: dict[str, Any] = self.inner.load_checkpoint(
            path, map_location=map_location, weights_only=weights_only)
        return loaded

    def remove_checkpoint(self, path: Any) -> None:
        self.inner.remove_checkpoint(path)  # our staged link keeps what still uploads

    def teardown(self) -> None:
        self.inner.teardown()


def _segment(stem: str) -> str:
    """A file stem as a checkpoint name: ``epoch=3-step=40`` -> ``epoch-3-step-40``."""
    clean = "".join(c if c.isalnum() or c in "._-" else "-" for c in stem).strip(".-")
    return clean or "checkpoint"

"""Hugging Face: ``ModelboxCallback``, a ``transformers.TrainerCallback``.

>>> Trainer(model, args, train_dataset=data, callbacks=[ModelboxCallback("nlp/run-17", "reg")])

Each ``checkpoint-N`` folder the Trainer saves (``save_strategy``) is uploaded in the
background, as one folder artifact, to checkpoint ``EXP@checkpoint-N`` (epoch and step from
the Trainer's state), so ``modelbox get EXP@checkpoint-N -o out/`` gives back a folder
``from_pretrained`` and ``resume_from_checkpoint`` read. What the Trainer logs (``on_log``)
becomes metric series at the global step; the ``TrainingArguments`` are the
hyperparameters. Only the main process (``is_world_process_zero``) records anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import transformers
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from modelbox.integrations._run import TrainingRun

__all__ = ["ModelboxCallback"]


class ModelboxCallback(transformers.TrainerCallback):  # type: ignore[misc]  # no stubs here
    """Feed experiment ``experiment`` of the registry at ``registry`` from a ``Trainer``;
    ``hyperparameters`` are recorded beside the ``TrainingArguments``."""

    def __init__(
        self, experiment: str, registry: str | Path = ".", *,
        hyperparameters: Mapping[str, Any] | None = None, owner: str = "",
        flush_every: float = 30.0,
    ) -> None:
        self.run = TrainingRun(experiment, registry, framework="transformers",
                               source="transformers", owner=owner, flush_every=flush_every)
        self._hyperparameters = dict(hyperparameters or {})
        self._metrics: dict[str, Any] = {}  # the latest value of each key, for checkpoints

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        params = dict(args.to_dict())
        model = kwargs.get("model")
        if model is not None:
            params["model"] = type(model).__name__
            count = getattr(model, "num_parameters", None)
            if callable(count):
                params["model.num_parameters"] = int(count())
        params.update(self._hyperparameters)
        self.run.start(params)
        self.run.event("train_start", step=state.global_step)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.run.started:
            self.run.event("epoch_start", epoch=_epoch(state), step=state.global_step)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.run.started:
            self.run.event("epoch_end", epoch=_epoch(state), step=state.global_step)

    def on_log(self, args: Any, state: Any, control: Any,
               logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if self.run.started and logs:
            self._metrics.update(logs)
            self.run.log_metrics(logs, state.global_step)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.run.started:
            return
        name = f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        folder = Path(args.output_dir) / name
        if folder.is_dir():
            self.run.checkpoint([folder], name, epoch=_epoch(state), step=state.global_step,
                                metrics=self._metrics)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.run.started:
            self.run.event("train_end", step=state.global_step)
            self.run.close()


def _epoch(state: Any) -> int | None:
    """The Trainer's epoch (a float: 1.5 is halfway through the second) as completed ones."""
    epoch = getattr(state, "epoch", None)
    return int(epoch) if isinstance(epoch, (int, float)) else None

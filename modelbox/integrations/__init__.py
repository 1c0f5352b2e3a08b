"""Callbacks that feed an experiment from a training loop (``docs/integrations.md``).

One module per framework, each imported only when asked for, so that ``import modelbox``
never imports a framework:

* :mod:`modelbox.integrations.keras` — ``ModelboxCallback``, a ``keras.callbacks.Callback``
* :mod:`modelbox.integrations.lightning` — ``ModelboxCallback``, a
  ``lightning.pytorch.callbacks.Callback``
* :mod:`modelbox.integrations.transformers` — ``ModelboxCallback``, a
  ``transformers.TrainerCallback``

Each creates or reuses the experiment, records the hyperparameters, journals the metrics
with their steps, records epoch and checkpoint events, and uploads every checkpoint the
framework writes as a checkpoint ``EXP@NAME`` in a background thread
(:class:`modelbox.integrations._run.TrainingRun`).
"""

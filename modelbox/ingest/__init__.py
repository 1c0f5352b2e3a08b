"""Checkpoint ingest: ``modelbox experiment watch EXP DIR`` and ``Experiment.watch(dir)``.

:mod:`~modelbox.ingest.formats` says whether a checkpoint file is whole,
:mod:`~modelbox.ingest.layouts` finds the checkpoints of each trainer's folder layout,
:mod:`~modelbox.ingest.metrics` reads the metric files trainers write, and
:mod:`~modelbox.ingest.watcher` ingests each whole checkpoint exactly once.
docs/experiments.md describes the layouts and the choices.
"""

from modelbox.ingest.layouts import MARKER
from modelbox.ingest.watcher import Ingested, Watcher, WatchThread

__all__ = ["MARKER", "Ingested", "WatchThread", "Watcher"]

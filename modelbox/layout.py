"""Where each document lives in the registry repository (format 1).

    .modelbox/registry.json                          registry settings
    models/<namespace...>/<name>/_model.json         a model
    models/<namespace...>/<name>/_tags.json          its unique tags, tag -> version
    models/<namespace...>/<name>/_versions/<v>/_version.json
    .../_metrics.json                                metric series beside a model or version
    .../_artifacts/<path>.json                       one pointer per artifact
    .../_events.json                                 events beside any object
    models/<namespace...>/<name>/_policy.json        labelling and retention rules
    models/<namespace...>/_namespace.json            a namespace's owners (optional)
    experiments/<namespace...>/<name>/_experiment.json            a training run
    experiments/<namespace...>/<name>/_checkpoints/<id>/_checkpoint.json

Entries modelbox owns start with ``_``, which no name segment may start with, so a model
``ai/vision`` and a model ``ai/vision/yolo`` can share a folder without colliding.
"""

from __future__ import annotations

from modelbox.names import ModelName

SETTINGS = ".modelbox/registry.json"
MODELS = "models"
MODEL_FILE = "_model.json"
TAGS_FILE = "_tags.json"
VERSIONS_DIR = "_versions"
VERSION_FILE = "_version.json"
METRICS_FILE = "_metrics.json"
ARTIFACTS_DIR = "_artifacts"
EVENTS_FILE = "_events.json"
POLICY_FILE = "_policy.json"
NAMESPACE_FILE = "_namespace.json"
EXPERIMENTS = "experiments"
EXPERIMENT_FILE = "_experiment.json"
CHECKPOINTS_DIR = "_checkpoints"
CHECKPOINT_FILE = "_checkpoint.json"
TAG_REF_PREFIX = "refs/modelbox/tags/"


def model_dir(model: ModelName) -> str:
    return f"{MODELS}/{model.namespace}/{model.name}"


def model_file(model: ModelName) -> str:
    return f"{model_dir(model)}/{MODEL_FILE}"


def tags_file(model: ModelName) -> str:
    return f"{model_dir(model)}/{TAGS_FILE}"


def versions_dir(model: ModelName) -> str:
    return f"{model_dir(model)}/{VERSIONS_DIR}"


def version_dir(model: ModelName, version: str) -> str:
    return f"{versions_dir(model)}/{version}"


def version_file(model: ModelName, version: str) -> str:
    return f"{version_dir(model, version)}/{VERSION_FILE}"


def tag_ref(model: ModelName, tag: str) -> str:
    return f"{TAG_REF_PREFIX}{model}/{tag}"


def experiment_dir(experiment: ModelName) -> str:
    return f"{EXPERIMENTS}/{experiment.namespace}/{experiment.name}"


def experiment_file(experiment: ModelName) -> str:
    return f"{experiment_dir(experiment)}/{EXPERIMENT_FILE}"


def checkpoint_dir(experiment: ModelName, checkpoint: str) -> str:
    return f"{experiment_dir(experiment)}/{CHECKPOINTS_DIR}/{checkpoint}"


def checkpoint_file(experiment: ModelName, checkpoint: str) -> str:
    return f"{checkpoint_dir(experiment, checkpoint)}/{CHECKPOINT_FILE}"


def policy_file(model: ModelName) -> str:
    return f"{model_dir(model)}/{POLICY_FILE}"


def namespace_dir(namespace: str) -> str:
    return f"{MODELS}/{namespace}"


def namespace_file(namespace: str) -> str:
    """Where a namespace's optional manifest lives (``models/ai/vision/_namespace.json``)."""
    return f"{namespace_dir(namespace)}/{NAMESPACE_FILE}"

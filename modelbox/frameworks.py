"""The frameworks a model version can be built with (kept free of pydantic: CLI start-up)."""

from __future__ import annotations

from enum import Enum


class MLFramework(str, Enum):
    """The framework a model version was built with."""

    UNKNOWN = "unknown"
    PYTORCH = "pytorch"
    TENSORFLOW = "tensorflow"
    KERAS = "keras"
    JAX = "jax"
    SKLEARN = "sklearn"
    XGBOOST = "xgboost"
    LIGHTGBM = "lightgbm"
    ONNX = "onnx"
    TRANSFORMERS = "transformers"
    OTHER = "other"

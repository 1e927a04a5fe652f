"""Model registry, layer maps and the paper's architectures (timm / open_clip) plus offline models."""
from deepnet.models.classifier import Classifier
from deepnet.models.registry import (
    MODELS,
    LayerMap,
    ModelBundle,
    Preprocess,
    PretrainedUnavailableError,
    check_layer_map,
    create_model,
)

__all__ = [
    "MODELS",
    "Classifier",
    "LayerMap",
    "ModelBundle",
    "Preprocess",
    "PretrainedUnavailableError",
    "check_layer_map",
    "create_model",
]

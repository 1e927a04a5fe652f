"""One measurement per model and method, each on a fresh model with random weights and a random
batch: the loop of the ``memory`` and ``throughput`` commands."""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import torch

# measure(bundle, method, inputs, targets) -> the row's measured fields
Measure = Callable[[Any, Any, torch.Tensor, torch.Tensor], dict[str, Any]]


def each_model(models: Sequence[str], methods: Sequence[str], measure: Measure, device: torch.device,
               batch_size: int, num_classes: int, backend: str | None = None, image_size: int | None = None,
               channels_last: bool = False) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Per model, one row per method: ``measure(bundle, method, x, y)`` with a fresh model.

    Parameters
    ----------
    models, methods : sequence of str
        Registered names.
    measure : callable
        ``(bundle, method, x, y) -> dict``: the measured fields of one row.
    device : torch.device
        Where the model and batch are built (``meta``: shapes only).
    batch_size, num_classes : int
        Of the random batch ``x`` (normal, at the model's input size) and labels ``y`` (uniform).
    backend : str, optional
        The CLIP models' backend (default: the registry's).
    image_size : int, optional
        Overrides the model's input size.
    channels_last : bool
        Put the model in channels_last memory format.

    Yields
    ------
    tuple of str and list of dict
        The model name and its rows, each ``model``, ``input_size`` and what ``measure`` returned.
        Every model is built after ``torch.manual_seed(0)``.
    """
    from deepnet.methods import get_method
    from deepnet.models import create_model

    kw: dict[str, Any] = {"device": device}
    if backend:
        kw["backend"] = backend
    if image_size:
        kw["img_size"] = image_size
    for model in models:
        rows = []
        for method in methods:
            torch.manual_seed(0)
            bundle = create_model(model, num_classes=num_classes, pretrained=False, **kw)
            if channels_last:
                bundle.model.to(memory_format=torch.channels_last)
            h, w = bundle.preprocess.input_size
            x = torch.randn(batch_size, 3, h, w, device=device)
            y = torch.randint(0, num_classes, (batch_size,), device=device)
            rows.append({"model": model, "input_size": [h, w], **measure(bundle, get_method(method), x, y)})
            del bundle, x, y
            if device.type == "cuda":
                torch.cuda.empty_cache()
        yield model, rows

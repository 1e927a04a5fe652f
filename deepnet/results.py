"""The software and hardware environment stamped on every deep-net record.

File writing and the git commit live in :mod:`common.io` and :mod:`common.provenance`.
"""
from __future__ import annotations

import platform
from typing import Any

import torch


def environment(device: str | torch.device | None = None) -> dict[str, Any]:
    """Versions and hardware a result was produced with."""
    import timm

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "device": str(device) if device is not None else None,
    }
    if device is not None and torch.device(device).type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
        env["gpu_count"] = torch.cuda.device_count()
    return env

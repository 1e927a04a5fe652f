"""One fine-tuning run's configuration: what the sweep enumerates, what a run directory is named after."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
from typing import Any

# Fields that change how fast or where a run executes but not what it computes (up to numerics);
# they stay out of key() so a sweep resumes on another machine or with more loader workers.
EXECUTION_ONLY = ("num_workers", "device", "data_root")
# Fields that set an option of the run's method (``Method.run_options``); None keeps the method's
# default and is left out of key(), so runs from before these fields existed keep their keys.
METHOD_OPTIONS = ("lp_scaling", "lp_max_iter", "normalize_lp", "use_net_val_mode")


@dataclass
class RunConfig:
    """A single run: model x dataset x method x learning rate x seed, plus training overrides.

    ``epochs=None`` uses the dataset's paper epochs and ``weight_decay=None`` the method's default.
    ``amp`` only takes effect on GPU. ``max_train_steps`` caps optimizer steps (smoke tests);
    the cosine schedule is then laid over the capped step count.

    Method options (None: the method's default; :meth:`deepnet.methods.Method.configure`):
    ``lp_scaling`` (``"per_feature"`` / ``"global"``) and ``lp_max_iter`` (lbfgs iterations per C)
    of the linear probe of LP / LP-FT, ``normalize_lp`` (rescale the probe's head to a fresh
    head's std before fine-tuning), ``use_net_val_mode`` (train with the network in eval mode).
    """

    model: str
    dataset: str
    method: str
    lr: float
    seed: int = 0
    epochs: int | None = None
    batch_size: int = 32
    grad_accum: int = 1
    weight_decay: float | None = None
    data_root: str | None = None
    pretrained: bool = True
    image_size: int | None = None
    amp: bool = True
    grad_checkpointing: bool = False
    channels_last: bool = False
    max_train_steps: int | None = None
    num_workers: int = 2
    device: str = "auto"
    lp_scaling: str | None = None
    lp_max_iter: int | None = None
    normalize_lp: bool | None = None
    use_net_val_mode: bool | None = None

    def __post_init__(self) -> None:
        self.lr = float(self.lr)  # so lr=1 and lr=1.0 give the same key()
        if self.weight_decay is not None:
            self.weight_decay = float(self.weight_decay)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("epochs", "max_train_steps", "image_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0 or None, got {self.weight_decay}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """Build from a dict (e.g. a result record's "config"); unknown keys fail with the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown RunConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    def key(self) -> str:
        """Stable 16-hex-digit hash of everything that determines the result (the sweep run dir name).

        Execution-only fields (num_workers, device, data_root) and method options left at None
        are left out. Floats are hashed by ``repr`` so 1e-4 and 0.0001 agree.
        """
        payload = {k: v for k, v in self.to_dict().items()
                   if k not in EXECUTION_ONLY and not (k in METHOD_OPTIONS and v is None)}
        text = json.dumps(payload, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def run_name(self) -> str:
        """Human-readable run label, e.g. ``clip_vit_b16-living17-sgd-lr0.0003-s0``."""
        return f"{self.model}-{self.dataset}-{self.method}-lr{self.lr:g}-s{self.seed}"

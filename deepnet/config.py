"""One fine-tuning run's configuration: what the sweep enumerates, what a run directory is named after."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field, fields
from typing import Any

# Fields that change how fast or where a run executes but not what it computes (up to numerics);
# they stay out of key() so a sweep resumes on another machine or with more loader workers.
EXECUTION_ONLY = ("num_workers", "device", "data_root", "plugins", "eval_every", "tensorboard", "log_grad_norms")
# Fields that declare a user dataset (deepnet.data.user); None (a registered dataset) stays out of
# key(), so runs on registered datasets keep their keys. With dataset_kind set, metric and augment
# left at None take these defaults.
USER_DATASET = ("dataset_kind", "metric", "augment")
USER_DATASET_DEFAULTS = {"metric": "acc", "augment": "none"}

# Spellings a boolean field accepts besides True/False themselves (TOML and Python).
BOOL_SPELLINGS = {"true": True, "false": False, "True": True, "False": False}
_ACCEPTED = {bool: "a boolean (true/false/True/False)", int: "an integer", float: "a finite number",
             str: "a string"}

# Speed options (measured by deepnet.gpucheck), added after results were recorded: each enters key()
# only when switched on, so configs that leave them off keep their run directories. Off by default,
# since each can change the numbers a run computes: compiled kernels and fused optimizers round
# differently, TF32 matmuls keep 10 mantissa bits, and persistent loader workers keep their random
# streams across epochs (a resumed run then no longer replays an uninterrupted one's augmentations).
SPEED_OPTIONS = ("compile", "fused_optimizer", "tf32", "persistent_workers")

# Fields that set an option of the run's method (``Method.run_options``); None keeps the method's
# default and is left out of key(), so runs from before these fields existed keep their keys.
METHOD_OPTIONS = ("lp_scaling", "lp_max_iter", "normalize_lp", "use_net_val_mode")


@dataclass
class RunConfig:
    """A single run: model x dataset x method x learning rate x seed, plus training overrides.

    ``epochs=None`` uses the dataset's paper epochs and ``weight_decay=None`` the method's default.
    ``amp`` only takes effect on GPU. ``max_train_steps`` caps optimizer steps (smoke tests);
    the cosine schedule is then laid over the capped step count.

    Every field is checked against its declared type at construction, whatever the source (TOML
    ``[run]``, ``--set``, command-line flags, stored records): booleans accept ``True``/``False``
    and the strings ``true``/``false``/``True``/``False``; integers accept integral floats
    (``1e2`` -> 100) and reject others (``2.5``) and strings; floats accept finite numbers.
    A mismatch raises ``ValueError`` naming the field, the value and what is accepted.

    ``dataset_kind`` (``folder``, ``csv``, ``npz``) makes ``dataset`` the name of a user dataset
    read from ``data_root`` with OOD metric ``metric`` and train augmentation ``augment``
    (None: :data:`USER_DATASET_DEFAULTS`); see :func:`deepnet.data.user.register_user_dataset`.
    ``plugins`` are modules (or ``.py`` files) the run imports before building its model and data,
    so names they register resolve in every worker (:mod:`deepnet.plugins`).

    :data:`SPEED_OPTIONS`:
    ``compile`` (``torch.compile`` the model in place), ``fused_optimizer`` (SGD / AdamW fused
    kernels), ``tf32`` (float32 matmuls on TF32 tensor cores; under bf16 autocast only the matmuls
    autocast leaves in float32), ``persistent_workers`` (loader workers kept between epochs).

    Method options (None: the method's default; :meth:`deepnet.methods.Method.configure`):
    ``lp_scaling`` (``"per_feature"`` / ``"global"``) and ``lp_max_iter`` (lbfgs iterations per C)
    of the linear probe of LP / LP-FT, ``normalize_lp`` (rescale the probe's head to a fresh
    head's std before fine-tuning), ``use_net_val_mode`` (train with the network in eval mode).

    ``eval_every`` adds an evaluation every N optimizer steps to the per-epoch ones,
    ``tensorboard`` writes TensorBoard events beside ``metrics.jsonl`` and ``log_grad_norms`` adds
    each optimizer step's gradient norm per layer-map kind (embed, middle, head) to its line
    (:mod:`deepnet.metrics_log`); they only log (the training and its RNG are untouched), so they
    stay out of ``key()``.
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
    dataset_kind: str | None = None
    metric: str | None = None
    augment: str | None = None
    plugins: list[str] = field(default_factory=list)
    compile: bool = False
    fused_optimizer: bool = False
    tf32: bool = False
    persistent_workers: bool = False
    lp_scaling: str | None = None
    lp_max_iter: int | None = None
    normalize_lp: bool | None = None
    use_net_val_mode: bool | None = None
    eval_every: int | None = None
    tensorboard: bool = False
    log_grad_norms: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):  # lr=1 becomes 1.0, so both give the same key()
            setattr(self, f.name, _typed(f.name, getattr(self, f.name), _FIELD_TYPES[f.name]))
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("epochs", "max_train_steps", "image_size", "eval_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0 or None, got {self.weight_decay}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.dataset_kind is None and (self.metric is not None or self.augment is not None):
            raise ValueError("metric and augment are for user datasets (set dataset_kind); "
                             "a registered dataset has its own")
        if self.dataset_kind is not None:
            for name, default in USER_DATASET_DEFAULTS.items():
                if getattr(self, name) is None:
                    setattr(self, name, default)
        self.plugins = list(self.plugins)
        if self.persistent_workers and self.num_workers == 0:
            raise ValueError("persistent_workers needs num_workers >= 1")

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

        Execution-only fields (:data:`EXECUTION_ONLY`), user-dataset fields and method options
        left at None, and speed options that are off are left out, so keys from before those
        fields existed stay valid. Floats are hashed by ``repr`` so 1e-4 and 0.0001 agree.
        """
        payload = {k: v for k, v in self.to_dict().items()
                   if k not in EXECUTION_ONLY
                   and not (k in USER_DATASET + METHOD_OPTIONS and v is None)
                   and (k not in SPEED_OPTIONS or v)}
        text = json.dumps(payload, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def run_name(self) -> str:
        """Human-readable run label, e.g. ``clip_vit_b16-living17-sgd-lr0.0003-s0``."""
        return f"{self.model}-{self.dataset}-{self.method}-lr{self.lr:g}-s{self.seed}"


_FIELD_TYPES = typing.get_type_hints(RunConfig)
_UNCHECKABLE = [name for name, declared in _FIELD_TYPES.items()
                if len(kinds := set(typing.get_args(declared) or (declared,)) - {type(None)}) != 1
                or not kinds <= set(_ACCEPTED)]
if _UNCHECKABLE:  # a new field must have a type _typed can check
    raise TypeError(f"RunConfig fields {_UNCHECKABLE} need one of the types {[t.__name__ for t in _ACCEPTED]} "
                    "(optionally | None)")


def _typed(name: str, value: Any, declared: Any) -> Any:
    """``value`` as the declared type of field ``name`` (see :class:`RunConfig`), else ValueError."""
    if typing.get_origin(declared) is list:
        (item,) = typing.get_args(declared)
        if isinstance(value, (list, tuple)):
            return [_typed(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
        raise ValueError(f"RunConfig field {name!r}: expected a list, each {_ACCEPTED[item]}, got {value!r} "
                         f"({type(value).__name__})")
    options = typing.get_args(declared) or (declared,)
    optional = type(None) in options
    (kind,) = [t for t in options if t is not type(None)]
    if value is None and optional:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in BOOL_SPELLINGS:
            return BOOL_SPELLINGS[value]
    elif kind is int and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is float and not isinstance(value, bool):
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    elif kind is str and isinstance(value, str):
        return value
    accepted = _ACCEPTED[kind] + (" or None" if optional else "")
    raise ValueError(f"RunConfig field {name!r}: expected {accepted}, got {value!r} ({type(value).__name__})")

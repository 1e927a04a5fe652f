"""What a fine-tuning method is: which parameters train, the optimizer and its parameter groups,
the learning-rate schedule, per-epoch hooks and an optional stage before fine-tuning.

The trainer only talks to this interface, so a new method is a new registered object, never a new
branch in the training loop (DomainBed's algorithm registry, timm's optimizer factory).

Paper defaults (SGD paper, Appendix A): torch SGD with momentum 0.9, no dampening, no Nesterov,
weight decay 0; torch AdamW with weight decay 0.01, betas (0.9, 0.999), eps 1e-8; weight decay is
applied to every parameter (torch's default, which the paper keeps); cosine decay of the learning
rate to 0 over all optimizer steps.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import torch
from torch import nn

from deepnet.methods.optimizers import OPTIMIZERS, create_optimizer

if TYPE_CHECKING:
    from deepnet.config import RunConfig
    from deepnet.models.registry import LayerMap

SGD_LR_GRID = (3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
ADAMW_LR_GRID = (3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4)


def _freeze_none(layer_map: "LayerMap") -> set[str]:
    return set()


def freeze_embed(layer_map: "LayerMap") -> set[str]:
    """Appendix A's embedding layer (ViT patch embed [+ its layer norm]; convnet stem + stage 1)."""
    return set(layer_map.embed)


def freeze_embed_not_ln(layer_map: "LayerMap") -> set[str]:
    """The embedding layer without its layer norm (Appendix B ablation)."""
    return set(layer_map.embed) - set(layer_map.embed_norm)


def freeze_stem(layer_map: "LayerMap") -> set[str]:
    """Only the minimal stem (ConvNeXt 4x4 conv; Appendix C, Table 9)."""
    return set(layer_map.stem)


@dataclass(frozen=True)
class Method:
    """A fine-tuning recipe.

    ``frozen`` maps a layer map to the parameter names that never train; ``lr_mult`` maps a
    layer-map group kind (``"embed"``, ``"middle"``, ``"head"``) to a learning-rate multiplier;
    ``lr_grid`` is the paper's sweep and ``weight_decay`` the default when the run gives none.
    ``fine_tunes=False`` means the method has no gradient-training stage (linear probing).
    ``net_val_mode`` keeps the network in eval mode while it trains (BatchNorm statistics frozen,
    dropout off), the LP-FT authors' ``use_net_val_mode``. ``run_options`` maps the
    :class:`~deepnet.config.RunConfig` fields a run may set on this recipe to the fields they set
    (:meth:`configure`).
    """

    name: str
    summary: str
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_grid: tuple[float, ...] = SGD_LR_GRID
    frozen: Callable[["LayerMap"], set[str]] = _freeze_none
    lr_mult: dict[str, float] = field(default_factory=dict)
    fine_tunes: bool = True
    net_val_mode: bool = False
    run_options: ClassVar[dict[str, str]] = {"use_net_val_mode": "net_val_mode"}

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS.names())}")
        bad = set(self.lr_mult) - {"embed", "middle", "head"}
        if bad:
            raise ValueError(f"lr_mult keys must be embed/middle/head, got {sorted(bad)}")

    def configure(self, cfg: "RunConfig") -> "Method":
        """This recipe with the run's options applied: each field of ``cfg`` named in
        ``run_options`` that is not None; an option this method does not take is an error."""
        from deepnet.config import METHOD_OPTIONS

        unknown = [name for name in METHOD_OPTIONS if getattr(cfg, name) is not None and name not in self.run_options]
        if unknown:
            raise ValueError(f"method {self.name!r} does not take {unknown}; it takes {sorted(self.run_options)}")
        changes = {self.run_options[name]: getattr(cfg, name) for name in self.run_options
                   if getattr(cfg, name) is not None}
        return dataclasses.replace(self, **changes) if changes else self

    # --- parameters -------------------------------------------------------------------------
    def frozen_names(self, layer_map: "LayerMap") -> set[str]:
        """Names of the parameters this method never updates."""
        return self.frozen(layer_map)

    def apply_freezing(self, model: nn.Module, layer_map: "LayerMap") -> None:
        """Set ``requires_grad`` from the recipe (frozen params get no grads and no optimizer state)."""
        frozen = self.frozen_names(layer_map)
        for name, p in model.named_parameters():
            p.requires_grad_(name not in frozen)

    def param_groups(self, model: nn.Module, layer_map: "LayerMap", weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups, one per distinct lr multiplier; frozen parameters left out.

        Each group carries ``lr_mult`` (the trainer sets ``lr = base_lr * lr_mult * schedule``).
        """
        frozen = self.frozen_names(layer_map)
        kinds = layer_map.kind_of()
        by_mult: dict[float, list[nn.Parameter]] = {}
        for name, p in model.named_parameters():
            if name in frozen:
                continue
            mult = self.lr_mult.get(kinds[name], 1.0)
            by_mult.setdefault(mult, []).append(p)
        return [
            {"params": params, "lr_mult": mult, "weight_decay": weight_decay}
            for mult, params in sorted(by_mult.items(), reverse=True)
        ]

    def build_optimizer(
        self, model: nn.Module, layer_map: "LayerMap", lr: float, weight_decay: float | None = None,
        fused: bool = False,
    ) -> torch.optim.Optimizer:
        """The recipe's optimizer over its trainable parameters (after :meth:`apply_freezing`),
        built from :data:`~deepnet.methods.optimizers.OPTIMIZERS` (fixed arguments there).

        ``fused`` asks torch's SGD / AdamW for their fused kernels (one launch per step instead of
        torch's default multi-tensor ``foreach`` path; same update, different rounding order);
        LARS and LAMB have none and refuse it.
        """
        wd = self.weight_decay if weight_decay is None else weight_decay
        groups = self.param_groups(model, layer_map, wd)
        for g in groups:
            g["lr"] = lr * g["lr_mult"]
        return create_optimizer(self.optimizer, groups, lr, wd, self.momentum, fused=fused)

    # --- schedule and hooks -----------------------------------------------------------------
    def lr_factor(self, step: int, total_steps: int, epoch: int, epochs: int) -> float:
        """Multiplier on the base learning rate at optimizer ``step`` (0-based): cosine to 0."""
        if total_steps <= 0:
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))

    def on_epoch_start(self, model: nn.Module, layer_map: "LayerMap", epoch: int, epochs: int) -> None:
        """Called before each training epoch (gradual unfreezing changes ``requires_grad`` here)."""

    def prepare(self, model: nn.Module, probe_data: "ProbeData | None") -> dict[str, Any]:
        """Stage before gradient training (LP / LP-FT fit the head here); returns info to record."""
        return {}

    @property
    def needs_probe_data(self) -> bool:
        """Whether :meth:`prepare` needs frozen features of the train and ID-val splits."""
        return False


@dataclass
class ProbeData:
    """Frozen-backbone features for linear probing: train (no augmentation) and ID validation."""

    train_x: Any
    train_y: Any
    val_x: Any
    val_y: Any
    num_classes: int

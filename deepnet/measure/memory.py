"""Training memory of one fine-tuning step, per method (SGD paper Section 2.1 and Table 4).

The paper's argument is byte accounting: fp32 parameters and gradients cost 4 + 4 bytes per
trainable parameter, SGD with momentum adds one state (12 B), AdamW two (16 B), SGD without
momentum none (8 B), and a frozen parameter costs only its 4 bytes. We do not type those numbers:
:func:`measure_training_step` builds the method's real torch optimizer (via
:mod:`deepnet.methods`), takes one real step and sums the bytes of the tensors that exist
afterwards — parameters, ``.grad`` and every tensor in ``optimizer.state``. On a GPU it also
reports ``torch.cuda.max_memory_allocated`` over the step (what Table 4 profiles); elsewhere it
counts the activations autograd saved for the backward pass exactly (saved-tensor hooks), so
``accounted_bytes`` = static tensors + saved activations, which leaves out short-lived temporaries
and allocator overhead. On ``device="meta"`` models (shapes only) the static accounting still holds
and activations are not counted.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from deepnet.methods.base import Method
    from deepnet.models.registry import LayerMap


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes held after one training step of ``method``.

    ``state_bytes`` counts optimizer-state tensors shaped like their parameter (momentum buffers,
    Adam moments); ``scalar_state_bytes`` the rest (e.g. AdamW's per-tensor ``step`` counters).
    ``saved_activation_bytes`` is ``None`` on the meta device; ``cuda_peak_bytes`` is ``None`` off GPU.
    """

    method: str
    device: str
    num_params: int
    num_trainable: int
    param_bytes: int
    trainable_param_bytes: int
    grad_bytes: int
    state_bytes: int
    scalar_state_bytes: int
    saved_activation_bytes: int | None
    cuda_peak_bytes: int | None

    @property
    def static_bytes(self) -> int:
        """Parameters + gradients + all optimizer state."""
        return self.param_bytes + self.grad_bytes + self.state_bytes + self.scalar_state_bytes

    @property
    def bytes_per_trainable_param(self) -> float:
        """(params + grads + per-element states) of the trainable parameters, per trainable parameter:
        8 / 12 / 16 for fp32 SGD without momentum / SGD / AdamW."""
        if self.num_trainable == 0:
            return 0.0
        return (self.trainable_param_bytes + self.grad_bytes + self.state_bytes) / self.num_trainable

    @property
    def accounted_bytes(self) -> int | None:
        """Static bytes plus saved activations (``None`` where activations were not counted)."""
        if self.saved_activation_bytes is None:
            return None
        return self.static_bytes + self.saved_activation_bytes

    @property
    def held_bytes(self) -> int:
        """The most complete figure measured: the CUDA peak, else static + saved activations, else static."""
        return self.cuda_peak_bytes or self.accounted_bytes or self.static_bytes

    def as_dict(self) -> dict:
        """Fields and derived figures, for JSON."""
        return {
            **asdict(self),
            "static_bytes": self.static_bytes,
            "bytes_per_trainable_param": self.bytes_per_trainable_param,
            "accounted_bytes": self.accounted_bytes,
            "held_bytes": self.held_bytes,
        }


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of the tensor's elements (``numel * element_size``)."""
    return t.numel() * t.element_size()


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> tuple[int, int]:
    """(bytes of state tensors shaped like their parameter, bytes of all other state tensors)."""
    per_element = other = 0
    for param, state in optimizer.state.items():
        for value in state.values():
            if not torch.is_tensor(value):
                continue
            if value.shape == param.shape:
                per_element += tensor_bytes(value)
            else:
                other += tensor_bytes(value)
    return per_element, other


class SavedActivationCounter:
    """Sums the bytes of distinct tensors autograd saves for backward, parameters excluded.

    Storages are deduplicated by (data pointer, size), so a tensor saved by several operations
    (or a view of one) counts once.
    """

    def __init__(self, model: nn.Module) -> None:
        self._param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self._seen: set[tuple[int, int]] = set()
        self.bytes = 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key[0] not in self._param_storages and key not in self._seen:
            self._seen.add(key)
            self.bytes += storage.nbytes()
        return t

    def hooks(self) -> torch.autograd.graph.saved_tensors_hooks:
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)


def measure_training_step(
    model: nn.Module,
    layer_map: "LayerMap",
    method: "Method",
    inputs: torch.Tensor,
    targets: torch.Tensor,
    lr: float = 1e-3,
    amp: bool = False,
) -> TrainingMemory:
    """Freeze as ``method`` says, take one optimizer step on (``inputs``, ``targets``) and account memory.

    The model is modified (its ``requires_grad`` flags and one update of its weights); pass a
    model built for the measurement. ``inputs``/``targets`` must be on the model's device. ``amp``
    runs forward and loss under bfloat16 autocast (the bf16 copies autograd saves count as activations).
    """
    device = next(model.parameters()).device
    if inputs.device != device or targets.device != device:
        raise ValueError(f"inputs and targets must be on the model's device {device}; got {inputs.device} and {targets.device}")
    method.apply_freezing(model, layer_map)
    optimizer = method.build_optimizer(model, layer_map, lr)
    optimizer.zero_grad(set_to_none=True)
    model.train()
    on_cuda = device.type == "cuda"
    counter = None if device.type == "meta" else SavedActivationCounter(model)
    if on_cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    saving = counter.hooks() if counter is not None else contextlib.nullcontext()
    with autocast, saving:
        loss = F.cross_entropy(model(inputs), targets)
    loss.backward()
    optimizer.step()
    cuda_peak = None
    if on_cuda:
        torch.cuda.synchronize(device)
        cuda_peak = int(torch.cuda.max_memory_allocated(device))
    params = list(model.parameters())
    state, scalar_state = optimizer_state_bytes(optimizer)
    return TrainingMemory(
        method=method.name,
        device=str(device),
        num_params=sum(p.numel() for p in params),
        num_trainable=sum(p.numel() for p in params if p.requires_grad),
        param_bytes=sum(tensor_bytes(p) for p in params),
        trainable_param_bytes=sum(tensor_bytes(p) for p in params if p.requires_grad),
        grad_bytes=sum(tensor_bytes(p.grad) for p in params if p.grad is not None),
        state_bytes=state,
        scalar_state_bytes=scalar_state,
        saved_activation_bytes=None if counter is None else counter.bytes,
        cuda_peak_bytes=cuda_peak,
    )

"""Training throughput per method: images per second and peak memory of real optimizer steps.

The SGD paper argues freeze-embed and SGD are cheaper than AdamW (Section 2.1, Table 4: memory;
the saving in compute comes from not back-propagating into, or updating, the frozen embedding).
:func:`measure_throughput` times whole training steps — forward, loss, backward, optimizer step —
of the method's real torch optimizer on a fixed batch: ``warmup`` untimed steps (allocator,
cuDNN autotuning), then ``steps`` timed ones, each closed by a device synchronisation so the time
is the device's, not the launch queue's. Images/s = ``batch_size * steps / total seconds``. On a
GPU ``cuda_peak_bytes`` is ``torch.cuda.max_memory_allocated`` over the timed steps (what Table 4
profiles, here at the measured batch size); off GPU it is ``None``.

Data loading is left out on purpose: it is the same for every method, so it would only dilute the
differences the paper is about.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from deepnet.methods.base import Method
    from deepnet.models.registry import LayerMap


@dataclass(frozen=True)
class Throughput:
    """``steps`` timed training steps of ``method`` at ``batch_size`` on ``device``."""

    method: str
    device: str
    batch_size: int
    steps: int
    warmup: int
    amp: bool
    num_trainable: int
    seconds: float
    images_per_s: float
    step_ms_median: float
    step_ms_min: float
    cuda_peak_bytes: int | None

    def as_dict(self) -> dict:
        return asdict(self)


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor,
                  amp: bool = False) -> torch.Tensor:
    """One training step as every measurement here takes it: zero the gradients, forward and
    cross-entropy loss (under bfloat16 autocast when ``amp``), backward, optimizer step.

    Returns the loss (detached). Nothing is synchronised: on a GPU the step may still be running.
    """
    optimizer.zero_grad(set_to_none=True)
    autocast = torch.autocast(inputs.device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    with autocast:
        loss = F.cross_entropy(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss.detach()


def measure_throughput(
    model: nn.Module,
    layer_map: "LayerMap",
    method: "Method",
    inputs: torch.Tensor,
    targets: torch.Tensor,
    steps: int = 10,
    warmup: int = 3,
    amp: bool = False,
    lr: float = 1e-3,
    fused: bool = False,
) -> Throughput:
    """Freeze as ``method`` says, then time ``steps`` training steps after ``warmup`` untimed ones.

    ``amp`` runs forward and loss under bfloat16 autocast (no loss scaling needed for bf16);
    ``fused`` builds the method's fused optimizer (:meth:`~deepnet.methods.base.Method.build_optimizer`).
    The model is modified (freezing flags, weight updates): pass one built for the measurement.
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    device = next(model.parameters()).device
    if device.type == "meta":
        raise ValueError("throughput needs real tensors: use device cpu or cuda, not meta")
    if inputs.device != device or targets.device != device:
        raise ValueError(f"inputs and targets must be on the model's device {device}; got {inputs.device} and {targets.device}")
    method.apply_freezing(model, layer_map)
    optimizer = method.build_optimizer(model, layer_map, lr, fused=fused)
    model.train()
    on_cuda = device.type == "cuda"

    def step() -> None:
        training_step(model, optimizer, inputs, targets, amp)
        if on_cuda:
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    total = sum(times)
    return Throughput(
        method=method.name,
        device=str(device),
        batch_size=int(inputs.shape[0]),
        steps=steps,
        warmup=warmup,
        amp=amp,
        num_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        seconds=total,
        images_per_s=inputs.shape[0] * steps / total,
        step_ms_median=1e3 * statistics.median(times),
        step_ms_min=1e3 * min(times),
        cuda_peak_bytes=int(torch.cuda.max_memory_allocated(device)) if on_cuda else None,
    )


def device_name(device: torch.device) -> str:
    """What the numbers were measured on, in words: the GPU's name, or the CPU and its threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu} (torch threads: {torch.get_num_threads()})"

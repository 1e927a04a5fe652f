"""The measurements of the GPU check, each on the device it is given (a GPU, or the CPU in tiny mode).

* :func:`matmul_rate` — the matrix-product ceiling, measured here: a square product of random
  operands in the training compute's dtype, timed after warm-up (median over repeats);
* :func:`step_flops` — the model FLOPs of one training step, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-add; matrix products, convolutions
  and fused attention, forward and backward);
* :func:`measure_method` — one model x method: the memory of one step at batch 1 (fp32 and bf16,
  :func:`deepnet.measure.memory.measure_training_step`), the FLOPs and the throughput of timed steps
  at the model's batch (:func:`deepnet.measure.throughput.measure_throughput`) and from them the
  model FLOPs utilisation;
* :func:`speed_variant` and :func:`loader_throughput` — the speed options (``torch.compile``, fused
  optimizers, TF32, pinned memory and persistent loader workers) on one model and method;
* :func:`profile_step` — one training step under ``torch.profiler``: a trace, the top operations
  and the step's device time split into kernel categories, with the idle remainder.
"""
from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from common.io import atomic_path, write_text
from deepnet.measure.memory import measure_training_step
from deepnet.measure.throughput import device_name, measure_throughput, training_step
from deepnet.methods import get_method
from deepnet.models import create_model
from deepnet.runtime import float32_matmul_precision

NUM_CLASSES = 10  # the random head's width; cost and memory barely depend on it


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op off GPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release(device: torch.device) -> None:
    """Hand cached GPU memory back between measurements, so each starts from the same allocator state."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def matmul_rate(device: torch.device, n: int, dtype: torch.dtype, repeats: int = 20, warmup: int = 3) -> dict[str, Any]:
    """FLOP/s of an ``n`` x ``n`` x ``n`` matrix product of random ``dtype`` operands on ``device``.

    Each repeat is closed by a device synchronisation; the median repeat gives the rate.

    Parameters
    ----------
    device : torch.device
        Where to multiply.
    n : int
        Matrix size (8192 on a GPU: operands several times the L2 cache, launches far past overhead).
    dtype : torch.dtype
        Operand dtype (``torch.bfloat16`` for the bf16 training compute).
    repeats, warmup : int
        Timed and untimed products.

    Returns
    -------
    dict
        ``n``, ``dtype``, ``ms_median``, ``flops_per_s`` (median) and ``flops_per_s_best``.
    """
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    for _ in range(warmup):
        torch.mm(a, b)
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        times.append(time.perf_counter() - start)
    flops = 2.0 * n**3
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "ms_median": 1e3 * statistics.median(times),
            "flops_per_s": flops / statistics.median(times), "flops_per_s_best": flops / min(times)}


def step_flops(model: torch.nn.Module, layer_map, method_name: str, inputs: torch.Tensor, targets: torch.Tensor,
               amp: bool) -> tuple[int, dict[str, int]]:
    """FLOPs of one training step of ``method_name`` (frozen parameters get no weight gradient).

    Returns
    -------
    tuple
        (total FLOPs, FLOPs per counted operator). The step is taken for real: the model is updated.
    """
    method = get_method(method_name)
    method.apply_freezing(model, layer_map)
    optimizer = method.build_optimizer(model, layer_map, lr=1e-3)
    model.train()
    with FlopCounterMode(display=False) as counter:
        training_step(model, optimizer, inputs, targets, amp)
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    return int(counter.get_total_flops()), by_op


def _batch(bundle, batch_size: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random image batch at the model's input size and random labels."""
    h, w = bundle.preprocess.input_size
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(batch_size, 3, h, w, device=device, generator=g)
    y = torch.randint(0, NUM_CLASSES, (batch_size,), device=device, generator=g)
    return x, y


def measure_method(model_name: str, method_name: str, batch_size: int, device: torch.device, steps: int,
                   warmup: int, matmul_flops_per_s: float | None) -> dict[str, Any]:
    """Memory, FLOPs, throughput and MFU of one model x method, random weights, bf16 autocast.

    One model is built and measured in turn: one step at batch 1 in fp32 and one in bf16 (memory,
    Table 4's micro-batch), one counted step at ``batch_size`` (FLOPs), then ``warmup`` + ``steps``
    timed steps at ``batch_size``. Each memory step builds a fresh optimizer and its peak is reset
    after the previous step's state is gone, so the measurements do not see each other.

    Returns
    -------
    dict
        One row: the throughput fields (``images_per_s``, ``step_ms_median``, ``cuda_peak_bytes``
        at ``batch_size``), ``device_name``, ``flops_per_step``, ``flops_by_op``,
        ``achieved_flops_per_s`` (FLOPs / median step time), ``mfu`` (that over
        ``matmul_flops_per_s``, None without it), and ``memory_fp32`` / ``memory_bf16`` (batch-1
        :class:`~deepnet.measure.memory.TrainingMemory` dicts) with their ``held_bytes`` also as
        ``memory_fp32_held_bytes`` / ``memory_bf16_held_bytes``.
    """
    torch.manual_seed(0)
    bundle = create_model(model_name, num_classes=NUM_CLASSES, pretrained=False, device=device)
    model, layer_map = bundle.model, bundle.layer_map
    method = get_method(method_name)
    one_x, one_y = _batch(bundle, 1, device)
    memory = {f"memory_{label}": measure_training_step(model, layer_map, method, one_x, one_y, amp=amp).as_dict()
              for label, amp in (("fp32", False), ("bf16", True))}
    held = {f"{key}_held_bytes": mem["held_bytes"] for key, mem in memory.items()}  # the CSV's scalar columns
    x, y = _batch(bundle, batch_size, device, seed=1)
    flops, by_op = step_flops(model, layer_map, method_name, x, y, amp=True)
    t = measure_throughput(model, layer_map, method, x, y, steps=steps, warmup=warmup, amp=True)
    achieved = flops / (t.step_ms_median / 1e3)
    del bundle, model, x, y
    release(device)
    return {"model": model_name, "device_name": device_name(device), **t.as_dict(), "input_size": list(one_x.shape[2:]),
            "flops_per_step": flops, "flops_by_op": by_op, "achieved_flops_per_s": achieved,
            "mfu": achieved / matmul_flops_per_s if matmul_flops_per_s else None, **memory, **held}


@dataclass(frozen=True)
class Variant:
    """One speed option setting, measured against ``baseline`` (another variant's name)."""

    name: str
    baseline: str
    amp: bool = True
    fused: bool = False
    tf32: bool = False
    compile: bool = False


def speed_variant(variant: Variant, model_name: str, method_name: str, batch_size: int, device: torch.device,
                  steps: int, warmup: int, compile_backend: str) -> dict[str, Any]:
    """Throughput of ``model_name`` x ``method_name`` with ``variant``'s options, on a fresh model.

    ``wall_s`` is the whole measurement, model build and (for ``compile``) compilation included;
    compilation happens in the warm-up steps, so the timed steps are the compiled model's.
    """
    start = time.perf_counter()
    torch.manual_seed(0)
    bundle = create_model(model_name, num_classes=NUM_CLASSES, pretrained=False, device=device)
    if variant.compile:
        bundle.model.compile(backend=compile_backend)
    x, y = _batch(bundle, batch_size, device, seed=1)
    with float32_matmul_precision(variant.tf32):
        t = measure_throughput(bundle.model, bundle.layer_map, get_method(method_name), x, y, steps=steps,
                               warmup=warmup, amp=variant.amp, fused=variant.fused)
    del bundle, x, y
    if variant.compile:
        torch._dynamo.reset()  # compiled graphs hold the model's weights until reset
    release(device)
    return {"variant": variant.name, "baseline": variant.baseline, "options": _options(variant, compile_backend),
            "model": model_name, "method": method_name, "device_name": device_name(device), **t.as_dict(),
            "wall_s": time.perf_counter() - start}


def _options(variant: Variant, compile_backend: str) -> str:
    parts = ["bf16 autocast" if variant.amp else "fp32"]
    parts += [label for on, label in ((variant.fused, "fused optimizer"), (variant.tf32, "TF32 matmuls"),
                                      (variant.compile, f"torch.compile ({compile_backend})")) if on]
    return ", ".join(parts)


class SyntheticImages(Dataset):
    """``n`` random uint8 images, each returned as a normalised float tensor (the workers' CPU work,
    like a decoded image's ``ToTensor`` + ``Normalize``), with a random label."""

    def __init__(self, n: int, size: tuple[int, int], seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (n, 3, *size), dtype=torch.uint8, generator=g)
        self.labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.images[i].float() / 255.0 - 0.5) / 0.5, self.labels[i]


def loader_throughput(model_name: str, method_name: str, batch_size: int, device: torch.device, workers: int,
                      pin_memory: bool, persistent_workers: bool, batches: int, epochs: int) -> dict[str, Any]:
    """Images/s of training steps fed by a ``DataLoader`` over :class:`SyntheticImages`.

    ``epochs`` passes over ``batches`` batches (bf16 autocast, host-to-device copies non-blocking
    when pinned); worker start-up at each epoch counts, which is what persistent workers save.
    One untimed step first builds the optimizer state and the kernels' caches.
    """
    torch.manual_seed(0)
    bundle = create_model(model_name, num_classes=NUM_CLASSES, pretrained=False, device=device)
    model, layer_map = bundle.model, bundle.layer_map
    method = get_method(method_name)
    method.apply_freezing(model, layer_map)
    optimizer = method.build_optimizer(model, layer_map, lr=1e-3)
    model.train()
    data = SyntheticImages(batch_size * batches, bundle.preprocess.input_size)
    loader = DataLoader(data, batch_size=batch_size, num_workers=workers, pin_memory=pin_memory,
                        persistent_workers=persistent_workers, drop_last=True)
    x, y = _batch(bundle, batch_size, device)
    training_step(model, optimizer, x, y, amp=True)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            training_step(model, optimizer, x.to(device, non_blocking=pin_memory),
                          y.to(device, non_blocking=pin_memory), amp=True)
    synchronize(device)
    seconds = time.perf_counter() - start
    del bundle, model, optimizer, loader
    release(device)
    return {"variant": f"loader: {workers} workers" + ", pinned memory" * pin_memory
            + ", persistent workers" * persistent_workers,
            "model": model_name, "method": method_name, "device_name": device_name(device), "batch_size": batch_size,
            "workers": workers, "pin_memory": pin_memory, "persistent_workers": persistent_workers,
            "epochs": epochs, "batches_per_epoch": batches, "seconds": seconds,
            "images_per_s": batch_size * batches * epochs / seconds}


# Kernel / operator name -> category, first match wins (convolutions before matrix products: cuDNN's
# implicit-GEMM kernels name both). Names are CUDA kernels on a GPU and aten operators on the CPU.
CATEGORIES: tuple[tuple[str, re.Pattern], ...] = tuple((label, re.compile(pattern, re.IGNORECASE)) for label, pattern in (
    ("convolution", r"conv|fprop|dgrad|wgrad"),
    ("attention", r"flash|fmha|attention|sdpa"),
    ("matmul", r"gemm|matmul|nvjet|cutlass|xmma|cublas|^aten::(mm|addmm|bmm|baddbmm|linear)$"),
    ("optimizer", r"foreach|multi_tensor|fused_(sgd|adam)|_fused_|optimizer"),
    ("normalization", r"norm"),
    ("copy", r"memcpy|memset|copy"),
))


def categorize(name: str) -> str:
    """The :data:`CATEGORIES` label of a kernel or operator name; ``"elementwise/other"`` if none matches."""
    return next((label for label, pattern in CATEGORIES if pattern.search(name)), "elementwise/other")


def time_breakdown(events: list[tuple[str, float]], wall_s: float) -> dict[str, Any]:
    """Split the busy time of ``(name, seconds)`` events into categories, with the idle rest of ``wall_s``.

    Returns
    -------
    dict
        ``wall_s``, ``busy_s``, ``idle_s`` (wall minus busy, at least 0), ``seconds`` and ``fraction``
        of the wall time per category, and the ``top`` ten events by time.
    """
    by_category: dict[str, float] = {}
    for name, seconds in events:
        label = categorize(name)
        by_category[label] = by_category.get(label, 0.0) + seconds
    busy = sum(by_category.values())
    top = sorted(events, key=lambda e: -e[1])[:10]
    return {"wall_s": wall_s, "busy_s": busy, "idle_s": max(wall_s - busy, 0.0),
            "seconds": dict(sorted(by_category.items(), key=lambda kv: -kv[1])),
            "fraction": {k: v / wall_s for k, v in sorted(by_category.items(), key=lambda kv: -kv[1])},
            "top": [{"name": n, "seconds": s, "category": categorize(n)} for n, s in top]}


def profile_step(model_name: str, method_name: str, batch_size: int, device: torch.device, warmup: int,
                 out: Path) -> dict[str, Any]:
    """One bf16 training step under ``torch.profiler``; writes ``profile_trace.json`` (Chrome trace)
    and ``profile_ops.txt`` (top operators) to ``out``.

    Returns
    -------
    dict
        :func:`time_breakdown` of the step's kernels (GPU) or operators' self time (CPU), plus
        ``flops_per_step`` and ``matrix_flops_per_s``: the counted FLOPs over the time spent in
        matrix-product, convolution and attention kernels (how fast the matrix work itself ran).
    """
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    bundle = create_model(model_name, num_classes=NUM_CLASSES, pretrained=False, device=device)
    model, layer_map = bundle.model, bundle.layer_map
    x, y = _batch(bundle, batch_size, device, seed=1)
    flops, _ = step_flops(model, layer_map, method_name, x, y, amp=True)
    method = get_method(method_name)
    optimizer = method.build_optimizer(model, layer_map, lr=1e-3)
    for _ in range(warmup):
        training_step(model, optimizer, x, y, amp=True)
    synchronize(device)
    on_cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        training_step(model, optimizer, x, y, amp=True)
        synchronize(device)
        wall = time.perf_counter() - start
    with atomic_path(out / "profile_trace.json") as tmp:
        prof.export_chrome_trace(str(tmp))
    averages = prof.key_averages()
    sort_by = "self_device_time_total" if on_cuda else "self_cpu_time_total"
    write_text(out / "profile_ops.txt", averages.table(sort_by=sort_by, row_limit=30) + "\n")
    kind = torch.autograd.DeviceType.CUDA if on_cuda else torch.autograd.DeviceType.CPU
    seconds: Callable[[Any], float] = ((lambda e: e.self_device_time_total / 1e6) if on_cuda
                                       else (lambda e: e.self_cpu_time_total / 1e6))
    events = [(e.key, seconds(e)) for e in averages if e.device_type == kind and seconds(e) > 0]
    breakdown = time_breakdown(events, wall)
    matrix_s = sum(breakdown["seconds"].get(k, 0.0) for k in ("matmul", "convolution", "attention"))
    del bundle, model, optimizer, prof
    release(device)
    return {"model": model_name, "method": method_name, "batch_size": batch_size,
            "device_name": device_name(device), "timed": "kernels" if on_cuda else "operators (self CPU time)",
            "flops_per_step": flops, "matrix_flops_per_s": flops / matrix_s if matrix_s else None, **breakdown}

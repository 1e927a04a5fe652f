"""The suite's CUDA paths on a real GPU (marker ``cuda``; every test skips without one).

Run by ``python -m pipeline gpucheck`` (stage ``cuda_tests``) or ``pytest -m cuda tests/cuda``.
Tolerances are relative errors ||a - ref|| / ||ref|| against a float64 copy of the same model:
float32 lands near 1e-6 (measured on the CPU: 8e-7 for ViT-B/16 logits and gradients), bf16
autocast near 1e-2 (7e-3 on the CPU; bf16 keeps 8 mantissa bits, and twelve blocks add up).
"""
from __future__ import annotations

import contextlib
import copy
import json
import math

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

# deepnet is imported by the tests that use it: without a GPU every test skips, and the stage
# cuda_tests of `python -m pipeline gpucheck` then collects this file without loading timm.

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CUDA = "cuda"
FP32_RTOL = 1e-4  # float32 without TF32 against float64
BF16_RTOL = 3e-2  # bf16 autocast against float64: about 4x the error measured on the CPU
# measure memory: the CUDA peak lies between the static bytes (parameters, gradients and optimizer
# state are all alive after the step) and the accounted bytes (static + saved activations) plus
# 30% (AdamW's multi-tensor step allocates one parameter-sized temporary: 4 B on its 16 B per
# parameter) plus 64 MiB (cuBLAS workspace, allocator rounding, inputs and logits)
PEAK_OVER_ACCOUNTED = 1.3
PEAK_SLACK_BYTES = 64 * 2**20


@pytest.fixture
def no_tf32():
    """float32 convolutions and matmuls in full float32 (cuDNN uses TF32 for convolutions by default)."""
    saved = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    yield
    torch.backends.cudnn.allow_tf32 = saved[0]
    torch.set_float32_matmul_precision(saved[1])


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.double() - ref).norm() / ref.norm())


def forward_backward(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     autocast: contextlib.AbstractContextManager) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and the concatenated parameter gradient of one cross-entropy step, as float64."""
    model.zero_grad(set_to_none=True)
    with autocast:
        logits = model(x)
    F.cross_entropy(logits.to(x.dtype), y).backward()
    grads = torch.cat([p.grad.reshape(-1).double() for p in model.parameters()])
    assert torch.isfinite(logits).all() and torch.isfinite(grads).all()
    return logits.detach().double(), grads


def model_reference_and_batch(name: str, batch: int, size: int) -> tuple[nn.Module, nn.Module, torch.Tensor, torch.Tensor]:
    """A random-weight 10-class ``name`` on CUDA in train mode, its float64 copy, and a random batch
    of ``batch`` images of ``size`` px with labels."""
    from deepnet.models import create_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=10, pretrained=False, device=CUDA).model.train()
    ref = copy.deepcopy(model).double()
    x = torch.randn(batch, 3, size, size, device=CUDA)
    y = torch.randint(0, 10, (batch,), device=CUDA)
    return model, ref, x, y


def test_bf16_autocast_of_vit_b16_matches_float64(no_tf32):
    model, ref, x, y = model_reference_and_batch("clip_vit_b16", batch=4, size=224)
    ref_logits, ref_grads = forward_backward(ref, x.double(), y, contextlib.nullcontext())
    fp32_logits, fp32_grads = forward_backward(model, x, y, contextlib.nullcontext())
    bf16_logits, bf16_grads = forward_backward(model, x, y, torch.autocast("cuda", dtype=torch.bfloat16))
    assert rel_err(fp32_logits, ref_logits) < FP32_RTOL and rel_err(fp32_grads, ref_grads) < FP32_RTOL
    errors = {"logits": rel_err(bf16_logits, ref_logits), "grads": rel_err(bf16_grads, ref_grads)}
    assert all(e < BF16_RTOL for e in errors.values()), errors
    assert errors["grads"] > rel_err(fp32_grads, ref_grads), "autocast did not run in bf16"


def test_fp16_grad_scaler_skips_overflowing_steps_and_unscales_gradients(no_tf32):
    model, ref, x, y = model_reference_and_batch("small_vit", batch=8, size=28)
    _, ref_grads = forward_backward(ref, x.double(), y, contextlib.nullcontext())
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    fp16 = torch.autocast("cuda", dtype=torch.float16)

    overflow = torch.amp.GradScaler("cuda", init_scale=2.0**40)  # fp16 gradients overflow at this scale
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.zero_grad(set_to_none=True)
    with fp16:
        loss = F.cross_entropy(model(x), y)
    overflow.scale(loss).backward()
    overflow.step(optimizer)
    overflow.update()
    assert overflow.get_scale() == 2.0**39, "an overflowing step must halve the scale"
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters())), "an overflowing step was taken"

    scaler = torch.amp.GradScaler("cuda", init_scale=2.0**12)
    optimizer.zero_grad(set_to_none=True)
    with fp16:
        loss = F.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grads = torch.cat([p.grad.reshape(-1).double() for p in model.parameters()])
    assert rel_err(grads, ref_grads) < BF16_RTOL  # fp16 keeps 10 mantissa bits: closer than bf16
    scaler.step(optimizer)
    scaler.update()
    assert not all(torch.equal(b, p) for b, p in zip(before, model.parameters())), "the scaled step was skipped"


def test_trainer_fp16_path_and_speed_options_run_on_cuda(waterbirds_root, tmp_path, monkeypatch):
    """train() with fp16 + GradScaler (as on a GPU without bf16), then bf16 with the speed options on."""
    from deepnet.train import train
    from tests.helpers import tiny_run_config

    with monkeypatch.context() as m:
        m.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
        fp16 = train(tiny_run_config(waterbirds_root, device=CUDA), tmp_path / "fp16", progress=False)
    fast = train(tiny_run_config(waterbirds_root, device=CUDA, num_workers=2, fused_optimizer=True, tf32=True,
                                 persistent_workers=True), tmp_path / "fast", progress=False)
    assert fp16["env"]["amp"] == "float16" and fast["env"]["amp"] == "bfloat16"
    for record in (fp16, fast):
        assert record["status"] == "ok" and record["env"]["device"].startswith("cuda")
        assert all(math.isfinite(h["train_loss"]) for h in record["history"])
    assert torch.get_float32_matmul_precision() == "highest", "train() left TF32 matmuls on"


def test_channels_last_convnext_matches_contiguous(no_tf32):
    from deepnet.models import create_model

    torch.manual_seed(0)
    model = create_model("convnext_b", num_classes=10, pretrained=False, device=CUDA).model.train()
    last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 224, 224, device=CUDA)
    y = torch.randint(0, 10, (2,), device=CUDA)
    formats = []
    hook = last.backbone.stem[0].register_forward_hook(
        lambda mod, inp, out: formats.append(out.is_contiguous(memory_format=torch.channels_last)))
    ref_logits, ref_grads = forward_backward(model, x, y, contextlib.nullcontext())
    x_last = x.contiguous(memory_format=torch.channels_last)
    logits, grads = forward_backward(last, x_last, y, contextlib.nullcontext())
    hook.remove()
    assert formats == [True], "the stem convolution did not run channels_last"
    assert rel_err(logits, ref_logits) < FP32_RTOL and rel_err(grads, ref_grads) < FP32_RTOL
    bf16_logits, bf16_grads = forward_backward(last, x_last, y, torch.autocast("cuda", dtype=torch.bfloat16))
    assert rel_err(bf16_logits, ref_logits) < BF16_RTOL and rel_err(bf16_grads, ref_grads) < BF16_RTOL


def test_measure_memory_cuda_peak_agrees_with_the_exact_accounting(tmp_path):
    from deepnet.measure.cli import main as measure_main

    methods = ["sgd", "adamw", "sgd_freeze_embed", "sgd_freeze_embed_no_momentum"]
    assert measure_main(["memory", "--models", "clip_vit_b16", "--methods", *methods, "--device", CUDA,
                         "--out", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in (tmp_path / "memory_cuda.jsonl").read_text().splitlines()]
    assert [r["method"] for r in rows] == methods
    for r in rows:
        peak, static, accounted = r["cuda_peak_bytes"], r["static_bytes"], r["accounted_bytes"]
        assert r["device"].startswith("cuda") and r["saved_activation_bytes"] > 0
        assert static <= peak <= PEAK_OVER_ACCOUNTED * accounted + PEAK_SLACK_BYTES, (r["method"], peak, accounted)
    peak = {r["method"]: r["cuda_peak_bytes"] for r in rows}
    assert peak["adamw"] > peak["sgd"] > peak["sgd_freeze_embed_no_momentum"]


def test_ddp_step_over_nccl_at_world_size_one(tmp_path):
    from deepnet.models import create_model

    assert dist.is_nccl_available()
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = create_model("small_vit", num_classes=10, pretrained=False, device=CUDA).model
        single = copy.deepcopy(model)
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[0])
        x = torch.randn(8, 3, 28, 28, device=CUDA)
        y = torch.randint(0, 10, (8,), device=CUDA)
        with ddp.no_sync():  # gradient accumulation as the trainer does it: no reduction until the last
            F.cross_entropy(ddp(x[:4]), y[:4]).backward()
        F.cross_entropy(ddp(x[4:]), y[4:]).backward()
        for half in (slice(0, 4), slice(4, 8)):
            F.cross_entropy(single(x[half]), y[half]).backward()
        for (name, p), q in zip(model.named_parameters(), single.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, msg=name)
        torch.optim.SGD(ddp.parameters(), lr=1e-2).step()
        total = torch.tensor([3.0], device=CUDA)
        dist.all_reduce(total)
        assert dist.get_backend() == "nccl" and total.item() == 3.0
    finally:
        dist.destroy_process_group()

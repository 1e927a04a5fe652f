"""Measurements on tiny models with random weights: eq. 3.1 grad norms by hand, memory accounting
against the optimizer's real state, feature distortion."""
from __future__ import annotations

import copy
import math

import pytest
import timm
import torch
from torch import nn
from torch.nn import functional as F

from deepnet.measure import feature_change, feature_distortion, layer_grad_norms, measure_training_step
from deepnet.methods import get_method
from deepnet.models.classifier import Classifier
from deepnet.models.registry import LayerMap, check_layer_map
from deepnet.models.vit import timm_vit_layer_map
from deepnet.run_files import CHECKPOINT
from tests.helpers import write_mnist_subset

RTOL = 1e-6  # float32 gradients summed in float64: agreement to ~1e-7 relative expected


def tiny_vit(device: str = "cpu", seed: int = 0) -> tuple[Classifier, LayerMap]:
    """A 2-block CLIP-style ViT (pre-norm after the patch embedding) at 32 px."""
    torch.manual_seed(seed)
    with torch.device(device):
        backbone = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2,
                                     pre_norm=True, num_classes=0)
        model = Classifier(backbone, backbone.num_features, 3)
    layer_map = timm_vit_layer_map(model, depth=2)
    check_layer_map(model, layer_map)
    return model, layer_map


def batches(n: int, seed: int = 1, size: int = 4) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, 32, 32, generator=g), torch.randint(0, 3, (size,), generator=g),
             torch.full((size,), -1)) for _ in range(n)]


def test_grad_norms_match_eq_3_1_by_hand():
    model, lm = tiny_vit()
    data = batches(3)
    got = layer_grad_norms(model, lm, data)
    params = dict(model.named_parameters())
    per_batch = []
    for x, y, _ in data:
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        per_batch.append({label: math.sqrt(sum(float((params[n].grad.double() ** 2).sum()) for n in names))
                          for label, names in lm.groups()})
    assert [r.label for r in got] == [label for label, _ in lm.groups()]
    for r, (label, names) in zip(got, lm.groups()):
        expected = sum(b[label] for b in per_batch) / len(per_batch)
        assert r.grad_norm == pytest.approx(expected, rel=RTOL)
        n = sum(params[k].numel() for k in names)
        p_norm = math.sqrt(sum(float((params[k].detach().double() ** 2).sum()) for k in names))
        assert r.num_params == n and r.param_norm == pytest.approx(p_norm, rel=RTOL)
        assert r.grad_over_sqrt_numel == pytest.approx(expected / math.sqrt(n), rel=RTOL)
        if p_norm > 0:
            assert r.grad_over_param_norm == pytest.approx(expected / p_norm, rel=RTOL)
        assert r.kind == ("embed" if label == "embed" else "head" if label == "head" else "middle")
        assert r.num_batches == 3


def test_grad_norms_leave_out_frozen_parameters_and_touch_nothing():
    model, lm = tiny_vit()
    model.eval()
    get_method("sgd_freeze_embed").apply_freezing(model, lm)
    got = layer_grad_norms(model, lm, batches(5), max_batches=2)
    assert "embed" not in [r.label for r in got]
    assert all(r.grad_norm > 0 and r.num_batches == 2 for r in got)
    assert all(p.grad is None for p in model.parameters()) and not model.training
    # partly frozen group: only its trainable parameters count
    get_method("sgd_freeze_embed_not_ln").apply_freezing(model, lm)
    embed = next(r for r in layer_grad_norms(model, lm, batches(1)) if r.label == "embed")
    assert embed.num_params == 2 * model.backbone.embed_dim  # norm_pre weight + bias only


@pytest.mark.parametrize("method,states_per_param", [
    ("sgd_no_momentum", 0), ("sgd", 1), ("adamw", 2),
    ("sgd_freeze_embed", 1), ("sgd_freeze_embed_no_momentum", 0), ("adamw_freeze_embed", 2),
])
def test_memory_accounting_matches_optimizer_state(method, states_per_param):
    """Section 2.1: fp32 params + grads + states = 8 / 12 / 16 bytes per trainable parameter;
    frozen parameters carry neither gradient nor state."""
    model, lm = tiny_vit()
    x, y, _ = batches(1)[0]
    mem = measure_training_step(model, lm, get_method(method), x, y, lr=1e-3)
    params = dict(model.named_parameters())
    frozen = set(lm.embed) if "freeze_embed" in method else set()
    n_trainable = sum(p.numel() for k, p in params.items() if k not in frozen)
    assert mem.num_params == sum(p.numel() for p in params.values())
    assert mem.num_trainable == n_trainable
    assert mem.param_bytes == 4 * mem.num_params
    assert mem.grad_bytes == 4 * n_trainable
    assert mem.state_bytes == 4 * states_per_param * n_trainable
    n_tensors = len(params) - len(frozen)
    assert mem.scalar_state_bytes == (4 * n_tensors if method.startswith("adamw") else 0)  # AdamW step counters
    assert mem.bytes_per_trainable_param == pytest.approx(8 + 4 * states_per_param, rel=1e-12)
    assert mem.saved_activation_bytes > 0 and mem.cuda_peak_bytes is None
    assert mem.accounted_bytes == mem.static_bytes + mem.saved_activation_bytes


def test_meta_device_gives_the_same_static_accounting_without_memory():
    on_cpu, on_meta = (measure_training_step(*tiny_vit(dev), get_method("adamw"),
                                             torch.randn(2, 3, 32, 32, device=dev),
                                             torch.zeros(2, dtype=torch.long, device=dev)) for dev in ("cpu", "meta"))
    assert on_meta.static_bytes == on_cpu.static_bytes
    assert on_meta.saved_activation_bytes is None and on_meta.accounted_bytes is None


def test_saved_activations_of_a_linear_classifier_by_hand():
    """head(x) saves x (B*d*4 B); cross-entropy saves log-softmax (B*k*4 B) and the int64 targets."""
    b, d, k = 5, 6, 4
    model = Classifier(nn.Identity(), d, k)
    lm = LayerMap(embed=[], embed_norm=[], middle=[], head=["head.weight", "head.bias"], stem=[])
    mem = measure_training_step(model, lm, get_method("sgd"), torch.randn(b, d), torch.arange(b) % k)
    floor = b * d * 4 + b * k * 4
    assert floor <= mem.saved_activation_bytes <= floor + b * 8 + 8


def test_memory_rejects_inputs_on_another_device():
    model, lm = tiny_vit()
    with pytest.raises(ValueError, match="device"):
        measure_training_step(model, lm, get_method("sgd"), torch.randn(1, 3, 32, 32, device="meta"),
                              torch.zeros(1, dtype=torch.long))


def test_distortion_is_zero_for_an_unchanged_model_and_ignores_the_head():
    model, _ = tiny_vit()
    tuned = copy.deepcopy(model)
    with torch.no_grad():
        tuned.head.weight.add_(1.0)  # the head is not part of the features
    model.train()
    tuned.eval()
    stats = feature_distortion(model, tuned, {"id_test": batches(2), "ood_test": batches(1, seed=7)})
    assert stats["id_test"].n == 8 and stats["ood_test"].n == 4
    for s in stats.values():
        assert s.mean == 0.0 and s.median == 0.0 and s.relative_mean == 0.0
    assert model.training and not tuned.training  # modes restored


def test_distortion_of_a_shifted_linear_backbone_by_hand():
    """phi(x) = W x + b; shifting b by delta moves every example's feature by exactly ||delta||."""
    torch.manual_seed(0)
    model_0 = Classifier(nn.Linear(6, 5), 5, 2)
    model_ft = copy.deepcopy(model_0)
    delta = torch.tensor([3.0, 0.0, 4.0, 0.0, 0.0])
    with torch.no_grad():
        model_ft.backbone.bias.add_(delta)
    x = torch.randn(7, 6)
    change, norm_0 = feature_change(model_0, model_ft, [(x[:4],), (x[4:],)])
    assert torch.allclose(change, torch.full((7,), 5.0, dtype=torch.float64), rtol=1e-6)
    assert torch.allclose(norm_0, model_0.backbone(x).double().norm(dim=1), rtol=1e-6)
    stats = feature_distortion(model_0, model_ft, {"ood": [(x,)]})["ood"]
    assert stats.mean == pytest.approx(5.0, rel=1e-6) and stats.std == pytest.approx(0.0, abs=1e-6)
    assert stats.relative_mean == pytest.approx(float((5.0 / norm_0).mean()), rel=1e-6)


def _jsonl(path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_memory_cli_prints_and_writes_the_table(tmp_path, capsys):
    from deepnet.measure.cli import main
    from common.io import read_json

    main(["memory", "--models", "small_vit", "--methods", "sgd", "adamw", "--device", "cpu",
          "--batch-size", "2", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert "small_vit" in text and "adamw" in text
    rows = _jsonl(tmp_path / "memory_cpu.jsonl")
    assert [r["method"] for r in rows] == ["sgd", "adamw"]
    assert [r["bytes_per_trainable_param"] for r in rows] == [12.0, 16.0]
    assert all(r["saved_activation_bytes"] > 0 and r["input_size"] == [28, 28] for r in rows)
    summary = read_json(tmp_path / "memory_cpu_summary.json")
    ratios = summary["adamw_over_this"]["small_vit"]
    assert ratios["adamw"] == 1.0 and ratios["sgd"] > 1.0
    assert summary["device"] == "cpu" and summary["command"].startswith("python -m deepnet.measure memory")
    assert (tmp_path / "memory_cpu.csv").read_text().splitlines()[0].startswith("accounted_bytes,batch_size")


def test_memory_cli_amp_saves_bf16_activations(tmp_path):
    from deepnet.measure.cli import main
    from common.io import read_json

    for amp in ([], ["--amp"]):
        main(["memory", "--models", "small_vit", "--methods", "sgd", "--device", "cpu", "--batch-size", "2",
              "--out", str(tmp_path / ("bf16" if amp else "fp32")), *amp])
    (fp32,), (bf16,) = (_jsonl(tmp_path / d / "memory_cpu.jsonl") for d in ("fp32", "bf16"))
    assert read_json(tmp_path / "bf16" / "memory_cpu_summary.json")["amp"] is True
    assert bf16["static_bytes"] == fp32["static_bytes"]  # fp32 parameters, gradients and state either way
    assert bf16["saved_activation_bytes"] != fp32["saved_activation_bytes"]
    assert bf16["held_bytes"] == bf16["accounted_bytes"] == bf16["static_bytes"] + bf16["saved_activation_bytes"]


def test_memory_cli_auto_device_without_gpu_is_meta(tmp_path, monkeypatch):
    from deepnet.measure.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    main(["memory", "--models", "effnet_lite0", "--methods", "sgd", "--device", "auto", "--out", str(tmp_path)])
    (row,) = _jsonl(tmp_path / "memory_meta.jsonl")
    assert row["device"] == "meta" and row["saved_activation_bytes"] is None and row["static_bytes"] > 0


def _heights(ax) -> list[float]:
    return [bar.get_height() for bar in ax.patches]


def _legend(ax) -> list[str]:
    return ax.get_legend_handles_labels()[1]


def test_distortion_cli_compares_run_checkpoints_with_the_pretrained_init(tmp_path, capsys, monkeypatch, saved_figures):
    """Two hand-made run checkpoints of effnet_lite0 (real weights ship offline, so DEEPNET_OFFLINE=1
    keeps them) on ``digits``: the unchanged one has zero distortion on every split, the one with a
    shifted BN bias does not."""
    from deepnet.config import RunConfig
    from deepnet.data import dataset_info
    from deepnet.measure.cli import main
    from deepnet.models import create_model

    monkeypatch.setenv("DEEPNET_OFFLINE", "1")
    state = create_model("effnet_lite0", num_classes=10, pretrained=True).model.state_dict()
    shifted = {k: v.clone() for k, v in state.items()}
    bias = next(k for k in shifted if k.startswith("backbone.") and k.endswith("bias") and shifted[k].ndim == 1)
    shifted[bias] += 0.5
    runs = []
    for method, weights in [("sgd", state), ("lp_ft", shifted)]:
        cfg = RunConfig(model="effnet_lite0", dataset="digits", method=method, lr=1e-3, image_size=32, num_workers=0)
        run_dir = tmp_path / method
        run_dir.mkdir()
        torch.save({"config": cfg.to_dict(), "model": weights}, run_dir / CHECKPOINT)
        runs.append(str(run_dir))
    out = tmp_path / "out"
    main(["distortion", "--runs", *runs, "--eval-batches", "1", "--eval-batch-size", "8", "--out", str(out)])
    assert "lp_ft" in capsys.readouterr().out
    rows = _jsonl(out / "distortion.jsonl")
    unchanged = [r for r in rows if r["run"] == runs[0]]
    moved = [r for r in rows if r["run"] == runs[1]]
    assert [r["split"] for r in unchanged] == ["id_test", *dataset_info("digits").ood_splits]
    assert all(r["mean"] == 0.0 and r["n"] == 8 for r in unchanged)
    assert moved and all(r["mean"] > 0.0 for r in moved)
    assert (out / "distortion.png").exists()
    (ax,) = saved_figures[-1].axes
    assert _heights(ax) == [r["mean"] for r in unchanged + moved]  # one bar per run and split
    assert _legend(ax) == ["FT", "LP-FT"] and [t.get_text() for t in ax.get_xticklabels()] == [r["split"] for r in moved]


def test_distortion_cli_refuses_random_weight_runs(tmp_path):
    from deepnet.config import RunConfig
    from deepnet.measure.cli import main

    cfg = RunConfig(model="small_vit", dataset="digits", method="sgd", lr=1e-3, pretrained=False, num_workers=0)
    torch.save({"config": cfg.to_dict(), "model": {}}, tmp_path / CHECKPOINT)
    with pytest.raises(SystemExit, match="pretrained"):
        main(["distortion", "--runs", str(tmp_path), "--out", str(tmp_path / "out")])


def test_throughput_times_real_steps_and_keeps_the_frozen_embedding():
    from deepnet.measure.throughput import measure_throughput

    x, y, _ = batches(1, size=4)[0]
    model, layer_map = tiny_vit()
    params = dict(model.named_parameters())
    embed_before = {n: params[n].detach().clone() for n in layer_map.embed}
    frozen = measure_throughput(model, layer_map, get_method("sgd_freeze_embed"), x, y, steps=2, warmup=1)
    assert embed_before and all(torch.equal(v, params[n]) for n, v in embed_before.items())
    assert not torch.equal(params["head.weight"], tiny_vit()[0].head.weight)  # the rest was trained
    model, layer_map = tiny_vit()
    full = measure_throughput(model, layer_map, get_method("adamw"), x, y, steps=2, warmup=1)
    assert frozen.num_trainable < full.num_trainable == sum(p.numel() for p in model.parameters())
    for t in (frozen, full):
        assert t.images_per_s == pytest.approx(4 * 2 / t.seconds) and t.step_ms_min <= t.step_ms_median
        assert t.cuda_peak_bytes is None and t.device == "cpu"
    with pytest.raises(ValueError, match="steps"):
        measure_throughput(model, layer_map, get_method("sgd"), x, y, steps=0)
    meta_model, meta_map = tiny_vit(device="meta")
    with pytest.raises(ValueError, match="meta"):
        measure_throughput(meta_model, meta_map, get_method("sgd"), x.to("meta"), y.to("meta"))


def test_throughput_counts_every_optimizer_step(monkeypatch):
    from deepnet.measure import throughput

    steps_taken = []
    real_build = get_method("adamw").build_optimizer

    def counting_build(model, layer_map, lr, **kw):
        optimizer = real_build(model, layer_map, lr, **kw)
        optimizer.register_step_post_hook(lambda *args: steps_taken.append(1))
        return optimizer

    method = get_method("adamw")
    monkeypatch.setattr(type(method), "build_optimizer", lambda self, m, lm, lr, **kw: counting_build(m, lm, lr, **kw))
    model, layer_map = tiny_vit()
    x, y, _ = batches(1, size=2)[0]
    throughput.measure_throughput(model, layer_map, method, x, y, steps=3, warmup=2)
    assert len(steps_taken) == 5


def test_throughput_cli_names_the_device_and_writes_the_table(tmp_path, capsys, saved_figures):
    from deepnet.measure.cli import main
    from common.io import read_json

    main(["throughput", "--models", "small_resnet", "--methods", "sgd", "sgd_freeze_embed", "--device", "cpu",
          "--batch-size", "2", "--steps", "1", "--warmup", "0", "--out", str(tmp_path)])
    assert "images/s" in capsys.readouterr().out
    rows = _jsonl(tmp_path / "throughput_cpu.jsonl")
    assert [r["method"] for r in rows] == ["sgd", "sgd_freeze_embed"]
    assert all(r["device_name"].startswith("CPU") and r["images_per_s"] > 0 for r in rows)
    summary = read_json(tmp_path / "throughput_cpu_summary.json")
    assert summary["device_name"] == rows[0]["device_name"] and set(summary["images_per_s"]) == {
        "small_resnet/sgd", "small_resnet/sgd_freeze_embed"}
    assert (tmp_path / "throughput_cpu.png").exists()
    (ax,) = saved_figures[-1].axes
    assert _heights(ax) == [r["images_per_s"] for r in rows] and _legend(ax) == ["sgd", "sgd_freeze_embed"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["small_resnet"]
    with pytest.raises(SystemExit):
        main(["throughput", "--models", "small_resnet", "--device", "meta", "--out", str(tmp_path)])


def test_probe_head_stats_match_the_linear_backbone_gradient_by_hand():
    from deepnet.measure.probe_head import probe_head_stats

    torch.manual_seed(0)
    backbone = nn.Linear(5, 4, bias=False)
    model = Classifier(backbone, 4, 3)
    with torch.no_grad():
        model.head.weight.mul_(100.0)  # a large probe head: the backbone gradient grows with it
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    stats = probe_head_stats(model, x, y)
    logits = model.head(backbone(x)).detach()
    residual = (logits.softmax(1) - F.one_hot(y, 3).float()) / len(y)  # d(mean cross-entropy) / d logits
    grad_backbone = model.head.weight.detach().T @ residual.T @ x  # d loss / d B for features B x
    assert stats["backbone_grad_norm_train"] == pytest.approx(grad_backbone.norm().item(), rel=1e-5)
    assert stats["head_weight_norm"] == pytest.approx(model.head.weight.norm().item())
    assert stats["batch_loss_eval"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert stats["batch_loss_train"] == pytest.approx(stats["batch_loss_eval"], rel=1e-6)  # no BatchNorm here
    assert not model.training and all(p.grad is None for p in model.parameters())


def test_probehead_cli_fits_each_scaling_on_real_features(tmp_path, capsys, monkeypatch):
    import functools

    from deepnet.measure.cli import main
    from deepnet.methods import linear_probe

    # one C instead of the paper's 50, and a short lbfgs: the fits, not the grid or convergence, are under test
    monkeypatch.setattr(linear_probe, "fit_linear_probe",
                        functools.partial(linear_probe.fit_linear_probe, c_grid=(1.0,), max_iter=50))
    # 500 real MNIST images (train 400 / id_val 50) instead of 5,000: a probe above chance needs no more
    root = write_mnist_subset(tmp_path / "data")
    main(["probehead", "--model", "small_resnet_fmnist_sgd", "--dataset", "digits", "--image-size", "28",
          "--batch-size", "16", "--data-root", str(root), "--out", str(tmp_path)])
    assert "backbone grad norm" in capsys.readouterr().out
    rows = _jsonl(tmp_path / "probehead_small_resnet_fmnist_sgd_digits.jsonl")
    assert [r["scaling"] for r in rows] == ["per_feature", "global"]
    assert all(r["C"] == 1.0 and 0.1 < r["probe_id_val"] <= 1.0 for r in rows)
    assert all(r["head_weight_norm"] > 0 and r["backbone_grad_norm_train"] > 0 for r in rows)
    assert rows[0]["head_weight_norm"] != rows[1]["head_weight_norm"]

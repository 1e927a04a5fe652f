"""Method recipes: what trains, optimizer settings, lr multipliers, schedules, linear probing."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepnet.methods import (
    ADAMW_LR_GRID,
    METHODS,
    SGD_LR_GRID,
    Method,
    ProbeData,
    fit_linear_probe,
    get_method,
    gradual_lr_factor,
    num_trainable_groups,
)
from deepnet.models import create_model

CONTRACT_METHODS = [
    "sgd", "sgd_no_momentum", "sgd_wd", "adamw", "sgd_freeze_embed", "sgd_freeze_embed_no_momentum",
    "adamw_freeze_embed", "sgd_freeze_embed_not_ln", "sgd_embed_lr_div5", "sgd_freeze_stem", "lars", "lamb",
    "gradual_unfreeze", "lp", "lp_ft",
]
FINE_TUNING = [m for m in METHODS.names() if METHODS.get(m).fine_tunes]


def test_every_contract_method_is_registered():
    assert set(CONTRACT_METHODS) <= set(METHODS.names())
    with pytest.raises(KeyError, match="known: adamw"):
        get_method("sgd_typo")


def test_paper_grids_and_defaults():
    assert get_method("sgd").lr_grid == SGD_LR_GRID == (3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    assert get_method("adamw").lr_grid == ADAMW_LR_GRID == (3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4)
    assert get_method("lp_ft").lr_grid == pytest.approx([lr / 10 for lr in SGD_LR_GRID])
    assert get_method("adamw").weight_decay == 0.01 and get_method("sgd").weight_decay == 0.0


def _small_vit(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("small_vit", num_classes=3, pretrained=False)


def _expected_frozen(name: str, lm) -> set[str]:
    return {
        "sgd_freeze_embed": set(lm.embed), "sgd_freeze_embed_no_momentum": set(lm.embed),
        "adamw_freeze_embed": set(lm.embed), "lp_ft_sgd_freeze_embed": set(lm.embed),
        "sgd_freeze_embed_not_ln": set(lm.embed) - set(lm.embed_norm), "sgd_freeze_stem": set(lm.stem),
    }.get(name, set())


@pytest.mark.parametrize("name", FINE_TUNING)
def test_frozen_parameters_stay_bit_identical_and_the_rest_move(name):
    bundle = _small_vit()
    model, lm, method = bundle.model, bundle.layer_map, get_method(name)
    method.apply_freezing(model, lm)
    method.on_epoch_start(model, lm, epoch=2, epochs=3)  # gradual unfreezing: everything trains in the last epoch
    opt = method.build_optimizer(model, lm, lr=1e-2 if method.optimizer != "adamw" else 1e-3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, y = torch.randn(4, 3, 28, 28), torch.tensor([0, 1, 2, 0])
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    frozen = _expected_frozen(name, lm)
    assert frozen == method.frozen_names(lm)
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, before[n]), f"{name}: frozen {n} changed"
            assert not p.requires_grad
        else:
            assert not torch.equal(p, before[n]), f"{name}: trainable {n} did not change"
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert all((id(p) in in_opt) == (n not in frozen) for n, p in model.named_parameters())


@pytest.mark.parametrize("model_name", ["sup_vit_b16", "clip_vit_b16", "convnext_b", "bit_resnet50"])
def test_every_method_builds_on_paper_layer_maps(model_name):
    bundle = create_model(model_name, num_classes=5, pretrained=False, device="meta")
    lm = bundle.layer_map
    n_total = sum(p.numel() for p in bundle.model.parameters())
    sizes = dict((n, p.numel()) for n, p in bundle.model.named_parameters())
    for name in FINE_TUNING:
        method = get_method(name)
        opt = method.build_optimizer(bundle.model, lm, lr=1e-3)
        n_opt = sum(p.numel() for g in opt.param_groups for p in g["params"])
        assert n_opt == n_total - sum(sizes[n] for n in method.frozen_names(lm)), name
    frac = sum(sizes[n] for n in lm.embed) / n_total
    assert 0 < frac < 0.02, f"{model_name}: embed is {frac:.2%} of parameters"
    if model_name == "clip_vit_b16":  # the CLIP pre-norm is frozen by freeze-embed but not by the ablation
        assert lm.embed_norm and set(lm.embed_norm) <= get_method("sgd_freeze_embed").frozen_names(lm)
        assert not set(lm.embed_norm) & get_method("sgd_freeze_embed_not_ln").frozen_names(lm)


def test_real_vit_b16_freeze_embed_step_keeps_patch_embedding():
    torch.manual_seed(0)
    # the full ViT-B/16 (12 blocks of width 768) on a 32 px image: 4 patches make the step quick
    bundle = create_model("sup_vit_b16", num_classes=2, pretrained=False, img_size=32)
    model, lm, method = bundle.model, bundle.layer_map, get_method("sgd_freeze_embed")
    method.apply_freezing(model, lm)
    opt = method.build_optimizer(model, lm, lr=1e-2)
    params = dict(model.named_parameters())
    before = {n: params[n].detach().clone() for n in (*lm.embed, *lm.head)}
    torch.nn.functional.cross_entropy(model(torch.randn(1, 3, 32, 32)), torch.tensor([1])).backward()
    opt.step()
    assert all(torch.equal(params[n], before[n]) for n in lm.embed)
    assert all(not torch.equal(params[n], before[n]) for n in lm.head)


def test_embed_lr_multiplier_and_optimizer_hyperparameters():
    bundle = _small_vit()
    lm = bundle.layer_map
    opt = get_method("sgd_embed_lr_div5").build_optimizer(bundle.model, lm, lr=1e-3)
    embed_ids = {id(p) for n, p in bundle.model.named_parameters() if n in set(lm.embed)}
    for g in opt.param_groups:
        ids = {id(p) for p in g["params"]}
        if ids & embed_ids:
            assert ids == embed_ids and g["lr"] == pytest.approx(2e-4) and g["lr_mult"] == 0.2
        else:
            assert g["lr"] == pytest.approx(1e-3) and g["lr_mult"] == 1.0
    sgd = get_method("sgd").build_optimizer(bundle.model, lm, lr=1e-3)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == 0.9 and not sgd.defaults["nesterov"] and sgd.defaults["weight_decay"] == 0
    assert get_method("sgd_no_momentum").build_optimizer(bundle.model, lm, lr=1e-3).defaults["momentum"] == 0
    adamw = get_method("adamw").build_optimizer(bundle.model, lm, lr=1e-5)
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.defaults["betas"] == (0.9, 0.999) and adamw.defaults["eps"] == 1e-8
    assert adamw.param_groups[0]["weight_decay"] == 0.01
    assert get_method("adamw").build_optimizer(bundle.model, lm, 1e-5, weight_decay=0.0).param_groups[0]["weight_decay"] == 0


def test_lars_adapts_its_step_even_without_weight_decay():
    from deepnet.models import LayerMap

    layer = torch.nn.Linear(10, 1, bias=False)
    torch.nn.init.constant_(layer.weight, 2.0)
    lm = LayerMap(embed=[], embed_norm=[], middle=[], head=["weight"], stem=[])
    opt = get_method("lars").build_optimizer(layer, lm, lr=0.1)
    assert opt.defaults["weight_decay"] == 0
    layer.weight.grad = torch.full_like(layer.weight, 0.5)
    opt.step()
    # LARS: step = lr * trust_coeff * |w| / |g| * g = 0.1 * 1e-3 * 4 * 0.5; plain SGD would move by 0.05.
    assert torch.allclose(layer.weight.detach(), torch.full((1, 10), 2.0 - 0.1 * 1e-3 * 4 * 0.5))
    assert get_method("lamb").build_optimizer(layer, lm, lr=1e-3).defaults["always_adapt"]


def test_one_optimizer_table_keeps_the_fixed_arguments():
    from deepnet.methods.optimizers import OPTIMIZERS, create_optimizer

    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = create_optimizer("sgd", params, 0.1, 0.0, 0.9).defaults
    assert (sgd["momentum"], sgd["nesterov"], sgd["dampening"]) == (0.9, False, 0)
    adamw = create_optimizer("adamw", params, 1e-3, 0.01, 0.9).defaults
    assert (adamw["betas"], adamw["eps"], adamw["weight_decay"]) == ((0.9, 0.999), 1e-8, 0.01)
    lamb = create_optimizer("lamb", params, 1e-3, 0.01, 0.9).defaults
    assert (lamb["eps"], lamb["max_grad_norm"], lamb["always_adapt"], lamb["trust_clip"]) == (1e-6, 1.0, True, False)
    assert OPTIMIZERS.names() == ["adamw", "lamb", "lars", "sgd"]
    with pytest.raises(KeyError, match="unknown optimizer 'rmsprop'; known: adamw, lamb, lars, sgd"):
        create_optimizer("rmsprop", params, 0.1, 0.0, 0.9)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        Method("x", "a recipe with an unknown optimizer", optimizer="rmsprop")


def test_cosine_schedule_goes_to_zero():
    m = get_method("sgd")
    assert m.lr_factor(0, 100, 0, 10) == 1.0
    assert m.lr_factor(50, 100, 5, 10) == pytest.approx(0.5)
    assert m.lr_factor(100, 100, 9, 10) == pytest.approx(0.0, abs=1e-12)


def test_gradual_unfreezing_schedule_values():
    assert gradual_lr_factor(0, 10) == pytest.approx(math.exp(3.73)) == pytest.approx(41.68, abs=0.01)
    assert gradual_lr_factor(9, 10) == pytest.approx(1.0)
    assert gradual_lr_factor(3, 7) == pytest.approx(math.exp(3.73 * (1 - 3 / 6)))
    m = get_method("gradual_unfreeze")
    assert m.lr_factor(step=5, total_steps=10, epoch=0, epochs=5) == pytest.approx(math.exp(3.73))
    assert [num_trainable_groups(t, 4, 8) for t in range(4)] == [2, 4, 6, 8]
    assert [num_trainable_groups(t, 20, 8) for t in (0, 1, 2, 19)] == [1, 1, 2, 8]


def test_gradual_unfreezing_trains_top_down():
    bundle = _small_vit()
    model, lm = bundle.model, bundle.layer_map
    groups = lm.groups()
    m = get_method("gradual_unfreeze")
    epochs = len(groups)  # one more group per epoch
    for epoch in range(epochs):
        m.on_epoch_start(model, lm, epoch, epochs)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        expected = {n for _, names in groups[len(groups) - epoch - 1:] for n in names}
        assert trainable == expected
    assert groups[-1][0] == "head" and groups[0][0] == "embed"


def _blobs(rng, n, d=20, k=3, noise=3.0):
    centers = rng.normal(size=(k, d)) * 1.5
    y = rng.integers(0, k, n)
    x = centers[y] + noise * rng.normal(size=(n, d)) + 10.0  # offset: standardization matters
    return x, y


def test_linear_probe_picks_c_on_id_val_and_folds_standardization():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    tx, ty = _blobs(rng, 60)
    vx, vy = _blobs(np.random.default_rng(0), 200)  # same centers (same seed), fresh noise
    vx, vy = vx[60:], vy[60:]
    grid = tuple(np.logspace(-4, 2, 7))
    fit = fit_linear_probe(tx, ty, vx, vy, num_classes=3, c_grid=grid)
    accs = fit.val_acc_by_C
    best = max(accs.values())
    assert fit.val_acc == best and fit.C == min(c for c, a in accs.items() if a == best)
    assert len(set(accs.values())) > 1, "the grid should matter on this problem"
    scaler = StandardScaler().fit(tx)
    ref = LogisticRegression(C=fit.C, max_iter=1000).fit(scaler.transform(tx), ty)
    assert np.mean(ref.predict(scaler.transform(vx)) == vy) == pytest.approx(fit.val_acc, abs=0.02)
    logits = vx @ fit.weight.T + fit.bias  # raw features: the standardization is folded into the weights
    # tolerance: both are lbfgs solutions (ours warm-started along the C grid), equal to ~1e-3
    assert np.allclose(logits, ref.decision_function(scaler.transform(vx)), atol=1e-2)


def test_linear_probe_global_scaling_folds_one_mean_and_std():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    tx, ty = _blobs(rng, 60)
    tx[:, 0] *= 1e-3  # a low-variance feature: per-feature standardization blows its weight up
    vx, vy = tx[:20], ty[:20]
    grid = (1.0,)
    fit = fit_linear_probe(tx, ty, vx, vy, num_classes=3, c_grid=grid, scaling="global")
    mean, std = tx.mean(), tx.std()
    ref = LogisticRegression(C=1.0, max_iter=1000).fit((tx - mean) / std, ty)
    assert np.allclose(vx @ fit.weight.T + fit.bias, ref.decision_function((vx - mean) / std), atol=1e-2)
    per_feature = fit_linear_probe(tx, ty, vx, vy, num_classes=3, c_grid=grid)
    assert abs(per_feature.weight[:, 0]).max() > 100 * abs(fit.weight[:, 0]).max()
    with pytest.raises(ValueError, match="scaling must be one of"):
        fit_linear_probe(tx, ty, vx, vy, num_classes=3, scaling="none")


def test_probe_fits_are_remembered_by_content(monkeypatch):
    from deepnet.methods import linear_probe

    calls = []
    real = linear_probe._fit_linear_probe
    monkeypatch.setattr(linear_probe, "_fit_linear_probe", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(linear_probe, "_FIT_CACHE", type(linear_probe._FIT_CACHE)())
    tx, ty = _blobs(np.random.default_rng(1), 60)
    grid = (0.1, 1.0)
    first = fit_linear_probe(tx, ty, tx, ty, num_classes=3, c_grid=grid)
    first.weight[:] = 0.0  # a caller's change must not reach the next caller
    again = fit_linear_probe(tx.copy(), ty.copy(), tx, ty, num_classes=3, c_grid=grid)
    assert len(calls) == 1 and np.abs(again.weight).sum() > 0
    fit_linear_probe(tx + 1e-9, ty, tx, ty, num_classes=3, c_grid=grid)  # other features: a new fit
    fit_linear_probe(tx, ty, tx, ty, num_classes=3, c_grid=(0.1,))  # other grid: a new fit
    assert len(calls) == 3


def test_binary_probe_and_lp_ft_head_initialised_from_probe():
    bundle = create_model("small_vit", num_classes=2, pretrained=False)
    model = bundle.model.eval()
    x = torch.randn(40, 3, 28, 28)
    y = (x[:, 0].mean(dim=(1, 2)) > 0).long()
    with torch.no_grad():
        feats = model.backbone(x).numpy()
    data = ProbeData(feats[:30], y[:30].numpy(), feats[30:], y[30:].numpy(), num_classes=2)
    method = get_method("lp_ft")
    assert method.needs_probe_data and method.fine_tunes and not get_method("lp").fine_tunes
    info = method.prepare(model, data)
    fit = fit_linear_probe(*data.__dict__.values())
    assert (info["lp_C"], info["lp_id_val"], info["lp_scaling"]) == (fit.C, fit.val_acc, "per_feature")
    with torch.no_grad():
        logits = model(x).numpy()
    assert np.allclose(logits, feats @ fit.weight.T + fit.bias, atol=1e-4)
    assert np.mean(logits[30:].argmax(1) == y[30:].numpy()) == pytest.approx(fit.val_acc)


def test_multiclass_head_after_the_lp_stage_is_the_probes_decision_function():
    """LP-FT's head is the probe (paper: the FT stage starts from the LP solution): after
    ``prepare`` the model's logits equal sklearn's decision function of the fitted probe on the
    standardized features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from torch import nn

    from deepnet.methods.linear_probe import ProbeThenTune
    from deepnet.models.classifier import Classifier

    torch.manual_seed(0)
    model = Classifier(nn.Linear(20, 20), 20, 3).eval()
    rng = np.random.default_rng(1)
    tx, ty = _blobs(rng, 90)
    vx, vy = _blobs(rng, 60)
    x_t, x_v = torch.tensor(tx, dtype=torch.float32), torch.tensor(vx, dtype=torch.float32)
    with torch.no_grad():
        ft, fv = model.backbone(x_t).double().numpy(), model.backbone(x_v).double().numpy()
    grid = (0.1, 1.0)
    info = ProbeThenTune("lp_ft_test", "test", c_grid=grid).prepare(model, ProbeData(ft, ty, fv, vy, 3))
    scaler = StandardScaler().fit(ft)
    ref = LogisticRegression(C=info["lp_C"], max_iter=1000).fit(scaler.transform(ft), ty)
    with torch.no_grad():
        logits = model(x_v).double().numpy()
    dec = ref.decision_function(scaler.transform(fv))
    assert np.abs(dec).max() > 1.0  # a non-trivial probe
    # tolerance as above: two lbfgs solutions (ours warm-started along the grid), float32 head on top
    assert np.allclose(logits, dec, atol=1e-2)
    assert np.mean(logits.argmax(1) == vy) == pytest.approx(info["lp_id_val"])

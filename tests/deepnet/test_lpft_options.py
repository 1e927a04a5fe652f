"""The LP / LP-FT options (the LP-FT authors' recipe, arXiv:2202.10054): feature
scaling, lbfgs iterations per C, ``normalize_lp`` and ``use_net_val_mode``, each set from the run's
config, recorded in it and in its key."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepnet.config import METHOD_OPTIONS, RunConfig
from deepnet.methods import fit_linear_probe, get_method
from deepnet.methods.linear_probe import normalize_probe
from deepnet.run_files import CHECKPOINT
from deepnet.train import train
from tests.helpers import tiny_run_config


def _blobs(rng, n, d=20, k=3, noise=3.0):
    centers = rng.normal(size=(k, d)) * 1.5
    y = rng.integers(0, k, n)
    x = centers[y] + noise * rng.normal(size=(n, d)) + 10.0
    return x, y


def test_unset_options_keep_the_key_of_a_config_written_before_they_existed():
    cfg = RunConfig("small_vit", "digits", "lp_ft", 1e-3)
    old = {k: v for k, v in cfg.to_dict().items() if k not in METHOD_OPTIONS}
    assert RunConfig.from_dict(old).key() == cfg.key()
    keys = {cfg.key()}
    for name, value in (("lp_scaling", "global"), ("lp_max_iter", 200), ("normalize_lp", True),
                        ("use_net_val_mode", True), ("normalize_lp", False)):
        other = RunConfig.from_dict({**cfg.to_dict(), name: value})
        assert RunConfig.from_dict(other.to_dict()) == other
        keys.add(other.key())
    assert len(keys) == 6  # each option, and an explicit False, is its own run


def test_configure_sets_the_method_options_and_rejects_ones_it_does_not_take():
    cfg = RunConfig("m", "d", "lp_ft", 1e-3, lp_scaling="global", lp_max_iter=20, normalize_lp=True,
                    use_net_val_mode=True)
    method = get_method("lp_ft").configure(cfg)
    assert (method.scaling, method.max_iter, method.normalize_lp, method.net_val_mode) == ("global", 20, True, True)
    assert get_method("lp_ft").configure(RunConfig("m", "d", "lp_ft", 1e-3)) == get_method("lp_ft")
    assert get_method("lp_ft").net_val_mode and not get_method("sgd").net_val_mode  # the defaults
    assert get_method("sgd").configure(RunConfig("m", "d", "sgd", 1e-3, use_net_val_mode=True)).net_val_mode
    assert not get_method("lp_ft").configure(RunConfig("m", "d", "lp_ft", 1e-3, use_net_val_mode=False)).net_val_mode
    with pytest.raises(ValueError, match="does not take"):
        get_method("sgd").configure(RunConfig("m", "d", "sgd", 1e-3, normalize_lp=True))
    with pytest.raises(ValueError, match="scaling must be one of"):
        get_method("lp").configure(RunConfig("m", "d", "lp", 1.0, lp_scaling="none"))


def test_max_iter_caps_lbfgs_per_c_and_is_part_of_the_cached_fit():
    rng = np.random.default_rng(2)
    tx, ty = _blobs(rng, 80)
    grid = (1e-2, 1.0, 1e2)
    capped = fit_linear_probe(tx, ty, tx, ty, num_classes=3, c_grid=grid, max_iter=2)
    full = fit_linear_probe(tx, ty, tx, ty, num_classes=3, c_grid=grid, max_iter=1000)
    assert capped.n_iter == 2 and 2 < full.n_iter < 1000
    assert not np.allclose(capped.weight, full.weight, atol=1e-3)


def test_normalize_probe_gives_the_fresh_heads_std_and_keeps_every_decision():
    rng = np.random.default_rng(3)
    tx, ty = _blobs(rng, 60, k=3)
    tx[:, 0] *= 1e-3  # a low-variance feature: per-feature standardization gives it a large weight
    fit = fit_linear_probe(tx, ty, tx, ty, num_classes=4, c_grid=(1e2,))  # class 3 absent
    fresh = nn.Linear(20, 4).weight.detach().numpy()
    out = normalize_probe(fit, fresh)
    rows = [0, 1, 2]
    assert np.std(out.weight[rows]) == pytest.approx(np.std(fresh), rel=1e-9)
    factor = np.std(fresh) / np.std(fit.weight[rows])
    assert factor < 1e-2  # the probe's head was much larger than a fresh one
    assert np.allclose(out.bias[rows], fit.bias[rows] * factor)
    assert out.bias[3] == fit.bias[3] and not out.weight[3].any()
    before, after = tx @ fit.weight.T + fit.bias, tx @ out.weight.T + out.bias
    assert (before.argmax(1) == after.argmax(1)).all()
    assert np.abs(fit.weight).max() > np.abs(out.weight).max()  # the input was not modified


def test_lp_ft_with_normalize_lp_starts_from_a_head_of_fresh_scale(waterbirds_root, tmp_path):
    base = dict(method="lp_ft", lr=1e-12, epochs=1, lp_scaling="global", lp_max_iter=50)
    plain = train(tiny_run_config(waterbirds_root, **base), tmp_path / "plain", progress=False)
    normed = train(tiny_run_config(waterbirds_root, **base, normalize_lp=True), tmp_path / "normed", progress=False,
                   keep_checkpoint=True)
    info = normed["stage_info"]
    assert (info["lp_scaling"], info["lp_max_iter"], info["normalize_lp"]) == ("global", 50, True)
    assert normed["config"]["normalize_lp"] is True and plain["stage_info"]["normalize_lp"] is False
    head = torch.load(tmp_path / "normed" / CHECKPOINT, weights_only=False)["model"]["head.weight"]
    # the small ViT's fresh head: nn.Linear(96, 2), std = 1 / sqrt(3 * 96) for its uniform init
    assert head.std(unbiased=False).item() == pytest.approx(1 / np.sqrt(3 * 96), rel=0.3)
    assert info["lp_head_norm"] < plain["stage_info"]["lp_head_norm"]
    # rescaling the logits changes no decision: at lr ~ 0 both runs score the probe's accuracy
    assert normed["metrics"]["id_val"] == pytest.approx(plain["metrics"]["id_val"], abs=1e-12)


@pytest.mark.parametrize("val_mode", [True, False])
def test_use_net_val_mode_freezes_batchnorm_statistics_while_training(waterbirds_root, tmp_path, val_mode):
    cfg = RunConfig("effnet_lite0", "waterbirds", "sgd", 1e-2, epochs=1, batch_size=4, data_root=waterbirds_root,
                    pretrained=False, num_workers=0, image_size=32, use_net_val_mode=val_mode)
    record = train(cfg, tmp_path / "run", progress=False, keep_checkpoint=True)
    assert record["status"] == "ok" and record["config"]["use_net_val_mode"] is val_mode
    state = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)["model"]
    means = [v for k, v in state.items() if k.endswith("running_mean")]
    assert means  # a BatchNorm network; a fresh one starts at running_mean = 0
    assert all(not m.any() for m in means) is val_mode
    trained = [v for k, v in state.items() if k.endswith("bn1.weight")]
    assert any((w != 1).any() for w in trained)  # the weights trained in both modes


def _record(method: str, seed: int, id_val: float, **options) -> dict:
    cfg = RunConfig("m", "digits", method, 1e-3, seed=seed, **options)
    metrics = {"id_val": id_val, "id_test": id_val, "ood": {"ood_test": id_val}, "ood_avg": id_val,
               "worst_group": None}
    return {"config": cfg.to_dict(), "status": "ok", "metrics": metrics}


def test_collect_keeps_method_options_with_the_method_not_the_row():
    from deepnet.sweep.collect import paired_differences, select_best, summarize
    from deepnet.sweep.tables import to_pivot_markdown

    records = [_record("sgd", s, 0.5) for s in (0, 1)]
    records += [_record("lp_ft", s, 0.6 + 0.01 * s, lp_scaling="global", normalize_lp=True) for s in (0, 1)]
    cells = select_best(records)
    pivot = to_pivot_markdown(summarize(cells), "id_val")
    assert len(pivot.strip().splitlines()) == 3  # header, rule, one row holding both methods
    (row,) = paired_differences(cells, [("lp_ft", "sgd")], "id_val")
    assert row["lp_ft-sgd_mean"] == pytest.approx(0.105) and row["lp_ft-sgd_n"] == 2
    records += [_record("lp_ft", 0, 0.7, lp_scaling="per_feature")]
    with pytest.raises(ValueError, match="different options"):
        summarize(select_best(records))

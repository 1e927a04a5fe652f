"""theory.optim: hand-computed steps, torch.optim agreement, freezing, lr multipliers, state size."""
from __future__ import annotations

import numpy as np
import pytest
import timm.optim
import torch

from theory.optim import OPTIMIZERS, make_optimizer

TOL = 1e-12  # float64 against float64: agreement to rounding


def _params(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((3, 4)), rng.standard_normal(5)]


def _grads(params: list[np.ndarray], step: int) -> list[np.ndarray]:
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(p.shape) for p in params]


def _assert_same_trajectory(opt, topt, params, tparams, steps, before_step=lambda step: None):
    """Feed both optimizers the same gradients for `steps` steps; parameters must agree to 1e-10."""
    for step in range(steps):
        before_step(step)
        grads = _grads(params, step)
        opt.step(grads)
        for tp, g in zip(tparams, grads):
            tp.grad = torch.tensor(g)
        topt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_sgd_hand_step():
    p = np.array([1.0, -2.0])
    g = np.array([0.5, 0.25])
    opt = make_optimizer("sgd", [p], lr=0.1, momentum=0.9, weight_decay=0.1)
    opt.step([g])  # buf = g + wd p = [0.6, 0.05]
    np.testing.assert_allclose(p, [1.0 - 0.06, -2.0 - 0.005], rtol=0, atol=TOL)
    opt.step([g])  # d = g + 0.1 p = [0.594, 0.0495]; buf = 0.9 [0.6, 0.05] + d
    np.testing.assert_allclose(p, [0.94 - 0.1 * 1.134, -2.005 - 0.1 * 0.0945], rtol=0, atol=TOL)


def test_adamw_hand_step():
    p = np.array([1.0, -2.0])
    g = np.array([0.5, -0.25])
    opt = make_optimizer("adamw", [p], lr=0.1, weight_decay=0.01)
    opt.step([g])  # first step: m_hat = g, s_hat = g^2 -> direction sign(g) (up to eps)
    expect = np.array([1.0, -2.0]) * (1 - 0.1 * 0.01) - 0.1 * np.sign(g) * np.abs(g) / (np.abs(g) + 1e-8)
    np.testing.assert_allclose(p, expect, rtol=0, atol=TOL)


def test_adam_coupled_decay_hand_step():
    p = np.array([2.0])
    opt = make_optimizer("adam", [p], lr=0.01, weight_decay=0.5)
    opt.step([np.array([-0.5])])  # g + wd p = 0.5 > 0 -> p -= lr * 0.5/(0.5+eps)
    np.testing.assert_allclose(p, [2.0 - 0.01 * 0.5 / (0.5 + 1e-8)], rtol=0, atol=TOL)


def test_lars_hand_step():
    p = np.array([3.0, 4.0])  # ||p|| = 5
    g = np.array([0.0, 2.0])  # ||g|| = 2, wd 0.1 -> ratio 0.001 * 5 / (2 + 0.5 + eps), adapted always
    opt = make_optimizer("lars", [p], lr=1.0, momentum=0.0, weight_decay=0.1)
    opt.step([g])
    ratio = 0.001 * 5.0 / (2.5 + 1e-8)
    np.testing.assert_allclose(p, [3.0 - 0.3 * ratio, 4.0 - 2.4 * ratio], rtol=0, atol=TOL)


def test_lamb_hand_step():
    p = np.array([3.0, 4.0])  # ||p|| = 5
    g = np.array([1.0, -1.0])
    opt = make_optimizer("lamb", [p], lr=0.1, weight_decay=0.0, eps=1e-6)
    opt.step([g])  # u = g/(|g|+eps) ~ [1, -1], ||u|| ~ sqrt2 -> step lr * 5/sqrt2 * u
    u = g / (np.abs(g) + 1e-6)
    expect = np.array([3.0, 4.0]) - 0.1 * 5.0 / np.linalg.norm(u) * u
    np.testing.assert_allclose(p, expect, rtol=0, atol=TOL)


TORCH_CASES = [
    ("sgd", torch.optim.SGD, {"momentum": 0.0}),
    ("sgd", torch.optim.SGD, {"momentum": 0.9}),
    ("sgd", torch.optim.SGD, {"momentum": 0.9, "weight_decay": 1e-3}),
    ("sgd", torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    ("adamw", torch.optim.AdamW, {"weight_decay": 0.01}),
    ("adamw", torch.optim.AdamW, {"weight_decay": 0.1, "betas": (0.8, 0.99), "eps": 1e-6}),
    ("adam", torch.optim.Adam, {"weight_decay": 0.01}),
]


@pytest.mark.parametrize("name,torch_cls,hp", TORCH_CASES)
def test_matches_torch_over_steps(name, torch_cls, hp):
    params = _params()
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    mults = [1.0, 0.2]
    opt = make_optimizer(name, params, lr=0.05, lr_mults=mults, **hp)
    topt = torch_cls([{"params": [tp], "lr": 0.05 * m} for tp, m in zip(tparams, mults)], **hp)
    def schedule_change(step):
        if step == 4:  # a schedule change mid-run
            opt.lr = 0.02
            for group, m in zip(topt.param_groups, mults):
                group["lr"] = 0.02 * m

    _assert_same_trajectory(opt, topt, params, tparams, steps=7, before_step=schedule_change)


TIMM_CASES = [
    ("lars", "Lars", {"momentum": 0.9, "weight_decay": 0.0}),
    ("lars", "Lars", {"momentum": 0.9, "weight_decay": 1e-2}),
    ("lamb", "Lamb", {"weight_decay": 0.0}),
    ("lamb", "Lamb", {"weight_decay": 0.05}),
]


@pytest.mark.parametrize("name,timm_name,hp", TIMM_CASES)
def test_layerwise_rules_match_timm_always_adapt(name, timm_name, hp):
    extra = {"always_adapt": True, "foreach": False}
    if timm_name == "Lamb":
        extra["max_grad_norm"] = None
    params = _params(3)
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    opt = make_optimizer(name, params, lr=0.05, **hp)
    topt = getattr(timm.optim, timm_name)(tparams, lr=0.05, **hp, **extra)
    _assert_same_trajectory(opt, topt, params, tparams, steps=6)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_frozen_bit_for_bit_and_no_state(name):
    params = _params(1)
    before = params[0].copy()
    opt = make_optimizer(name, params, lr=0.1, frozen=[True, False])
    for step in range(3):
        opt.step([np.full_like(params[0], np.nan), _grads(params, step)[1]])
    assert params[0].tobytes() == before.tobytes()
    assert opt.state_arrays()[0] == 0
    assert not np.allclose(params[1], _params(1)[1])


def test_state_arrays_for_memory_accounting():
    p = _params()
    assert make_optimizer("sgd", p, lr=0.1).state_arrays() == [0, 0]
    assert make_optimizer("sgd", p, lr=0.1, momentum=0.9).state_arrays() == [1, 1]
    assert make_optimizer("adamw", p, lr=0.1).state_arrays() == [2, 2]
    assert make_optimizer("adamw", p, lr=0.1, frozen=[True, False]).state_numel() == 2 * 5


def test_lr_mult_zero_equals_frozen_for_sgd():
    a, b = _params(2), _params(2)
    oa = make_optimizer("sgd", a, lr=0.1, lr_mults=[0.0, 1.0])
    ob = make_optimizer("sgd", b, lr=0.1, frozen=[True, False])
    for step in range(3):
        g = _grads(a, step)
        oa.step(g)
        ob.step(g)
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()


def test_bad_input_errors():
    p = _params()
    with pytest.raises(KeyError, match="known"):
        make_optimizer("rmsprop", p, lr=0.1)
    with pytest.raises(TypeError, match="unknown hyperparameters"):
        make_optimizer("sgd", p, lr=0.1, betas=(0.9, 0.99))
    with pytest.raises(ValueError):
        make_optimizer("sgd", p, lr=0.1, frozen=[True])
    with pytest.raises(ValueError):
        make_optimizer("sgd", p, lr=-1.0)
    opt = make_optimizer("sgd", p, lr=0.1)
    with pytest.raises(ValueError, match="shape"):
        opt.step([np.zeros(2), np.zeros(5)])

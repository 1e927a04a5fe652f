"""theory.deep_experiment and theory.deep_claims: selection as the paper, freezing, claim wiring."""
from __future__ import annotations

import numpy as np
import pytest

import theory.deep_claims  # noqa: F401  (registers C9-C12)
from theory.deep import end_to_end, mse_of_map, train
from theory.deep_experiment import (
    config_with,
    finetune,
    make_deep_task,
    pretrain,
    run_table,
    summarize,
)
from theory.deep_methods import DEEP_METHODS
from theory.verdict import CLAIM_CHECKS, VERDICTS

SMALL = config_with(d=8, embed_dim=8, widths=[16, 16], pre_out=4, rank=2, id_dim=3, pre_n=64,
                    pre_epochs=40, pre_batch=16, pre_lr=(("sgd", 1e-2), ("adamw", 1e-2)), n_train=8, n_val=8, ft_epochs=4, ft_batch=4)


@pytest.fixture(scope="module")
def setup():
    problem = make_deep_task(SMALL, np.random.default_rng(0))
    layers, fit = pretrain(SMALL, problem, "sgd", np.random.default_rng(1))
    return problem, layers, fit


def test_problem_shapes_and_shift(setup):
    problem, _, fit = setup
    assert fit < 0.5  # pretraining learned its task
    S = problem.id_basis
    np.testing.assert_allclose(problem.X @ (np.eye(SMALL.d) - S @ S.T), 0, atol=1e-12)  # ID data on S
    assert np.linalg.norm(problem.w_star) == pytest.approx(1.0)


def test_selection_is_argmin_of_validation_loss(setup):
    problem, layers, _ = setup
    sel = finetune(SMALL, problem, layers, "sgd", np.random.default_rng(5))
    m = DEEP_METHODS["sgd"]
    best = np.inf
    rng = np.random.default_rng(5)
    for lr in m.lrs:  # replay the grid with the same rng stream
        res = train([*layers[:-1], problem.head], problem.X, problem.Y, "sgd", lr, SMALL.ft_epochs, SMALL.ft_batch, rng, **m.hparams)
        if res.diverged:
            continue
        vals = [float(np.mean((problem.X_val @ W.T - problem.Y_val) ** 2)) for W in res.maps]
        best = min(best, min(vals))
    assert sel.val_loss == pytest.approx(best, rel=1e-12)
    assert sel.ood_loss > 0 and sel.lr in m.lrs


def test_freeze_embed_never_moves_embedding(setup):
    problem, layers, _ = setup
    assert finetune(SMALL, problem, layers, "sgd_freeze_embed", np.random.default_rng(0)).embed_move == 0.0
    assert finetune(SMALL, problem, layers, "sgd", np.random.default_rng(0)).embed_move > 0.0


def test_lp_fits_with_frozen_features(setup):
    problem, layers, _ = setup
    lp = finetune(SMALL, problem, layers, "lp", np.random.default_rng(0))
    assert lp.lr is None and lp.embed_move == 0.0
    untrained = mse_of_map(end_to_end([*layers[:-1], problem.head]), problem.w_star, problem.id_basis @ problem.id_basis.T)
    assert lp.id_loss < untrained


def test_run_table_and_summary():
    table = run_table(SMALL, [0, 1], methods=("sgd", "adamw_freeze_embed"))
    s = summarize(table)
    assert set(s) == {"sgd", "adamw"}
    assert s["adamw"]["adamw_freeze_embed"]["embed_move"]["mean"] == 0.0
    assert all(len(v) == 2 for v in table.values())
    with pytest.raises(KeyError, match="known"):
        run_table(SMALL, [0], methods=("rmsprop",))


@pytest.mark.parametrize("claim", ["C9", "C10", "C11", "C12"])
def test_claims_registered_and_report(claim):
    res = CLAIM_CHECKS[claim](1, 0)
    assert res.claim == claim and res.verdict in VERDICTS and res.instances == 1
    assert res.numbers and all(np.isfinite(v) for v in res.numbers.values())
    assert (res.verdict == "pass") == (res.worst_margin > 0)


def test_cli_prints_table_and_rejects_bad_override(capsys):
    from theory.deep_experiment import main

    small = ["--set", "d=8", "--set", "embed_dim=8", "--set", "widths=(8,8)", "--set", "pre_out=2",
             "--set", "rank=2", "--set", "id_dim=3", "--set", "pre_n=32", "--set", "pre_epochs=2",
             "--set", "n_train=8", "--set", "n_val=8", "--set", "ft_epochs=2"]
    main(["--seeds", "1", "--methods", "sgd", "adamw", *small])
    out = capsys.readouterr().out
    assert "pretrained with adamw" in out and "log(OOD/adamw)" in out
    with pytest.raises(SystemExit):
        main(["--set", "no_such_field=1"])

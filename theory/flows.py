"""Exact gradient flows of linear probing (LP), fine-tuning (FT) and LP-FT (Kumar et al. 2022, Sec. 3).

Loss L(v, B) = ||X B^T v - Y||^2 (no 1/n). With r = X B^T v - Y the flows are
    FT:    dv/dt = -2 B X^T r,   dB/dt = -2 v (X^T r)^T,   from (v0, B0);
    LP:    B = B0 fixed,         dv/dt = -2 B0 X^T r;
    LP-FT: FT started from (v_lp(inf), B0), v_lp(inf) in closed form (`theory.lp_flow.lp_limit`).

Two integrators solve the same ODE with scipy's DOP853 (explicit) or Radau (implicit) steppers:
  * "full": the plain state (v, B) in R^k x R^{k x d}, using X itself (the reference);
  * "reduced": X^T r lies in S = rowspace(X), so B(t) = B0 + C(t) Q^T with Q (d x m) an orthonormal
    basis of S, and the flow needs X only through the in-S Gram matrix Q^T X^T X Q (diagonal in
    its eigenbasis) and Q^T X^T Y. The state (v, C) has k + k m entries: each right-hand side
    costs O(k m), independent of n and d; Radau gets the analytic Jacobian, sparse (arrow-shaped).
Both record the same `Trajectory` on a time grid whose values are solver step endpoints. The
horizon, time grid, stiffness and solver choice come from `theory.flow_scales`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.integrate import DOP853, Radau

from theory.flow_scales import STOP_FACTOR, choose_solver, default_horizon, time_grid
from theory.lp_flow import lp_limit
from theory.problem import Problem

FLOW_METHODS = ("lp", "ft", "lp_ft")
INTEGRATORS = ("reduced", "full")
SOLVERS = ("auto", "DOP853", "Radau")
#: default tolerances: rtol <= 1e-9 as required; atol is absolute on every state entry
#: (v and B entries are O(1) in the generated problems).
RTOL = 1e-10
ATOL = 1e-12
#: grid values are step endpoints, so their error is the solver's global error: relative to the
#: state's scale it stays below GRID_RTOL at the default rtol / atol (checked against the
#: closed-form LP flow, tests/theory/test_flows.py).
GRID_RTOL = 1e-8


def ft_gradients(X: np.ndarray, Y: np.ndarray, v: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dL/dv, dL/dB) = (2 B X^T r, 2 v (X^T r)^T) of L = ||X B^T v - Y||^2, r = X B^T v - Y.

    Parameters
    ----------
    X, Y : ndarray
        (n, d) inputs and (n,) labels.
    v, B : ndarray
        (k,) head and (k, d) features.

    Returns
    -------
    tuple of ndarray
        The (k,) and (k, d) gradients.

    Examples
    --------
    >>> gv, gB = ft_gradients(np.eye(2), np.zeros(2), np.array([1.0]), np.array([[1.0, 0.0]]))
    >>> gv.tolist(), gB.tolist()
    ([2.0], [[2.0, 0.0]])
    """
    g = X.T @ (X @ (B.T @ v) - Y)
    return 2.0 * B @ g, 2.0 * np.outer(v, g)


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A flow sampled at times t (T,), as `simulate` returns it; e = B^T v - w* is the error.

    Attributes
    ----------
    method, integrator, solver : str
        As passed to `simulate`; solver is the stepper used ("DOP853" or "Radau").
    t : ndarray
        (T,) times.
    v : ndarray
        (T, k) heads.
    delta, basis : ndarray
        B(t_i) = B0 + delta[i] @ basis.T (`features`): the reduced integrator stores delta as
        (T, k, m) coordinates in the basis (d, m) of S, the full one as (T, k, d) with basis None.
    B0 : ndarray
        (k, d) pretrained features.
    train_loss, id_loss, ood_loss, feature_change : ndarray
        (T,) ||X B^T v - Y||^2, ||P_S e||^2, e^T Sigma e and ||B - B0||_F.
    balance_drift : ndarray
        (T,) ||(v v^T - B B^T)(t) - (v v^T - B B^T)(0)||_F (0 for FT up to solver error).
    perp_drift : ndarray or None
        (T,) ||(B(t) - B0) P_{S_perp}||_2 = max over unit x in S_perp of ||B(t) x - B0 x||. None for
        the reduced integrator, which keeps B - B0 inside S by construction (the invariant is
        tested with the full one).
    n_rhs : int
        Right-hand side evaluations.
    stopped_at : float or None
        The time the converged flow was stopped (grid points after it repeat that state), None if
        it ran to t_max.
    """

    method: str
    integrator: str
    solver: str
    t: np.ndarray
    v: np.ndarray
    delta: np.ndarray
    basis: np.ndarray | None
    B0: np.ndarray
    train_loss: np.ndarray
    id_loss: np.ndarray
    ood_loss: np.ndarray
    feature_change: np.ndarray
    balance_drift: np.ndarray
    perp_drift: np.ndarray | None
    n_rhs: int
    stopped_at: float | None = None

    def features(self, i: int = -1) -> np.ndarray:
        """B(t_i) (k x d), by default at the last time."""
        d = self.delta[i]
        return self.B0 + (d if self.basis is None else d @ self.basis.T)

    @property
    def v_final(self) -> np.ndarray:
        """The head at the last time (k,)."""
        return self.v[-1]


_SOLVER_CLASSES = {"DOP853": DOP853, "Radau": Radau}


def _solve(rhs, jac, y0: np.ndarray, t: np.ndarray, rtol: float, atol: float, solver: str,
           loss_fn, stop_loss: float | None) -> tuple[np.ndarray, int, float | None]:
    """States on the grid t (len(t) x state), RHS evaluations, and the stopping time (None if none).

    Every grid time is a step endpoint (one solver runs with its bound moved from grid time to grid
    time, keeping its step-size control), so grid values carry the solver's error control rather than the looser
    dense-output interpolation. With stop_loss, integration stops at the first step endpoint where
    the train loss loss_fn(y) is <= stop_loss; later grid points repeat that state. Not armed when
    the loss starts below it, so a flow at rest is still integrated over the whole grid.
    """
    armed = stop_loss is not None and loss_fn(y0) > stop_loss
    out = np.empty((len(t), y0.size))
    out[0] = y0
    kw = {"jac": jac} if solver == "Radau" else {}
    ode = _SOLVER_CLASSES[solver](rhs, 0.0, y0, t[1], rtol=rtol, atol=atol, **kw)
    for i in range(1, len(t)):
        if i > 1:                             # move the bound on: the solver keeps its step size
            ode.t_bound, ode.status = t[i], "running"
        while ode.status == "running":
            message = ode.step()
            if ode.status == "failed":
                raise RuntimeError(f"{solver} failed at t={ode.t:.6g}: {message}")
            if armed and loss_fn(ode.y) <= stop_loss:
                out[i:] = ode.y
                return out, ode.nfev, float(ode.t)
        out[i] = ode.y
    return out, ode.nfev, None


def _balance_drift(v: np.ndarray, v0: np.ndarray, dBBt: np.ndarray) -> np.ndarray:
    """||v v^T - v0 v0^T - (B B^T - B0 B0^T)||_F per time, given dBBt = B B^T - B0 B0^T (T,k,k)."""
    vvT = np.einsum("ti,tj->tij", v, v) - np.outer(v0, v0)
    return np.linalg.norm(vvT - dBBt, axis=(1, 2))


def _ft_jacobian_pattern(k: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Row / column indices of the reduced FT Jacobian's nonzeros (state y = [v, C.ravel()], C k x m).

    Blocks: v-v (k x k), v-C and C-v (dense, k x km), and C-C block diagonal over the columns of C:
    d(dC_ab)/dC_ib = -2 lambda_b v_a v_i (the in-S Gram matrix is diagonal in the S basis).
    """
    v_idx = np.arange(k)
    c_idx = k + np.arange(k * m).reshape(k, m)                   # c_idx[a, b]: state index of C_ab
    blocks = [(v_idx[:, None], v_idx[None, :], (k, k)),                        # v-v   (l, i)
              (v_idx[:, None, None], c_idx[None, :, :], (k, k, m)),            # v-C   (l, i, b)
              (c_idx[:, :, None], v_idx[None, None, :], (k, m, k)),            # C-v   (a, b, i)
              (c_idx[:, :, None], c_idx.T[None, :, :], (k, m, k))]             # C-C   (a, b, i)
    rows = np.concatenate([np.broadcast_to(r, shape).ravel() for r, _, shape in blocks])
    cols = np.concatenate([np.broadcast_to(c, shape).ravel() for _, c, shape in blocks])
    return rows, cols


def _run_reduced(problem: Problem, method: str, v_init: np.ndarray, train_features: bool,
                 t: np.ndarray, rtol: float, atol: float, solver: str, stop_loss: float | None) -> Trajectory:
    # the state (v, C') lives in the Gram eigenbasis Q V of S (Z^T Z = V diag(lam) V^T), where the
    # in-S Gram matrix is diagonal; B = B0 + C' (Q V)^T, and C = C' V^T in the basis Q
    Q, V = problem.S_basis, problem.gram_eigenvectors
    k, m = problem.k, problem.m
    lam, ZV = problem.gram_eigenvalues, problem.coords @ V
    hm = ZV.T @ problem.Y
    A0 = (problem.B0 @ Q) @ V
    N = k + k * m

    def rhs(_t, y):
        v = y[:k]
        Bq = A0 + y[k:].reshape(k, m) if train_features else A0
        g = lam * (Bq.T @ v) - hm
        if not train_features:
            return -2.0 * Bq @ g
        out = np.empty(N)                                       # [dv, dC.ravel()], filled in place
        np.dot(-2.0 * Bq, g, out=out[:k])
        np.multiply.outer(-2.0 * v, g, out=out[k:].reshape(k, m))
        return out

    if train_features:
        rows, cols = _ft_jacobian_pattern(k, m)
        eye = np.eye(k)

        def jac(_t, y):
            v, Bq = y[:k], A0 + y[k:].reshape(k, m)
            g = lam * (Bq.T @ v) - hm
            BL = Bq * lam                                        # Bq diag(lam)
            vv = -2.0 * BL @ Bq.T
            # v-C: d(dv_l)/dC_ib = -2 (delta_li g_b + (Bq diag lam)_lb v_i), shape (l, i, b)
            vc = -2.0 * (eye[:, :, None] * g[None, None, :] + BL[:, None, :] * v[None, :, None])
            # C-v: d(dC_ab)/dv_i = -2 (delta_ai g_b + v_a (Bq diag lam)_ib), shape (a, b, i)
            cv = -2.0 * (eye[:, None, :] * g[None, :, None] + v[:, None, None] * BL.T[None, :, :])
            # C-C: d(dC_ab)/dC_ib = -2 lambda_b v_a v_i, shape (a, b, i)
            cc = -2.0 * lam[None, :, None] * v[:, None, None] * v[None, None, :]
            vals = np.concatenate([vv.ravel(), vc.ravel(), cv.ravel(), cc.ravel()])
            return sparse.csc_matrix((vals, (rows, cols)), shape=(N, N))
    else:
        J_lp = -2.0 * (A0 * lam) @ A0.T

        def jac(_t, _y):
            return J_lp

    def loss(y):
        Bq = A0 + y[k:].reshape(k, m) if train_features else A0
        return float(np.sum((ZV @ (Bq.T @ y[:k]) - problem.Y) ** 2))

    y0 = np.concatenate([v_init, np.zeros(k * m)]) if train_features else v_init.copy()
    states, nfev, stopped = _solve(rhs, jac, y0, t, rtol, atol, solver, loss, stop_loss)
    heads = states[:, :k]
    Ce = states[:, k:].reshape(-1, k, m) if train_features else np.zeros((len(t), k, m))
    z = np.einsum("tkm,tk->tm", A0 + Ce, heads)                 # (Q V)^T B^T v
    train = np.sum((z @ ZV.T - problem.Y) ** 2, axis=1)
    idl = np.sum((z - V.T @ (Q.T @ problem.w_star)) ** 2, axis=1)
    C = Ce @ V.T                                                # B - B0 = C Q^T
    # e = B0^T v + Q (C^T v) - w* = M a with a = [v; C^T v; -1]: e^T Sigma e = ||P a||^2
    a = np.column_stack([heads, np.einsum("tkm,tk->tm", C, heads), -np.ones(len(t))])
    ood = np.sum((a @ problem.ood_projections.T) ** 2, axis=1)
    CA = np.einsum("tim,jm->tij", Ce, A0)
    dBBt = CA + CA.transpose(0, 2, 1) + np.einsum("tim,tjm->tij", Ce, Ce)
    return Trajectory(method, "reduced", solver, t, heads, C, Q, problem.B0, train, idl, ood,
                      np.linalg.norm(Ce, axis=(1, 2)), _balance_drift(heads, v_init, dBBt), None, nfev, stopped)


def _run_full(problem: Problem, method: str, v_init: np.ndarray, train_features: bool,
              t: np.ndarray, rtol: float, atol: float, solver: str, stop_loss: float | None) -> Trajectory:
    X, Y, B0 = problem.X, problem.Y, problem.B0
    k, d = problem.k, problem.d

    def rhs(_t, y):
        v = y[:k]
        B = y[k:].reshape(k, d) if train_features else B0
        gv, gB = ft_gradients(X, Y, v, B)
        return np.concatenate([-gv, -gB.ravel()]) if train_features else -gv

    def loss(y):
        B = y[k:].reshape(k, d) if train_features else B0
        return float(np.sum((X @ (B.T @ y[:k]) - Y) ** 2))

    y0 = np.concatenate([v_init, B0.ravel()]) if train_features else v_init.copy()
    states, nfev, stopped = _solve(rhs, None, y0, t, rtol, atol, solver, loss, stop_loss)
    V = states[:, :k]
    B = states[:, k:].reshape(-1, k, d) if train_features else np.broadcast_to(B0, (len(t), k, d))
    BtV = np.einsum("tkd,tk->td", B, V, optimize=True)
    E = BtV - problem.w_star                                    # e = B^T v - w*
    train = np.sum((BtV @ X.T - Y) ** 2, axis=1)
    S = problem.S_basis
    idl = np.sum((E @ S) ** 2, axis=1)
    ood = problem.Sigma.quad(E)
    delta = B - B0
    perp = delta - (delta @ S) @ S.T                            # (B - B0) P_{S_perp}
    perp_drift = np.linalg.norm(perp, 2, axis=(1, 2))
    dBBt = B @ B.transpose(0, 2, 1) - B0 @ B0.T
    return Trajectory(method, "full", solver, t, V, np.ascontiguousarray(delta), None, B0, train, idl, ood,
                      np.linalg.norm(delta, axis=(1, 2)), _balance_drift(V, v_init, dBBt), perp_drift,
                      nfev, stopped)


def simulate(problem: Problem, method: str, t_max: float | None = None, n_times: int = 200,
             integrator: str = "reduced", rtol: float = RTOL, atol: float = ATOL,
             solver: str = "auto", v_init: np.ndarray | None = None,
             stop_factor: float | None = STOP_FACTOR) -> Trajectory:
    """Integrate the LP, FT or LP-FT gradient flow of `problem` on `time_grid(t_max, n_times)`.

    Parameters
    ----------
    problem : Problem
        The two-layer problem (`theory.problem.make_problem`).
    method : str
        One of FLOW_METHODS: "lp" (B = B0, head from v0), "ft" (both layers from (v0, B0)), "lp_ft"
        (both layers from (lp_limit(problem), B0)).
    t_max : float, optional
        Horizon (default `theory.flow_scales.default_horizon`, from the problem's spectrum).
    n_times : int
        Grid size; every grid time is a solver step endpoint (accuracy: GRID_RTOL).
    integrator : str
        "reduced" (fast, exact reparametrisation in S) or "full" (the d-space reference).
    rtol, atol : float
        Solver tolerances; rtol must be <= 1e-9.
    solver : str
        "auto" (reduced: `theory.flow_scales.choose_solver` from the stiffness of the in-S Gram matrix; full:
        DOP853), "DOP853" or "Radau" (the reduced integrator gives Radau an analytic sparse
        Jacobian; the full one a finite-difference Jacobian, slow beyond small d).
    v_init : ndarray, optional
        Overrides the starting head.
    stop_factor : float or None
        Stop once the train loss is <= stop_factor max(L(0), ||Y||^2) (None: run to t_max); at
        1e-18 (about 30x above the loss floor set by atol) the motion left is ~1e-8, the size of
        the solver error itself (reduced and full integrators agree to ~1e-8).

    Returns
    -------
    Trajectory
        With the solver actually used in ``solver``.

    Raises
    ------
    ValueError
        An unknown method, integrator or solver, rtol outside (0, 1e-9], atol <= 0, a v_init that
        is not a finite vector of length k, or a bad grid (`time_grid`).
    RuntimeError
        The solver failed.

    References
    ----------
    .. [1] A. Kumar, A. Raghunathan, R. Jones, T. Ma, P. Liang, "Fine-Tuning can Distort Pretrained
       Features and Underperform Out-of-Distribution", ICLR 2022, arXiv:2202.10054, Sec. 3 (the LP,
       FT and LP-FT flows).

    Examples
    --------
    >>> from theory.problem import make_problem
    >>> p = make_problem(10, 2, 6, m=4, eps=0.2, seed=0)
    >>> ft = simulate(p, "ft", n_times=5)
    >>> ft.solver, ft.t.shape, ft.v.shape, ft.features().shape
    ('DOP853', (5,), (5, 2), (2, 10))
    >>> bool(ft.train_loss[-1] < 1e-15 * ft.train_loss[0])       # FT fits the training data
    True
    >>> lp_ft = simulate(p, "lp_ft", n_times=5)
    >>> bool(lp_ft.feature_change[-1] < ft.feature_change[-1])   # LP-FT distorts the features less
    True
    >>> full = simulate(p, "ft", n_times=5, integrator="full")   # the d-space reference
    >>> bool(np.allclose(full.ood_loss, ft.ood_loss, rtol=1e-8)), float(round(full.perp_drift.max(), 12))
    (True, 0.0)
    """
    if method not in FLOW_METHODS:
        raise ValueError(f"method must be one of {FLOW_METHODS}, got {method!r}")
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if not (0 < rtol <= 1e-9) or not atol > 0:
        raise ValueError(f"need 0 < rtol <= 1e-9 and atol > 0, got rtol={rtol}, atol={atol}")
    if v_init is None:
        v_init = lp_limit(problem) if method == "lp_ft" else problem.v0
    v_init = np.array(v_init, dtype=float)
    if v_init.shape != (problem.k,) or not np.all(np.isfinite(v_init)):
        raise ValueError(f"v_init must be a finite vector of length k={problem.k}")
    if solver == "auto":
        solver = choose_solver(problem, method) if integrator == "reduced" else "DOP853"
    t = time_grid(default_horizon(problem, method) if t_max is None else float(t_max), n_times)
    stop_loss = None
    if stop_factor is not None:
        stop_loss = stop_factor * max(problem.train_loss(v_init, problem.B0), float(problem.Y @ problem.Y))
    run = _run_reduced if integrator == "reduced" else _run_full
    return run(problem, method, v_init, method != "lp", t, rtol, atol, solver, stop_loss)

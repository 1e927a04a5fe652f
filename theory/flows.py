"""Exact gradient flows of linear probing (LP), fine-tuning (FT) and LP-FT (Kumar et al. 2022, Sec. 3).

Loss L(v, B) = ||X B^T v - Y||^2 (no 1/n). With r = X B^T v - Y the flows are
    FT:    dv/dt = -2 B X^T r,   dB/dt = -2 v (X^T r)^T,   from (v0, B0);
    LP:    B = B0 fixed,         dv/dt = -2 B0 X^T r;
    LP-FT: FT started from (v_lp(inf), B0), v_lp(inf) in closed form (`lp_limit`).

Two integrators solve the same ODE with scipy's DOP853 (explicit) or Radau (implicit) steppers:
  * "full": the plain state (v, B) in R^k x R^{k x d}, using X itself (the reference);
  * "reduced": X^T r lies in S = rowspace(X), so B(t) = B0 + C(t) Q^T with Q (d x m) an orthonormal
    basis of S, and the flow needs X only through the in-S Gram matrix Q^T X^T X Q (diagonal in
    its eigenbasis) and Q^T X^T Y. The state (v, C) has k + k m entries: each right-hand side
    costs O(k m), independent of n and d; Radau gets the analytic Jacobian, sparse (arrow-shaped).
Both record the same `Trajectory` on a time grid whose values are solver step endpoints.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.integrate import DOP853, Radau

from theory.problem import Problem

METHODS = ("lp", "ft", "lp_ft")
INTEGRATORS = ("reduced", "full")
SOLVERS = ("auto", "DOP853", "Radau")
#: default tolerances: rtol <= 1e-9 as required; atol is absolute on every state entry
#: (v and B entries are O(1) in the generated problems).
RTOL = 1e-10
ATOL = 1e-12
#: converged flows stop once L <= STOP_FACTOR max(L(0), ||Y||^2) (see `simulate`).
STOP_FACTOR = 1e-18
#: solver="auto" takes the implicit Radau above this `stiffness_index` (explicit DOP853 below):
#: measured crossover on the reduced FT flow (d = 60, k = 3, n = m = 12: DOP853 faster at index
#: 9.6e5, Radau at 2.8e6); the claims' random problems stay below 1e5.
STIFF_INDEX = 1e6
#: grid values are step endpoints, so their error is the solver's global error: relative to the
#: state's scale it stays below GRID_RTOL at the default rtol / atol (checked against the
#: closed-form LP flow, tests/theory/test_flows.py).
GRID_RTOL = 1e-8


def ft_gradients(X: np.ndarray, Y: np.ndarray, v: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dL/dv, dL/dB) of L = ||X B^T v - Y||^2: (2 B X^T r, 2 v (X^T r)^T)."""
    g = X.T @ (X @ (B.T @ v) - Y)
    return 2.0 * B @ g, 2.0 * np.outer(v, g)


def _lp_operator(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """(F^T F, F^T Y) for F = X B0^T (n x k), from the in-S coordinates: F = coords (B0 S)^T."""
    F = problem.coords @ (problem.B0 @ problem.S_basis).T
    return F.T @ F, F.T @ problem.Y


def lp_limit(problem: Problem, v0: np.ndarray | None = None) -> np.ndarray:
    """v_lp(inf): limit of the LP flow from v0 (default problem.v0), in closed form.

    Parameters
    ----------
    problem : Problem
    v0 : ndarray, optional
        Head init (k,).

    Returns
    -------
    ndarray
        The flow moves v only inside range(F^T), F = X B0^T (n x k), and converges there to the
        min-norm least-squares solution F^+ Y; the component of v0 in null(F) never moves:
        v_lp(inf) = F^+ Y + (I - F^+ F) v0.

    References
    ----------
    Kumar et al., arXiv:2202.10054, Sec. 3 (LP as the first stage of LP-FT).
    """
    v0 = problem.v0 if v0 is None else np.asarray(v0, dtype=float)
    F = problem.coords @ (problem.B0 @ problem.S_basis).T
    F_pinv = np.linalg.pinv(F, rcond=1e-12)
    return F_pinv @ problem.Y + v0 - F_pinv @ (F @ v0)


def lp_closed_form(problem: Problem, t: np.ndarray, v0: np.ndarray | None = None) -> np.ndarray:
    """The LP flow's head at times t in closed form: v(t) = v_inf + U exp(-2 Lambda t) U^T (v0 - v_inf).

    Parameters
    ----------
    problem : Problem
    t : ndarray
        Times (T,).
    v0 : ndarray, optional
        Head init (default problem.v0).

    Returns
    -------
    ndarray
        (T, k) heads. F^T F = U Lambda U^T (F = X B0^T); LP is dv/dt = -2 (F^T F v - F^T Y), so the
        error v - v_inf decays along each eigenvector at rate 2 lambda (not at all on null(F)).
    """
    v0 = problem.v0 if v0 is None else np.asarray(v0, dtype=float)
    lam, U = np.linalg.eigh(_lp_operator(problem)[0])
    v_inf = lp_limit(problem, v0)
    coef = U.T @ (v0 - v_inf)
    return v_inf + (np.exp(-2.0 * np.outer(np.asarray(t, dtype=float), lam)) * coef) @ U.T


def head_norm_floor(problem: Problem) -> float:
    """A lower bound on ||v||^2 at any zero-training-loss point the FT flow from B0 can reach.

    At such a point B^T v agrees with w* on S, so ||P_S w*|| <= ||B||_2 ||v||; balancedness
    (Lemma A.4) gives B B^T = v v^T - v0 v0^T + B0 B0^T, hence ||B||_2^2 <= 1 + ||v||^2 (B0 has
    orthonormal rows) and ||v||^2 >= (sqrt(1 + 4 ||P_S w*||^2) - 1) / 2.
    """
    w_s2 = float(np.sum((problem.S_basis.T @ problem.w_star) ** 2))
    return (np.sqrt(1.0 + 4.0 * w_s2) - 1.0) / 2.0


def default_horizon(problem: Problem, method: str = "ft") -> float:
    """A time by which the flow of `method` has converged, from the problem's spectrum.

    Parameters
    ----------
    problem : Problem
    method : str
        "lp", "ft" or "lp_ft".

    Returns
    -------
    float
        FT / LP-FT: ln(1 / STOP_FACTOR) / (lambda_min(G) h), G = coords^T coords the in-S Gram
        matrix and h = `head_norm_floor`: near a zero-loss point the slowest linearised rate of
        the loss is 4 ||v||^2 lambda_min(G) >= 4 h lambda_min(G), so this is 4x the time to shrink
        the loss by STOP_FACTOR (generous: converged flows stop early, `simulate`'s stop_factor).
        LP: 40 / mu, mu the smallest nonzero eigenvalue of F^T F, F = X B0^T (LP's slowest rate
        is 2 mu; LP's loss does not go to 0). Trajectories report their train loss so callers
        can check convergence.
    """
    if method == "lp":
        lam = np.linalg.eigvalsh(_lp_operator(problem)[0])
        return 40.0 / lam[lam > 1e-10 * lam[-1]][0]
    return float(np.log(1.0 / STOP_FACTOR) / (problem.gram_eigenvalues.min() * head_norm_floor(problem)))


def stiffness_index(problem: Problem, method: str = "ft") -> float:
    """Horizon over the fastest linearised time scale: ~ the steps an explicit solver needs to cross it.

    Parameters
    ----------
    problem : Problem
    method : str
        "lp", "ft" or "lp_ft".

    Returns
    -------
    float
        `default_horizon` x the fastest rate. LP: 2 lambda_max(F^T F), F = X B0^T. FT / LP-FT:
        2 lambda_max(G) (1 + s), G the in-S Gram matrix and s = max(||v0||^2, ||v_lp(inf)||^2, h)
        (h = `head_norm_floor`): the linearised FT rates are 2 lambda(G) (||v||^2 + sigma^2(B S)) and
        ||B S||_2^2 <= 1 + ||v||^2. Large for ill-conditioned in-S data (m = n), large heads, and
        flows that start at rest (LP-FT when LP already fits S: early stopping never triggers).
        An estimate for choosing a solver; accuracy never depends on it.
    """
    if method == "lp":
        return float(default_horizon(problem, "lp") * 2.0 * np.linalg.eigvalsh(_lp_operator(problem)[0])[-1])
    v_lp = lp_limit(problem)
    s = max(float(problem.v0 @ problem.v0), float(v_lp @ v_lp), head_norm_floor(problem))
    return float(default_horizon(problem, method) * 2.0 * problem.gram_eigenvalues.max() * (1.0 + s))


def choose_solver(problem: Problem, method: str = "ft") -> str:
    """"Radau" (implicit, analytic sparse Jacobian) when `stiffness_index` > STIFF_INDEX, else "DOP853"."""
    return "Radau" if stiffness_index(problem, method) > STIFF_INDEX else "DOP853"


def time_grid(t_max: float, n_times: int) -> np.ndarray:
    """0 followed by a geometric grid on [1e-6 t_max, t_max]: resolves early transients and the tail."""
    if n_times < 2:
        raise ValueError(f"n_times must be >= 2, got {n_times}")
    if not (t_max > 0 and np.isfinite(t_max)):
        raise ValueError(f"t_max must be finite and > 0, got {t_max}")
    if n_times == 2:
        return np.array([0.0, t_max])
    return np.concatenate([[0.0], np.geomspace(1e-6 * t_max, t_max, n_times - 1)])


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A flow sampled at times t (T,). B(t_i) = B0 + delta[i] @ basis.T (basis None: identity).

    Recorded per time: train_loss, id_loss (||P_S e||^2), ood_loss (e^T Sigma e), feature_change
    (||B - B0||_F), balance_drift (||(v v^T - B B^T)(t) - (v v^T - B B^T)(0)||_F) and perp_drift
    (||(B(t) - B0) P_{S_perp}||_2 = max over unit x in S_perp of ||B(t) x - B0 x||). The reduced
    integrator keeps B - B0 inside S by construction, so its perp_drift is None: invariant 1 is
    tested with the full integrator. solver: the stepper used ("DOP853" or "Radau"). stopped_at:
    the time the converged flow was stopped (grid points after it repeat that state), None if it
    ran to t_max.
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
        """B(t_i) (k x d)."""
        d = self.delta[i]
        return self.B0 + (d if self.basis is None else d @ self.basis.T)

    @property
    def v_final(self) -> np.ndarray:
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
    method : str
        "lp" (B = B0, head from v0), "ft" (both layers from (v0, B0)), "lp_ft" (both layers from
        (lp_limit(problem), B0)).
    t_max : float, optional
        Horizon (default `default_horizon`, from the problem's spectrum).
    n_times : int
        Grid size; every grid time is a solver step endpoint (accuracy: GRID_RTOL).
    integrator : str
        "reduced" (fast, exact reparametrisation in S) or "full" (the d-space reference).
    rtol, atol : float
        Solver tolerances; rtol must be <= 1e-9.
    solver : str
        "auto" (reduced: `choose_solver` from the stiffness of the in-S Gram matrix; full:
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

    References
    ----------
    Kumar et al., arXiv:2202.10054, Sec. 3 (the LP, FT and LP-FT flows).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
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

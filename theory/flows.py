"""Exact gradient flows of linear probing (LP), fine-tuning (FT) and LP-FT (Kumar et al. 2022, Sec. 3).

Loss L(v, B) = ||X B^T v - Y||^2 (no 1/n). With r = X B^T v - Y the flows are
    FT:    dv/dt = -2 B X^T r,   dB/dt = -2 v (X^T r)^T,   from (v0, B0);
    LP:    B = B0 fixed,         dv/dt = -2 B0 X^T r;
    LP-FT: FT started from (v_lp(inf), B0), v_lp(inf) in closed form (`lp_limit`).

Two integrators solve the same ODE with scipy's `solve_ivp`:
  * "full": the plain state (v, B) in R^k x R^{k x d}, using X itself (the reference);
  * "reduced": X^T r lies in S = rowspace(X), so B(t) = B0 + C(t) Q^T with Q (d x m) an orthonormal
    basis of S, and the flow needs X only through Q^T X^T X Q and Q^T X^T Y. The state (v, C) has
    k + k m entries: per-step cost independent of n and of d - m.
Both record the same `Trajectory` on a time grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from theory.problem import Problem

METHODS = ("lp", "ft", "lpft")
INTEGRATORS = ("reduced", "full")
#: default tolerances: rtol <= 1e-9 as required; atol is absolute on every state entry
#: (v and B entries are O(1) in the generated problems).
RTOL = 1e-10
ATOL = 1e-12
#: converged flows stop once L <= STOP_FACTOR max(L(0), ||Y||^2) (see `simulate`).
STOP_FACTOR = 1e-18


def ft_gradients(X: np.ndarray, Y: np.ndarray, v: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dL/dv, dL/dB) of L = ||X B^T v - Y||^2: (2 B X^T r, 2 v (X^T r)^T)."""
    g = X.T @ (X @ (B.T @ v) - Y)
    return 2.0 * B @ g, 2.0 * np.outer(v, g)


def lp_limit(problem: Problem, v0: np.ndarray | None = None) -> np.ndarray:
    """v_lp(inf): limit of the LP flow from v0 (default problem.v0), in closed form.

    The flow moves v only inside range(F^T), F = X B0^T (n x k), and converges there to the
    min-norm least-squares solution F^+ Y; the component of v0 in null(F) never moves:
        v_lp(inf) = F^+ Y + (I - F^+ F) v0.
    """
    v0 = problem.v0 if v0 is None else np.asarray(v0, dtype=float)
    F = problem.X @ problem.B0.T
    F_pinv = np.linalg.pinv(F, rcond=1e-12)
    return F_pinv @ problem.Y + v0 - F_pinv @ (F @ v0)


def default_horizon(problem: Problem, method: str = "ft") -> float:
    """A time by which the flow of `method` has converged on the generated problems: c / rate.

    FT / LP-FT: c = 100, rate = lambda_min(Z^T Z) min(||w*||^2, 1), Z = X Q, about FT's slowest
    linearised rate near a zero-loss point (2 lambda ||v||^2 with ||v|| ~ ||w*||); generous because
    converged FT flows stop early (`simulate`'s stop_factor). LP: c = 40, rate = smallest nonzero
    eigenvalue of F^T F, F = X B0^T (LP's slowest rate is twice that; LP's loss does not go to 0).
    Trajectories report their train loss so callers can check convergence.
    """
    if method == "lp":
        F = problem.X @ problem.B0.T
        lam = np.linalg.eigvalsh(F.T @ F)
        return 40.0 / lam[lam > 1e-10 * lam[-1]][0]
    Z = problem.X @ problem.S_basis
    return 100.0 / (np.linalg.eigvalsh(Z.T @ Z)[0] * min(float(np.linalg.norm(problem.w_star)) ** 2, 1.0))


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
    tested with the full integrator. stopped_at: the time the converged flow was stopped (grid
    points after it repeat that state), None if it ran to t_max.
    """

    method: str
    integrator: str
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


def _solve(rhs, y0: np.ndarray, t: np.ndarray, rtol: float, atol: float, solver: str,
           loss_fn, stop_loss: float | None) -> tuple[np.ndarray, int, float | None]:
    """States on the grid t (len(t) x state), RHS evaluations, and the stopping time (None if none).

    With stop_loss, integration stops once the train loss loss_fn(y) falls to stop_loss (a terminal
    event); later grid points repeat the stopped state. Not armed when the loss starts below it,
    so a flow at rest is still integrated over the whole grid.
    """
    events = None
    if stop_loss is not None and loss_fn(y0) > stop_loss:
        def converged(_t, y):
            return loss_fn(y) - stop_loss
        converged.terminal, converged.direction = True, -1
        events = converged
    sol = solve_ivp(rhs, (0.0, t[-1]), y0, method=solver, t_eval=t, rtol=rtol, atol=atol, events=events)
    if sol.status < 0:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    Y = sol.y.T
    if sol.status == 1:
        y_stop = sol.y_events[0][0]
        Y = np.vstack([Y, np.repeat(y_stop[None], len(t) - len(Y), axis=0)])
        return Y, sol.nfev, float(sol.t_events[0][0])
    return Y, sol.nfev, None


def _balance_drift(v: np.ndarray, v0: np.ndarray, dBBt: np.ndarray) -> np.ndarray:
    """||v v^T - v0 v0^T - (B B^T - B0 B0^T)||_F per time, given dBBt = B B^T - B0 B0^T (T,k,k)."""
    vvT = np.einsum("ti,tj->tij", v, v) - np.outer(v0, v0)
    return np.linalg.norm(vvT - dBBt, axis=(1, 2))


def _run_reduced(problem: Problem, method: str, v_init: np.ndarray, train_features: bool,
                 t: np.ndarray, rtol: float, atol: float, solver: str, stop_loss: float | None) -> Trajectory:
    Q = problem.S_basis
    k, m = problem.k, problem.m
    Z = problem.X @ Q
    Gm, hm = Z.T @ Z, Z.T @ problem.Y
    A0 = problem.B0 @ Q

    def rhs(_t, y):
        v = y[:k]
        Bq = A0 + y[k:].reshape(k, m) if train_features else A0
        g = Gm @ (Bq.T @ v) - hm
        dv = -2.0 * Bq @ g
        if not train_features:
            return dv
        return np.concatenate([dv, -2.0 * np.outer(v, g).ravel()])

    def loss(y):
        Bq = A0 + y[k:].reshape(k, m) if train_features else A0
        return float(np.sum((Z @ (Bq.T @ y[:k]) - problem.Y) ** 2))

    y0 = np.concatenate([v_init, np.zeros(k * m)]) if train_features else v_init.copy()
    states, nfev, stopped = _solve(rhs, y0, t, rtol, atol, solver, loss, stop_loss)
    V = states[:, :k]
    C = states[:, k:].reshape(-1, k, m) if train_features else np.zeros((len(t), k, m))
    z = np.einsum("tkm,tk->tm", A0 + C, V)                      # Q^T B^T v
    train = np.sum((z @ Z.T - problem.Y) ** 2, axis=1)
    idl = np.sum((z - Q.T @ problem.w_star) ** 2, axis=1)
    P = problem.ood_projections                                 # L^T [B0^T | Q | w*]
    Le = V @ P[:, :k].T + np.einsum("tkm,tk->tm", C, V) @ P[:, k:k + m].T - P[:, -1]
    CA = np.einsum("tim,jm->tij", C, A0)
    dBBt = CA + CA.transpose(0, 2, 1) + np.einsum("tim,tjm->tij", C, C)
    return Trajectory(method, "reduced", t, V, C, Q, problem.B0, train, idl, np.sum(Le ** 2, axis=1),
                      np.linalg.norm(C, axis=(1, 2)), _balance_drift(V, v_init, dBBt), None, nfev, stopped)


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
    states, nfev, stopped = _solve(rhs, y0, t, rtol, atol, solver, loss, stop_loss)
    V = states[:, :k]
    B = states[:, k:].reshape(-1, k, d) if train_features else np.broadcast_to(B0, (len(t), k, d))
    BtV = np.einsum("tkd,tk->td", B, V, optimize=True)
    E = BtV - problem.w_star                                    # e = B^T v - w*
    train = np.sum((BtV @ X.T - Y) ** 2, axis=1)
    S = problem.S_basis
    idl = np.sum((E @ S) ** 2, axis=1)
    ood = np.sum((E @ problem.Sigma) * E, axis=1)
    delta = B - B0
    perp = delta - (delta @ S) @ S.T                            # (B - B0) P_{S_perp}
    perp_drift = np.linalg.norm(perp, 2, axis=(1, 2))
    dBBt = B @ B.transpose(0, 2, 1) - B0 @ B0.T
    return Trajectory(method, "full", t, V, np.ascontiguousarray(delta), None, B0, train, idl, ood,
                      np.linalg.norm(delta, axis=(1, 2)), _balance_drift(V, v_init, dBBt), perp_drift,
                      nfev, stopped)


def simulate(problem: Problem, method: str, t_max: float | None = None, n_times: int = 200,
             integrator: str = "reduced", rtol: float = RTOL, atol: float = ATOL,
             solver: str = "DOP853", v_init: np.ndarray | None = None,
             stop_factor: float | None = STOP_FACTOR) -> Trajectory:
    """Integrate the LP, FT or LP-FT gradient flow of `problem` on `time_grid(t_max, n_times)`.

    method: "lp" (B = B0, head from v0), "ft" (both layers from (v0, B0)), "lpft" (both layers from
    (lp_limit(problem), B0)); v_init overrides the starting head. integrator: "reduced" (fast, exact
    reparametrisation) or "full" (reference). solver: "DOP853" or "Radau"; rtol must be <= 1e-9.
    stop_factor: stop once the train loss is <= stop_factor max(L(0), ||Y||^2) (None: run to t_max);
    at 1e-18 (about 30x above the loss floor set by atol) the motion left is ~1e-8, the size of the
    solver error itself (reduced and full integrators agree to ~1e-8).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")
    if solver not in ("DOP853", "Radau"):
        raise ValueError(f"solver must be 'DOP853' or 'Radau', got {solver!r}")
    if not (0 < rtol <= 1e-9) or not atol > 0:
        raise ValueError(f"need 0 < rtol <= 1e-9 and atol > 0, got rtol={rtol}, atol={atol}")
    if v_init is None:
        v_init = lp_limit(problem) if method == "lpft" else problem.v0
    v_init = np.array(v_init, dtype=float)
    if v_init.shape != (problem.k,) or not np.all(np.isfinite(v_init)):
        raise ValueError(f"v_init must be a finite vector of length k={problem.k}")
    t = time_grid(default_horizon(problem, method) if t_max is None else float(t_max), n_times)
    stop_loss = None
    if stop_factor is not None:
        stop_loss = stop_factor * max(problem.train_loss(v_init, problem.B0), float(problem.Y @ problem.Y))
    run = _run_reduced if integrator == "reduced" else _run_full
    return run(problem, method, v_init, method != "lp", t, rtol, atol, solver, stop_loss)

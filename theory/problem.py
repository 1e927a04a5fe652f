"""Two-layer linear-network fine-tuning problems (Kumar et al., ICLR 2022, Sec. 3).

A `Problem` holds everything a gradient flow needs: training inputs X (rows on an m-dim subspace S),
labels Y = X w*, the ground truth (v*, B*), the pretrained features B0, the head init v0 and the OOD
second moment Sigma. `make_problem` draws one reproducibly from its parameters (its `ProblemSpec`):
B0 is built at a *requested* spectral distance eps from a rotation of B*, and the eps actually
stored is re-measured by orthogonal Procrustes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OOD_KINDS = ("identity", "random", "in_S", "out_S")
_ORTHONORMAL_TOL = 1e-8
_SYMMETRY_TOL = 1e-10


@dataclass(frozen=True)
class ProblemSpec:
    """Parameters that reproduce a `Problem` exactly (see `make_problem`)."""

    d: int
    k: int
    n: int
    m: int | None = None
    eps: float = 0.1
    ood: str = "identity"
    ood_share: float = 0.95
    head_scale: float = 0.1
    w_norm: float = 1.0
    seed: int = 0


def _check_finite(name: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")


def _check_orthonormal_rows(name: str, a: np.ndarray) -> None:
    err = np.abs(a @ a.T - np.eye(a.shape[0])).max()
    if err > _ORTHONORMAL_TOL:
        raise ValueError(f"{name} must have orthonormal rows: max |{name} {name}^T - I| = {err:.3g}")


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float, copy=True)
    a.setflags(write=False)
    return a


def row_space_basis(X: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Orthonormal basis (d x rank) of rowspace(X): the training subspace S."""
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    rank = int(np.sum(s > rtol * max(s.max(initial=0.0), 1e-300)))
    return vt[:rank].T.copy()


def procrustes_rotation(B0: np.ndarray, B_star: np.ndarray) -> np.ndarray:
    """The orthogonal U minimising ||B0 - U B*|| (polar factor of B0 B*^T).

    For matrices with orthonormal rows the polar factor is optimal in every unitarily invariant
    norm, the spectral norm included (Fan-Hoffman), so it gives eps = min_U ||B0 - U B*||_2.
    """
    w, _, vt = np.linalg.svd(B0 @ B_star.T)
    return w @ vt


def feature_error(B0: np.ndarray, B_star: np.ndarray) -> float:
    """eps = min over orthogonal U of ||B0 - U B*||_2 (theory-facts: feature error)."""
    U = procrustes_rotation(B0, B_star)
    return float(np.linalg.norm(B0 - U @ B_star, 2))


@dataclass(frozen=True, eq=False)
class Problem:
    """One fine-tuning problem; arrays are read-only and validated on construction.

    X (n x d) training inputs, Y (n,) labels, B_star / B0 (k x d, orthonormal rows), v_star / v0 (k,),
    Sigma (d x d, symmetric positive definite OOD second moment). Derived on construction:
    S_basis (d x m, orthonormal basis of rowspace(X)), w_star = B*^T v*, eps (Procrustes-measured),
    ood_factor L with Sigma = L L^T (Cholesky) and ood_projections = L^T [B0^T | S_basis | w*]
    (d x (k + m + 1)): every flow on the problem then gets e^T Sigma e = ||L^T e||^2 for
    e = B0^T v + S_basis c - w* in O(d (k + m)), without touching the d x d matrix again.
    """

    X: np.ndarray
    Y: np.ndarray
    B_star: np.ndarray
    v_star: np.ndarray
    B0: np.ndarray
    v0: np.ndarray
    Sigma: np.ndarray
    spec: ProblemSpec | None = None
    S_basis: np.ndarray = field(init=False, repr=False)
    w_star: np.ndarray = field(init=False, repr=False)
    eps: float = field(init=False)
    ood_factor: np.ndarray = field(init=False, repr=False)
    ood_projections: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = ("X", "Y", "B_star", "v_star", "B0", "v0", "Sigma")
        for name in names:
            a = np.asarray(getattr(self, name), dtype=float)
            _check_finite(name, a)
            object.__setattr__(self, name, _frozen(a))
        X, Y, Bs, vs, B0, v0, Sig = (getattr(self, nm) for nm in names)
        if X.ndim != 2:
            raise ValueError(f"X must be n x d, got shape {X.shape}")
        n, d = X.shape
        if Bs.ndim != 2 or Bs.shape[1] != d:
            raise ValueError(f"B_star must be k x d = k x {d}, got shape {Bs.shape}")
        k = Bs.shape[0]
        shapes = {"Y": (Y, (n,)), "v_star": (vs, (k,)), "B0": (B0, (k, d)), "v0": (v0, (k,)),
                  "Sigma": (Sig, (d, d))}
        for name, (a, shape) in shapes.items():
            if a.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
        if k >= n:
            raise ValueError(f"need k < n (overparameterised regime of Sec. 3), got k={k}, n={n}")
        if k >= d - n:
            raise ValueError(f"need k < d - n, got k={k}, d={d}, n={n}")
        _check_orthonormal_rows("B_star", Bs)
        _check_orthonormal_rows("B0", B0)
        asym = np.abs(Sig - Sig.T).max()
        if asym > _SYMMETRY_TOL * max(1.0, np.abs(Sig).max()):
            raise ValueError(f"Sigma must be symmetric: max |Sigma - Sigma^T| = {asym:.3g}")
        try:
            L = np.linalg.cholesky(Sig)
        except np.linalg.LinAlgError:
            raise ValueError("Sigma must be positive definite (it is singular or indefinite)") from None
        S = row_space_basis(X)
        object.__setattr__(self, "S_basis", _frozen(S))
        object.__setattr__(self, "w_star", _frozen(Bs.T @ vs))
        object.__setattr__(self, "eps", feature_error(B0, Bs))
        object.__setattr__(self, "ood_factor", _frozen(L))
        object.__setattr__(self, "ood_projections", _frozen(L.T @ np.column_stack([B0.T, S, self.w_star])))

    @property
    def d(self) -> int:
        return self.X.shape[1]

    @property
    def k(self) -> int:
        return self.B0.shape[0]

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def m(self) -> int:
        """Dimension of S = rowspace(X)."""
        return self.S_basis.shape[1]

    def ood_loss(self, v: np.ndarray, B: np.ndarray) -> float:
        """L_ood(v, B) = e^T Sigma e with e = B^T v - w* (exact, no sampling)."""
        e = B.T @ v - self.w_star
        return float(e @ self.Sigma @ e)

    def id_loss(self, v: np.ndarray, B: np.ndarray) -> float:
        """ID (subspace) loss E_{x ~ N(0, P_S)} (e^T x)^2 = ||P_S e||^2."""
        e = B.T @ v - self.w_star
        return float(np.sum((self.S_basis.T @ e) ** 2))

    def train_loss(self, v: np.ndarray, B: np.ndarray) -> float:
        """L(v, B) = ||X B^T v - Y||^2 (no 1/n, as in the paper)."""
        return float(np.sum((self.X @ (B.T @ v) - self.Y) ** 2))


def _orthonormal_columns(rng: np.random.Generator, d: int, c: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, c)))
    return q * np.sign(np.diag(r))


def _ood_second_moment(rng: np.random.Generator, spec: ProblemSpec, S: np.ndarray) -> np.ndarray:
    """Sigma of the requested kind, trace d (so identity is the reference scale).

    in_S / out_S put the share `ood_share` of the trace on S / S_perp (the rest spread on the other).
    """
    d, m = spec.d, S.shape[1]
    if spec.ood == "identity":
        return np.eye(d)
    if spec.ood == "random":
        A = rng.standard_normal((d, d))
        sig = A @ A.T / d + 0.1 * np.eye(d)
        return sig * (d / np.trace(sig))
    P = S @ S.T
    share_S = spec.ood_share if spec.ood == "in_S" else 1.0 - spec.ood_share
    return d * (share_S * P / m + (1.0 - share_S) * (np.eye(d) - P) / (d - m))


def make_problem(d: int, k: int, n: int, m: int | None = None, eps: float = 0.1,
                 ood: str = "identity", ood_share: float = 0.95, head_scale: float = 0.1,
                 w_norm: float = 1.0, seed: int = 0) -> Problem:
    """Draw a problem reproducibly from its parameters.

    d input dim, k feature dim, n training points on an m-dim subspace S (m <= n, default n;
    Gaussian within S, as in Thm 3.4/3.5). B* has random orthonormal rows, v* is random with
    ||v*|| = w_norm. B0 = cos(a) U B* + sin(a) P with U a random rotation and P orthonormal rows
    orthogonal to rowspace(B*), a = 2 arcsin(eps/2): then min_U ||B0 - U B*||_2 = eps exactly
    (eps in [0, sqrt 2]). ood: "identity", "random" (Wishart + 0.1 I), "in_S" / "out_S"
    (share `ood_share` of the trace on S / on S_perp). Head init v0 ~ N(0, head_scale^2 I).
    """
    m = n if m is None else m
    spec = ProblemSpec(d, k, n, m, float(eps), ood, float(ood_share), float(head_scale),
                       float(w_norm), int(seed))
    for name, val in (("d", d), ("k", k), ("n", n), ("m", m)):
        if not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name} must be a positive integer, got {val!r}")
    if m > n:
        raise ValueError(f"need m <= n (inputs span at most n directions), got m={m}, n={n}")
    if k >= n or k >= d - n:
        raise ValueError(f"need k < n and k < d - n, got d={d}, k={k}, n={n}")
    if 2 * k > d:
        raise ValueError(f"need 2k <= d to place B0 off rowspace(B*), got d={d}, k={k}")
    if not (0.0 <= eps <= np.sqrt(2.0)) or not np.isfinite(eps):
        raise ValueError(f"eps must lie in [0, sqrt(2)], got {eps}")
    if ood not in OOD_KINDS:
        raise ValueError(f"ood must be one of {OOD_KINDS}, got {ood!r}")
    if not (0.0 < ood_share < 1.0):
        raise ValueError(f"ood_share must lie in (0, 1), got {ood_share}")
    if not (head_scale >= 0.0 and np.isfinite(head_scale)):
        raise ValueError(f"head_scale must be finite and >= 0, got {head_scale}")
    if not (w_norm > 0.0 and np.isfinite(w_norm)):
        raise ValueError(f"w_norm must be finite and > 0, got {w_norm}")

    rng = np.random.default_rng(seed)
    S = _orthonormal_columns(rng, d, m)
    X = rng.standard_normal((n, m)) @ S.T
    frame = _orthonormal_columns(rng, d, 2 * k)
    B_star, P = frame[:, :k].T, frame[:, k:].T
    v_star = rng.standard_normal(k)
    v_star *= w_norm / np.linalg.norm(v_star)
    U = _orthonormal_columns(rng, k, k)
    angle = 2.0 * np.arcsin(eps / 2.0)
    B0 = np.cos(angle) * U @ B_star + np.sin(angle) * P
    v0 = head_scale * rng.standard_normal(k)
    Sigma = _ood_second_moment(rng, spec, S)
    Y = X @ (B_star.T @ v_star)
    return Problem(X, Y, B_star, v_star, B0, v0, Sigma, spec)

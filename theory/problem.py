"""Two-layer linear-network fine-tuning problems (Kumar et al., arXiv:2202.10054, Sec. 3).

A `Problem` holds everything a gradient flow needs: training inputs X (rows on an m-dim subspace S,
kept as n x m coordinates plus a d x m basis), labels Y = X w*, the ground truth (v*, B*), the
pretrained features B0, the head init v0 and the OOD second moment Sigma (a structured operator
from `theory.second_moment`; a d x d matrix only when one is passed). Memory is O(d (m + k)).
`make_problem` draws one reproducibly from its parameters (its `ProblemSpec`): B0 is built at a
*requested* spectral distance eps from a rotation of B*, and the eps actually stored is re-measured
by orthogonal Procrustes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

from theory.second_moment import OOD_KINDS, SecondMoment, as_second_moment, draw_ood_second_moment

_ORTHONORMAL_TOL = 1e-8
#: singular values of the part of [B0^T | w*] outside S below this (relative) are rounding, dropped.
_OOD_RANK_RTOL = 1e-13


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
    ood_rank: int | None = None


def _check_finite(name: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")


def _check_orthonormal_rows(name: str, a: np.ndarray) -> None:
    err = np.abs(a @ a.T - np.eye(a.shape[0])).max()
    if err > _ORTHONORMAL_TOL:
        raise ValueError(f"{name} must have orthonormal rows: max |{name} {name}^T - I| = {err:.3g}")


def _frozen(a: np.ndarray, copy: bool = True) -> np.ndarray:
    """A read-only float array: a copy of `a`, or `a` itself when the caller owns it (copy=False)."""
    a = np.array(a, dtype=float, copy=True) if copy else np.asarray(a, dtype=float)
    a.setflags(write=False)
    return a


def _numerical_rank(s: np.ndarray, rtol: float = 1e-10) -> int:
    """Number of singular values s above rtol * max(s)."""
    return int(np.sum(s > rtol * max(s.max(initial=0.0), 1e-300)))


def procrustes_rotation(B0: np.ndarray, B_star: np.ndarray) -> np.ndarray:
    """The orthogonal U minimising ||B0 - U B*|| (polar factor of B0 B*^T).

    For matrices with orthonormal rows the polar factor is optimal in every unitarily invariant
    norm, the spectral norm included (Fan-Hoffman), so it gives eps = min_U ||B0 - U B*||_2.
    """
    w, _, vt = np.linalg.svd(B0 @ B_star.T)
    return w @ vt


def feature_error(B0: np.ndarray, B_star: np.ndarray) -> float:
    """Feature error eps = min over orthogonal U of ||B0 - U B*||_2 (Kumar et al., arXiv:2202.10054, Sec. 3)."""
    U = procrustes_rotation(B0, B_star)
    return float(np.linalg.norm(B0 - U @ B_star, 2))


#: orthonormality of a given input basis is checked on this many random probe vectors (O(d m) each).
_BASIS_PROBES = 4


def _input_subspace(X: np.ndarray, basis: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """(S_basis d x m, coords n x m, Gram eigenvalues (m,), eigenvectors m x m), X = coords S_basis^T.

    coords^T coords = V diag(lam) V^T. Dense X: S_basis is X's right singular basis (V = I).
    With `basis`, X holds the n x m' coordinates of the inputs in that orthonormal d x m' basis,
    which is kept as S_basis when X has full column rank (only the n x m' matrix is decomposed:
    no n x d array, no d x m' product).
    """
    u, s, vt = np.linalg.svd(X, full_matrices=False)
    rank = _numerical_rank(s)
    lam, eye = s[:rank] ** 2, np.eye(rank)
    if basis is None:
        S = vt[:rank].T.copy()
        return S, X @ S, lam, eye
    if rank == X.shape[1]:
        return basis, X, lam, vt.T.copy()
    return basis @ vt[:rank].T, u[:, :rank] * s[:rank], lam, eye


class Problem:
    """One fine-tuning problem (Kumar et al., arXiv:2202.10054, Sec. 3); read-only, validated on construction.

    Parameters
    ----------
    X : ndarray
        Training inputs: n x d (rows = inputs), or, with `basis`, their n x m' coordinates in it.
    Y : ndarray
        Labels (n,).
    B_star, B0 : ndarray
        Ground-truth and pretrained features, k x d with orthonormal rows.
    v_star, v0 : ndarray
        Ground-truth head and head init (k,).
    Sigma : SecondMoment or ndarray
        OOD second moment: a structured operator (`theory.second_moment`) or a dense d x d array.
    spec : ProblemSpec, optional
        The parameters that drew the problem (`make_problem`).
    basis : ndarray, optional
        d x m' orthonormal columns: X is then given as coordinates (memory O(d (m' + k)); the dense
        n x d X is built only if `X` is read).

    Notes
    -----
    Derived: S_basis (d x m orthonormal basis of S = rowspace X, m = rank X: the given basis, or
    X's right singular vectors), coords (n x m, X = coords S_basis^T), the in-S Gram matrix
    coords^T coords = V diag(gram_eigenvalues) V^T with V = gram_eigenvectors, w_star = B*^T v*, eps (Procrustes-measured).
    Requires 1 <= m, k < n and k < d - m (S_perp must have room for the k features).
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray, B_star: np.ndarray, v_star: np.ndarray, B0: np.ndarray,
                 v0: np.ndarray, Sigma: SecondMoment | np.ndarray, spec: ProblemSpec | None = None,
                 basis: np.ndarray | None = None) -> None:
        arrays = {"X": X, "Y": Y, "B_star": B_star, "v_star": v_star, "B0": B0, "v0": v0}
        if basis is not None:
            arrays["basis"] = basis
        for name in arrays:
            a = np.asarray(arrays[name], dtype=float)
            _check_finite(name, a)
            arrays[name] = _frozen(a)
        X, Y, Bs, vs, B0, v0 = (arrays[nm] for nm in ("X", "Y", "B_star", "v_star", "B0", "v0"))
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-d array (n x d, or n x m' coordinates with basis), got shape {X.shape}")
        n = X.shape[0]
        if basis is None:
            d = X.shape[1]
        else:
            basis = arrays["basis"]
            if basis.ndim != 2 or basis.shape[1] != X.shape[1]:
                raise ValueError(f"basis must be d x m' with m' = X.shape[1] = {X.shape[1]}, got shape {basis.shape}")
            d = basis.shape[0]
            probe = np.random.default_rng(0).standard_normal((basis.shape[1], _BASIS_PROBES))
            err = np.abs(basis.T @ (basis @ probe) - probe).max() / np.abs(probe).max()
            if err > _ORTHONORMAL_TOL:
                raise ValueError(f"basis must have orthonormal columns: |basis^T basis x - x| / |x| = {err:.3g}")
        if Bs.ndim != 2 or Bs.shape[1] != d:
            raise ValueError(f"B_star must be k x d = k x {d}, got shape {Bs.shape}")
        k = Bs.shape[0]
        shapes = {"Y": (Y, (n,)), "v_star": (vs, (k,)), "B0": (B0, (k, d)), "v0": (v0, (k,))}
        for name, (a, shape) in shapes.items():
            if a.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
        Sig = as_second_moment(Sigma)
        if Sig.d != d:
            raise ValueError(f"Sigma must be d x d = {d} x {d}, got {Sig.d} x {Sig.d}")
        _check_orthonormal_rows("B_star", Bs)
        _check_orthonormal_rows("B0", B0)
        S, coords, lam, V = _input_subspace(X, basis)
        m = S.shape[1]
        if m == 0:
            raise ValueError("X has rank 0 (every input is zero): the training subspace S is empty")
        if k >= n:
            raise ValueError(f"need k < n (overparameterised regime of Sec. 3), got k={k}, n={n}")
        if k >= d - m:
            raise ValueError(f"need k < d - m (S_perp, of dimension d - m, must hold the k features), "
                             f"got k={k}, d={d}, m=rank X={m}")
        self._given_X, self._given_basis = X, basis
        self.Y, self.B_star, self.v_star, self.B0, self.v0 = Y, Bs, vs, B0, v0
        self.Sigma, self.spec = Sig, spec
        self.S_basis, self.coords = _frozen(S, copy=basis is None), _frozen(coords, copy=False)
        self.gram_eigenvalues, self.gram_eigenvectors = _frozen(lam, copy=False), _frozen(V, copy=False)
        self.w_star = _frozen(Bs.T @ vs, copy=False)
        self.eps = feature_error(B0, Bs)
        self._frozen = True

    def __setattr__(self, name: str, value: object) -> None:
        if getattr(self, "_frozen", False) and not name.startswith("_cached"):
            raise AttributeError(f"Problem is read-only (cannot set {name!r})")
        object.__setattr__(self, name, value)

    @property
    def X(self) -> np.ndarray:
        """Training inputs n x d (built on first use when the problem was given coordinates)."""
        if self._given_basis is None:
            return self._given_X
        if getattr(self, "_cached_X", None) is None:
            self._cached_X = _frozen(self._given_X @ self._given_basis.T, copy=False)
        return self._cached_X

    @property
    def d(self) -> int:
        return self.B0.shape[1]

    @property
    def k(self) -> int:
        return self.B0.shape[0]

    @property
    def n(self) -> int:
        return self.Y.shape[0]

    @property
    def m(self) -> int:
        """Dimension of S = rowspace(X)."""
        return self.S_basis.shape[1]

    @property
    def sigma_min(self) -> float:
        """Smallest eigenvalue of Sigma (from its structure)."""
        return self.Sigma.sigma_min()

    @property
    def ood_projections(self) -> np.ndarray:
        """P (c x c, c = k + m + 1) with e^T Sigma e = ||P a||^2 for e = M a, M = [B0^T | S_basis | w*].

        The flows write e = B0^T v + S_basis c - w* as M a, a = [v; c; -1]. T = [B0^T | w*] is
        split by block Gram-Schmidt (two passes) against the orthonormal S_basis: T = S_basis K + Q2 R2
        (Q2 orthonormal, from the SVD of the residual; P has m + rank rows), so e = Q y for the orthonormal Q = [S_basis | Q2] and y = R a, R = [[K_v, I, K_w], [R2_v, 0, R2_w]].
        With Q^T Sigma Q = L L^T (Cholesky), P = L^T R: the OOD loss is then a sum of squares in
        O(c^2) per time (non-negative, accurate near zero), after an O(d m k) setup plus
        Sigma's own cost (`SecondMoment.gram_orthonormal`).
        """
        if getattr(self, "_cached_ood_projections", None) is None:
            S, k, m = self.S_basis, self.k, self.m
            T = np.column_stack([self.B0.T, self.w_star])
            K = np.zeros((m, k + 1))
            for _ in range(2):
                step = S.T @ T
                K += step
                T = T - S @ step
            # T = Q2 R2 from the SVD, dropping directions below rounding (T is rank-deficient when
            # w* lies in rowspace(B0) + S, e.g. eps = 0), so that [S_basis | Q2] stays orthonormal
            u, sv, wt = np.linalg.svd(T, full_matrices=False)
            keep = sv > _OOD_RANK_RTOL * max(sv.max(initial=0.0), float(np.linalg.norm(self.w_star)), 1.0)
            Q2, R2 = u[:, keep], sv[keep, None] * wt[keep]
            R = np.block([[K[:, :k], np.eye(m), K[:, k:]], [R2[:, :k], np.zeros((R2.shape[0], m)), R2[:, k:]]])
            L = np.linalg.cholesky(self.Sigma.gram_orthonormal(np.column_stack([S, Q2])))
            self._cached_ood_projections = _frozen(L.T @ R, copy=False)
        return self._cached_ood_projections

    def ood_loss(self, v: np.ndarray, B: np.ndarray) -> float:
        """L_ood(v, B) = e^T Sigma e with e = B^T v - w* (exact, no sampling)."""
        return float(self.Sigma.quad(B.T @ v - self.w_star))

    def id_loss(self, v: np.ndarray, B: np.ndarray) -> float:
        """ID (subspace) loss E_{x ~ N(0, P_S)} (e^T x)^2 = ||P_S e||^2."""
        e = B.T @ v - self.w_star
        return float(np.sum((self.S_basis.T @ e) ** 2))

    def train_loss(self, v: np.ndarray, B: np.ndarray) -> float:
        """L(v, B) = ||X B^T v - Y||^2 (no 1/n, as in the paper), via X = coords S_basis^T."""
        return float(np.sum((self.coords @ (self.S_basis.T @ (B.T @ v)) - self.Y) ** 2))


#: blocks with d c^2 above this are orthonormalised by Cholesky-QR2 (two GEMM-rich passes),
#: smaller ones by Householder QR; both give the Q of the QR with positive diagonal R.
_CHOLQR_WORK = 10 ** 7


def _orthonormal_columns(rng: np.random.Generator, d: int, c: int) -> np.ndarray:
    """A Haar-random d x c block with orthonormal columns: Q of a Gaussian block, diag(R) > 0."""
    A = rng.standard_normal((d, c))
    if d * c * c <= _CHOLQR_WORK:
        q, r = np.linalg.qr(A)
        return q * np.sign(np.diag(r))
    for _ in range(2):                        # Cholesky-QR2: orthonormal to rounding for cond(A) << 1e8
        R = np.linalg.cholesky(A.T @ A).T
        A = A @ solve_triangular(R, np.eye(c))           # A R^{-1}: one GEMM
    return A


def _check_int(name: str, val: object, low: int) -> None:
    if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {val!r}")


def make_problem(d: int, k: int, n: int, m: int | None = None, eps: float = 0.1,
                 ood: str = "identity", ood_share: float = 0.95, head_scale: float = 0.1,
                 w_norm: float = 1.0, seed: int = 0, ood_rank: int | None = None) -> Problem:
    """Draw a problem reproducibly from its parameters, in O(d (m + k)) memory.

    Parameters
    ----------
    d, k, n : int
        Input dimension, feature dimension, number of training points.
    m : int, optional
        Dimension of the training subspace S (m <= n, default n); inputs are Gaussian within S,
        as in Thm 3.4/3.5, and stored as n x m coordinates plus the d x m basis of S.
    eps : float
        Feature error in [0, sqrt 2]: B0 = cos(a) U B* + sin(a) P with U a random rotation and P
        orthonormal rows orthogonal to rowspace(B*), a = 2 arcsin(eps/2), so that
        min_U ||B0 - U B*||_2 = eps exactly.
    ood : str
        OOD second moment (trace d): "identity", "random" (A A^T/d + 0.1 I, A d x ood_rank),
        "diagonal" (log-normal), "in_S" / "out_S" (share `ood_share` of the trace on S / S_perp).
    ood_share : float
        In (0, 1), for in_S / out_S.
    head_scale : float
        Head init v0 ~ N(0, head_scale^2 I).
    w_norm : float
        ||v*|| (B* has random orthonormal rows).
    seed : int
        Non-negative seed of numpy's generator.
    ood_rank : int, optional
        Columns of A for ood="random" (default d, the full-rank Wishart).

    Returns
    -------
    Problem
        With ``spec`` holding these parameters: ``make_problem(**dataclasses.asdict(p.spec))``
        rebuilds it exactly.

    Raises
    ------
    ValueError
        Naming the parameter that is out of range.

    References
    ----------
    Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
    Out-of-Distribution", arXiv:2202.10054, Sec. 3.

    Examples
    --------
    >>> p = make_problem(d=20, k=2, n=5, eps=0.1, seed=0)
    >>> p.X.shape, p.k, round(p.eps, 12)
    ((5, 20), 2, 0.1)
    >>> make_problem(d=20, k=2, n=5, seed=-1)
    Traceback (most recent call last):
    ...
    ValueError: seed must be an integer >= 0, got -1
    """
    m = n if m is None else m
    for name, val in (("d", d), ("k", k), ("n", n), ("m", m)):
        _check_int(name, val, 1)
    _check_int("seed", seed, 0)
    if ood_rank is not None:
        _check_int("ood_rank", ood_rank, 1)
        if ood_rank > d:
            raise ValueError(f"ood_rank must be <= d, got ood_rank={ood_rank}, d={d}")
    spec = ProblemSpec(int(d), int(k), int(n), int(m), float(eps), ood, float(ood_share), float(head_scale),
                       float(w_norm), int(seed), None if ood_rank is None else int(ood_rank))
    if m > n:
        raise ValueError(f"need m <= n (inputs span at most n directions), got m={m}, n={n}")
    if k >= n or k >= d - m:
        raise ValueError(f"need k < n and k < d - m (room for the features in S_perp), got d={d}, k={k}, n={n}, m={m}")
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
    Z = rng.standard_normal((n, m))                              # inputs X = Z S^T
    frame = _orthonormal_columns(rng, d, 2 * k)
    B_star, P = frame[:, :k].T, frame[:, k:].T
    v_star = rng.standard_normal(k)
    v_star *= w_norm / np.linalg.norm(v_star)
    U = _orthonormal_columns(rng, k, k)
    angle = 2.0 * np.arcsin(eps / 2.0)
    B0 = np.cos(angle) * U @ B_star + np.sin(angle) * P
    v0 = head_scale * rng.standard_normal(k)
    Sigma = draw_ood_second_moment(rng, spec.ood, S, spec.ood_share, spec.ood_rank)
    Y = Z @ (S.T @ (B_star.T @ v_star))
    return Problem(Z, Y, B_star, v_star, B0, v0, Sigma, spec, basis=S)

"""OOD second moments Sigma = E[x x^T] as structured operators (never d x d unless given dense).

The OOD loss of Kumar et al. (arXiv:2202.10054, Sec. 3) is e^T Sigma e with e = B^T v - w*, and the
FT lower bound (Thm 3.2/3.3) needs sigma_min(Sigma). Both come from the structure here:

* `StructuredSecondMoment`: Sigma = diag(D) + U diag(w) U^T, D a scalar or a length-d vector, U a
  d x r block (r may be 0). Identity, diagonal, low-rank + diagonal and the subspace split
  a P_S + b (I - P_S) of the `in_S` / `out_S` kinds are all of this form; memory O(d (r + 1)).
* `DenseSecondMoment`: a d x d matrix, only when the user passes one.

Every operator supports ``Sigma @ M``, ``M @ Sigma`` (so ``e @ Sigma @ e`` works on vectors),
`gram` (M^T Sigma M), `quad` (row-wise e^T Sigma e), `sigma_min`, `trace` and `dense`.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh

#: symmetry tolerance of a dense Sigma, relative to max(1, max |Sigma_ij|).
SYMMETRY_TOL = 1e-10
#: relative residual tolerance of the Lanczos sigma_min for a non-constant diagonal plus low rank.
EIGSH_TOL = 1e-12


class SecondMoment:
    """A symmetric positive definite d x d operator (abstract base).

    Subclasses implement `apply`, `sigma_min`, `trace` and `dense`; `gram` and `quad` follow.
    """

    #: numpy defers ``ndarray @ SecondMoment`` to ``__rmatmul__`` instead of making an object array.
    __array_ufunc__ = None
    kind: str
    d: int

    def apply(self, M: np.ndarray) -> np.ndarray:
        """Sigma @ M for M of shape (d,) or (d, c)."""
        raise NotImplementedError

    def sigma_min(self) -> float:
        """Smallest eigenvalue of Sigma."""
        raise NotImplementedError

    def trace(self) -> float:
        """tr(Sigma)."""
        raise NotImplementedError

    def dense(self) -> np.ndarray:
        """Sigma as a d x d array (O(d^2) memory: for tests and small problems)."""
        raise NotImplementedError

    def gram(self, M: np.ndarray) -> np.ndarray:
        """M^T Sigma M (c x c) for M of shape (d, c)."""
        G = M.T @ self.apply(M)
        return (G + G.T) / 2.0

    def gram_orthonormal(self, Q: np.ndarray) -> np.ndarray:
        """Q^T Sigma Q for Q (d x c) with orthonormal columns (structure may skip Q^T Q = I)."""
        return self.gram(Q)

    def quad(self, E: np.ndarray) -> np.ndarray | float:
        """e^T Sigma e for e of shape (d,) (a float) or for each row of E (T, d) (shape (T,))."""
        E = np.asarray(E, dtype=float)
        if E.ndim == 1:
            return float(E @ self.apply(E))
        return np.einsum("td,dt->t", E, self.apply(E.T))

    def __matmul__(self, M: np.ndarray) -> np.ndarray:
        return self.apply(np.asarray(M, dtype=float))

    def __rmatmul__(self, M: np.ndarray) -> np.ndarray:
        M = np.asarray(M, dtype=float)
        return self.apply(M) if M.ndim == 1 else self.apply(M.T).T

    @property
    def shape(self) -> tuple[int, int]:
        return (self.d, self.d)


class StructuredSecondMoment(SecondMoment):
    """Sigma = diag(D) + U diag(w) U^T.

    Parameters
    ----------
    d : int
        Dimension.
    diag : float or ndarray
        D: a scalar (Sigma's diagonal part is D I) or a length-d vector.
    U : ndarray, optional
        d x r low-rank factor (default: none, r = 0).
    weights : ndarray, optional
        Length-r weights w (default: ones); negative weights are allowed as long as Sigma stays
        positive definite (the subspace split a P_S + b (I - P_S) with a < b needs them).
    kind : str
        Label reported by problems and benchmarks.

    Raises
    ------
    ValueError
        On shape mismatch, non-finite entries, or a Sigma that is not positive definite.
    """

    def __init__(self, d: int, diag: float | np.ndarray, U: np.ndarray | None = None,
                 weights: np.ndarray | None = None, kind: str = "low_rank+diagonal") -> None:
        self.d, self.kind = int(d), kind
        D = np.asarray(diag, dtype=float)
        if D.ndim not in (0, 1) or (D.ndim == 1 and D.shape != (self.d,)):
            raise ValueError(f"Sigma's diagonal must be a scalar or have shape ({self.d},), got {D.shape}")
        U = np.zeros((self.d, 0)) if U is None else np.asarray(U, dtype=float)
        if U.ndim != 2 or U.shape[0] != self.d:
            raise ValueError(f"Sigma's low-rank factor must be d x r = {self.d} x r, got shape {U.shape}")
        w = np.ones(U.shape[1]) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (U.shape[1],):
            raise ValueError(f"Sigma's weights must have shape ({U.shape[1]},), got {w.shape}")
        for name, a in (("diagonal", D), ("low-rank factor", U), ("weights", w)):
            if not np.all(np.isfinite(a)):
                raise ValueError(f"Sigma's {name} contains NaN or inf")
        self.diag, self.U, self.weights = D, U, w
        if not self.sigma_min() > 0.0:
            raise ValueError(f"Sigma must be positive definite: sigma_min = {self.sigma_min():.3g}")

    @property
    def rank(self) -> int:
        """r, the number of columns of U."""
        return self.U.shape[1]

    def _scaled(self, M: np.ndarray) -> np.ndarray:
        """diag(D) @ M."""
        return self.diag[:, None] * M if self.diag.ndim == 1 and M.ndim == 2 else self.diag * M

    def apply(self, M: np.ndarray) -> np.ndarray:
        out = self._scaled(M)
        if self.rank:
            c = self.U.T @ M
            out = out + self.U @ (self.weights[:, None] * c if c.ndim == 2 else self.weights * c)
        return out

    def gram(self, M: np.ndarray) -> np.ndarray:
        G = M.T @ self._scaled(M)
        if self.rank:
            c = self.U.T @ M
            G = G + c.T @ (self.weights[:, None] * c)
        return (G + G.T) / 2.0

    def gram_orthonormal(self, Q: np.ndarray) -> np.ndarray:
        if self.diag.ndim == 1:
            return self.gram(Q)
        G = float(self.diag) * np.eye(Q.shape[1])             # c Q^T Q = c I: O(d r c), not O(d c^2)
        if self.rank:
            c = self.U.T @ Q
            G = G + c.T @ (self.weights[:, None] * c)
        return (G + G.T) / 2.0

    @cached_property
    def _sigma_min(self) -> float:
        if self.rank == 0:
            return float(self.diag.min())
        if self.diag.ndim == 0 or np.all(self.diag == self.diag[0]):
            # D = c I: the nonzero eigenvalues of U W U^T are those of R W R^T, U = Q R (O(d r^2)).
            c = float(self.diag) if self.diag.ndim == 0 else float(self.diag[0])
            R = np.linalg.qr(self.U, mode="r")
            low = float(np.linalg.eigvalsh((R * self.weights) @ R.T)[0])
            return c + (low if self.rank >= self.d else min(low, 0.0))
        op = LinearOperator((self.d, self.d), matvec=self.apply, dtype=float)
        return float(eigsh(op, k=1, which="SA", tol=EIGSH_TOL, return_eigenvectors=False)[0])

    def sigma_min(self) -> float:
        return self._sigma_min

    def trace(self) -> float:
        diag = float(self.diag) * self.d if self.diag.ndim == 0 else float(self.diag.sum())
        return diag + float(np.sum(self.weights * np.sum(self.U ** 2, axis=0)))

    def dense(self) -> np.ndarray:
        out = (self.U * self.weights) @ self.U.T
        out[np.diag_indices(self.d)] += self.diag
        return out


class DenseSecondMoment(SecondMoment):
    """A user-given dense Sigma (d x d), validated symmetric and positive definite (Cholesky).

    Parameters
    ----------
    Sigma : ndarray
        d x d symmetric positive definite matrix.
    """

    kind = "dense"

    def __init__(self, Sigma: np.ndarray) -> None:
        S = np.array(Sigma, dtype=float, copy=True)
        if S.ndim != 2 or S.shape[0] != S.shape[1]:
            raise ValueError(f"Sigma must be a square d x d matrix, got shape {S.shape}")
        if not np.all(np.isfinite(S)):
            raise ValueError("Sigma contains NaN or inf")
        asym = np.abs(S - S.T).max()
        if asym > SYMMETRY_TOL * max(1.0, np.abs(S).max()):
            raise ValueError(f"Sigma must be symmetric: max |Sigma - Sigma^T| = {asym:.3g}")
        try:
            np.linalg.cholesky(S)
        except np.linalg.LinAlgError:
            raise ValueError("Sigma must be positive definite (it is singular or indefinite)") from None
        S.setflags(write=False)
        self.matrix, self.d = S, S.shape[0]

    def apply(self, M: np.ndarray) -> np.ndarray:
        return self.matrix @ M

    @cached_property
    def _sigma_min(self) -> float:
        return float(np.linalg.eigvalsh(self.matrix)[0])

    def sigma_min(self) -> float:
        return self._sigma_min

    def trace(self) -> float:
        return float(np.trace(self.matrix))

    def dense(self) -> np.ndarray:
        return self.matrix


def identity(d: int) -> StructuredSecondMoment:
    """Sigma = I_d (isotropic OOD inputs)."""
    return StructuredSecondMoment(d, 1.0, kind="identity")


def diagonal(diag: np.ndarray) -> StructuredSecondMoment:
    """Sigma = diag(diag)."""
    diag = np.asarray(diag, dtype=float)
    return StructuredSecondMoment(diag.shape[0], diag, kind="diagonal")


def subspace_split(basis: np.ndarray, inside: float, outside: float, kind: str = "subspace") -> StructuredSecondMoment:
    """Sigma = inside P + outside (I - P), P the projector on the span of the orthonormal `basis` (d x m).

    The defining form of the `in_S` / `out_S` kinds (arXiv:2202.10054, Sec. 3's "OOD directions
    inside / outside S"): outside I + (inside - outside) basis basis^T.
    """
    m = basis.shape[1]
    return StructuredSecondMoment(basis.shape[0], float(outside), basis, np.full(m, float(inside - outside)), kind)


def as_second_moment(Sigma: SecondMoment | np.ndarray) -> SecondMoment:
    """A `SecondMoment` as is; an array as a validated `DenseSecondMoment`."""
    return Sigma if isinstance(Sigma, SecondMoment) else DenseSecondMoment(Sigma)


#: the OOD second moments `draw_ood_second_moment` draws (``make_problem``'s ``ood``).
OOD_KINDS = ("identity", "random", "in_S", "out_S", "diagonal")


def draw_ood_second_moment(rng: np.random.Generator, kind: str, S: np.ndarray, ood_share: float = 0.95,
                           ood_rank: int | None = None) -> SecondMoment:
    """An OOD second moment of the requested kind as a structured operator, trace d.

    Parameters
    ----------
    rng : numpy.random.Generator
        The problem's generator (its state moves only for "random" and "diagonal").
    kind : str
        One of `OOD_KINDS`. "identity": I (the reference scale); "random": (A A^T / d + 0.1 I)
        scaled to trace d, A a d x `ood_rank` Gaussian block (default d); "diagonal": log-normal
        entries exp(N(0, 1)); "in_S" / "out_S": the share `ood_share` of the trace on S / S_perp,
        the rest spread evenly on the other.
    S : ndarray
        d x m orthonormal basis of the training subspace S.
    ood_share : float, optional
        For "in_S" / "out_S".
    ood_rank : int, optional
        Columns of A for "random".

    Returns
    -------
    SecondMoment
        Never a dense d x d array.

    Examples
    --------
    >>> S = np.eye(6, 2)
    >>> sigma = draw_ood_second_moment(np.random.default_rng(0), "in_S", S, ood_share=0.5)
    >>> round(sigma.trace(), 12), round(sigma.sigma_min(), 12)
    (6.0, 0.75)
    """
    d, m = S.shape
    if kind == "identity":
        return identity(d)
    if kind == "random":
        A = rng.standard_normal((d, d if ood_rank is None else ood_rank))
        scale = d / (float(np.sum(A ** 2)) / d + 0.1 * d)
        return StructuredSecondMoment(d, 0.1 * scale, A, np.full(A.shape[1], scale / d), kind="random")
    if kind == "diagonal":
        diag = np.exp(rng.standard_normal(d))
        return diagonal(diag * (d / diag.sum()))
    share_S = ood_share if kind == "in_S" else 1.0 - ood_share
    return subspace_split(S, d * share_S / m, d * (1.0 - share_S) / (d - m), kind=kind)

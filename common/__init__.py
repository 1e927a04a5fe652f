"""Dependency-free base shared by every package: the registry, the atomic file writers, provenance,
the gradient-norm vocabulary (``grad_norms``) and the quick exit of the project's own processes
(``shutdown``).

Nothing here imports numpy, torch or any package of the project, so ``theory``, ``deepnet``,
``experiments`` and ``paper_figs`` can all depend on it without pulling in each other.
"""

"""Dependency-free base shared by every package: the registry, the atomic file writers and provenance.

Nothing here imports numpy, torch or any package of the project, so ``theory``, ``deepnet``,
``experiments`` and ``paper_figs`` can all depend on it without pulling in each other.
"""

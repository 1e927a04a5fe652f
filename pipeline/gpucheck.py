"""The GPU check (:mod:`deepnet.gpucheck`) with the SGD paper's Table 4 comparisons beside our
memory ratios: ``python -m pipeline gpucheck --out DIR`` (``--help`` for the stages and options)."""
from __future__ import annotations


def main(argv: list[str]) -> int:
    """Run ``python -m deepnet.gpucheck``'s check on ``argv`` with the paper's memory comparisons."""
    from deepnet.gpucheck.cli import main as run_check
    from experiments.paper.memory import paper_memory_claims

    return run_check(argv, memory_claims=paper_memory_claims())

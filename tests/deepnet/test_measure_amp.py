"""The measurements' amp options read as ``python -m deepnet train``'s: ``--no-amp``, and bf16
autocast on by default on a GPU (``--amp`` turns it on for the CPU too)."""
from __future__ import annotations

import pytest
import torch

from deepnet.measure.cli import build_parser, use_amp


@pytest.mark.parametrize("name", ["memory", "throughput"])
def test_amp_is_on_by_default_on_a_gpu_only(name):
    for flags, cpu, cuda in (([], False, True), (["--amp"], True, True), (["--no-amp"], False, False)):
        a = build_parser().parse_args([name, "--out", "x", *flags])
        assert (use_amp(a.amp, torch.device("cpu")), use_amp(a.amp, torch.device("cuda"))) == (cpu, cuda), flags

"""Sweeps over fine-tuning runs: TOML specs -> run directories keyed by config hash that resume,
local and Slurm (submitit) launchers, and result collection (best LR on ID val, 90% intervals).

Python use (what ``python -m deepnet sweep`` does)::

    from deepnet.sweep import load_spec, run_sweep
    report = run_sweep(load_spec("experiments/specs/smoke.toml").expand(), "out/sweeps/smoke")
"""
from deepnet.sweep.launchers import LAUNCHERS, SweepReport, plan, run_sweep
from deepnet.sweep.spec import SpecError, SweepSpec, load_spec, parse_spec

__all__ = ["LAUNCHERS", "SpecError", "SweepReport", "SweepSpec", "load_spec", "parse_spec", "plan", "run_sweep"]

"""Sweeps over fine-tuning runs: TOML specs -> run directories keyed by config hash that resume,
local and Slurm (submitit) launchers, and result collection (best LR on ID val, 90% intervals)."""
from deepnet.sweep.spec import SpecError, SweepSpec, load_spec, parse_spec

__all__ = ["SpecError", "SweepSpec", "load_spec", "parse_spec"]

"""Sweep specs: TOML files that name a grid of fine-tuning runs, validated on load.

A spec (format in the deepnet interface contract, files in ``experiments/specs/``) lists models,
datasets, methods and seeds; the learning rates default to each method's paper grid (SGD paper,
Appendix A: six LRs per optimizer, chosen later on ID validation accuracy). :func:`load_spec`
checks every key and every name before anything runs, and :meth:`SweepSpec.expand` turns the spec
into one :class:`~deepnet.config.RunConfig` per (model, dataset, method, lr, seed).

Example::

    name = "table1"
    models = ["clip_vit_b16"]
    datasets = ["living17"]
    methods = ["sgd", "sgd_freeze_embed"]
    seeds = [0, 1, 2]
    epochs = 10                 # optional; default: the dataset's paper epochs
    [lr_grid]                   # optional; default: the method's paper grid
    sgd = [1e-4, 3e-4]
    [run]                       # optional; any other RunConfig field
    batch_size = 64
    [slurm]                     # optional; submitit/Slurm parameters for --launcher slurm
    slurm_partition = "gpu"

A user's own data and code (``deepnet.data.user``, ``deepnet.plugins``)::

    datasets = ["my_shift"]
    plugins = ["my_plugin.py"]  # optional; modules or .py files (relative to the spec), imported by every run
    [dataset.my_shift]          # a user dataset: kind folder, csv or npz
    kind = "folder"
    path = "data/my_shift"      # relative to the spec; default: --data-root (or its my_shift/)
    metric = "acc"              # optional; or "worst_group_acc"
    augment = "flip"            # optional; none (default), flip, timm
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from deepnet.config import RunConfig

# Spec keys and the Python types their values must have.
_REQUIRED = {"name": str, "models": list, "datasets": list, "methods": list}
_OPTIONAL = {
    "description": str,
    "paper_tables": list,
    "seeds": list,
    "epochs": int,
    "lr_grid": dict,
    "run": dict,
    "slurm": dict,
    "plugins": list,
    "dataset": dict,
}
_TOML_TYPES = {str: "a string", list: "an array", int: "an integer", dict: "a table"}
# RunConfig fields a spec sets through its own keys, so [run] may not set them.
_SET_BY_SPEC = ("model", "dataset", "method", "lr", "seed", "epochs", "plugins", "dataset_kind", "metric", "augment")


class SpecError(ValueError):
    """A sweep spec that cannot be run: the message names the file, the key and what is allowed."""


@dataclass
class SweepSpec:
    """A validated sweep spec. ``lr_grid`` holds only the spec's explicit grids; the rest come from
    the method registry at expansion time."""

    name: str
    models: list[str]
    datasets: list[str]
    methods: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    description: str = ""
    paper_tables: list[str] = field(default_factory=list)
    epochs: int | None = None
    lr_grid: dict[str, list[float]] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    slurm: dict[str, Any] = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    user_datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "<spec>"

    def lrs(self, method: str) -> list[float]:
        """The learning rates swept for ``method``: the spec's grid, else the method's paper grid."""
        if method in self.lr_grid:
            return self.lr_grid[method]
        return default_lr_grid(method)

    def expand(self, overrides: Mapping[str, Any] | None = None) -> list[RunConfig]:
        """One RunConfig per model x dataset x method x lr x seed, in that nesting order.

        ``overrides`` (e.g. from the command line) replace ``[run]`` fields and may also set
        ``epochs`` and ``plugins`` (added to the spec's); they are validated like ``[run]``.
        A user dataset's runs get its declaration and, when it has a ``path``, that data root.
        """
        overrides = dict(overrides or {})
        plugins = [*self.plugins, *overrides.pop("plugins", [])]
        _check_run_fields(overrides, f"{self.source}: override", allow_epochs=True)
        run = {**self.run, **overrides}
        epochs = run.pop("epochs", self.epochs)
        configs = []
        for model in self.models:
            for dataset in self.datasets:
                for method in self.methods:
                    for lr in self.lrs(method):
                        for seed in self.seeds:
                            configs.append(
                                _make_config(
                                    self.source,
                                    model=model, dataset=dataset, method=method,
                                    lr=lr, seed=seed, epochs=epochs, plugins=plugins,
                                    **{**run, **self.user_datasets.get(dataset, {})},
                                )
                            )
        return configs


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a TOML sweep spec; any problem raises :class:`SpecError` naming the fix."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise SpecError(f"sweep spec {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML ({err})") from None
    return parse_spec(data, source=str(path))


def parse_spec(data: Mapping[str, Any], source: str = "<spec>") -> SweepSpec:
    """Validate an already-parsed spec mapping (what :func:`load_spec` does after reading TOML)."""
    allowed = {**_REQUIRED, **_OPTIONAL}
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise SpecError(f"{source}: unknown keys {unknown}; known keys: {sorted(allowed)}")
    missing = sorted(set(_REQUIRED) - set(data))
    if missing:
        raise SpecError(f"{source}: missing required keys {missing}")
    for key, value in data.items():
        expected = allowed[key]
        if expected is int and isinstance(value, bool) or not isinstance(value, expected):
            raise SpecError(f"{source}: {key!r} must be {_TOML_TYPES[expected]}, got {value!r}")

    plugins = _load_plugins(data.get("plugins", []), source)
    user_datasets = _user_datasets(data.get("dataset", {}), data["datasets"], source)
    known = known_names()
    known["dataset"] = [*known["dataset"], *user_datasets]
    lists: dict[str, list[str]] = {}
    for key, kind in (("models", "model"), ("datasets", "dataset"), ("methods", "method")):
        lists[key] = _names(data[key], key, known[kind], source)
    seeds = data.get("seeds", [0])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise SpecError(f"{source}: 'seeds' must be a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise SpecError(f"{source}: 'seeds' has duplicates: {seeds!r}")
    epochs = data.get("epochs")
    if epochs is not None and epochs < 1:
        raise SpecError(f"{source}: 'epochs' must be >= 1, got {epochs}")

    lr_grid = {}
    for method, grid in data.get("lr_grid", {}).items():
        if method not in lists["methods"]:
            raise SpecError(
                f"{source}: [lr_grid] has method {method!r} that the spec does not run; "
                f"spec methods: {lists['methods']}"
            )
        lr_grid[method] = _lr_list(grid, f"{source}: [lr_grid] {method}")
    run = dict(data.get("run", {}))
    _check_run_fields(run, f"{source}: [run]", allow_epochs=False)

    spec = SweepSpec(
        name=data["name"],
        description=data.get("description", ""),
        paper_tables=list(data.get("paper_tables", [])),
        seeds=list(seeds),
        epochs=epochs,
        lr_grid=lr_grid,
        run=run,
        slurm=dict(data.get("slurm", {})),
        plugins=plugins,
        user_datasets=user_datasets,
        source=source,
        **lists,
    )
    # One RunConfig built now so that bad [run] values fail at load time, not mid-sweep.
    _make_config(source, model=spec.models[0], dataset=spec.datasets[0], method=spec.methods[0],
                 lr=1.0, seed=spec.seeds[0], epochs=epochs, **run)
    return spec


def default_lr_grid(method: str) -> list[float]:
    """The method's paper LR grid, as the method registry defines it."""
    from deepnet.methods import get_method

    return [float(lr) for lr in get_method(method).lr_grid]


def known_names() -> dict[str, Any]:
    """The model, dataset and method registries (importing them registers every name; ``in`` also
    accepts what a registry's fallback resolves, e.g. any timm model)."""
    from deepnet.data import DATASETS
    from deepnet.methods import METHODS
    from deepnet.models.registry import MODELS, load_model_families

    load_model_families()
    return {"model": MODELS, "dataset": DATASETS, "method": METHODS}


def _load_plugins(plugins: list, source: str) -> list[str]:
    """Import the spec's plugins (``.py`` paths relative to the spec); their names as runs carry them."""
    from deepnet.plugins import PluginError, load_plugins, resolve_plugin

    if not all(isinstance(p, str) and p for p in plugins):
        raise SpecError(f"{source}: 'plugins' must be a list of module names or .py files, got {plugins!r}")
    resolved = [resolve_plugin(p, Path(source).parent) for p in plugins]
    try:
        load_plugins(resolved)
    except PluginError as err:
        raise SpecError(f"{source}: {err}") from None
    return resolved


def _user_datasets(tables: Mapping[str, Any], datasets: list, source: str) -> dict[str, dict[str, Any]]:
    """The RunConfig fields of each ``[dataset.NAME]`` table (see ``deepnet.data.user.declaration_fields``)."""
    from deepnet.data import DatasetLayoutError
    from deepnet.data.user import declaration_fields

    fields_of = {}
    for name, table in tables.items():
        if name not in datasets:
            raise SpecError(f"{source}: [dataset.{name}] is declared but not in 'datasets' {datasets}")
        try:
            fields_of[name] = declaration_fields(name, table, Path(source).parent)
        except (KeyError, ValueError, DatasetLayoutError) as err:
            raise SpecError(f"{source}: [dataset.{name}]: {err.args[0] if err.args else err}") from None
    return fields_of


def _names(values: list, key: str, known: list[str], source: str) -> list[str]:
    if not values:
        raise SpecError(f"{source}: {key!r} must not be empty; known: {', '.join(known)}")
    bad = [v for v in values if not isinstance(v, str) or v not in known]
    if bad:
        raise SpecError(f"{source}: unknown {key} {bad}; known {key}: {', '.join(known)}")
    if len(set(values)) != len(values):
        raise SpecError(f"{source}: {key!r} has duplicates: {values}")
    return list(values)


def _lr_list(grid: Any, where: str) -> list[float]:
    if not isinstance(grid, list) or not grid:
        raise SpecError(f"{where}: must be a non-empty list of learning rates, got {grid!r}")
    for lr in grid:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
            raise SpecError(f"{where}: learning rates must be finite numbers > 0, got {lr!r}")
    lrs = [float(lr) for lr in grid]
    if len(set(lrs)) != len(lrs):
        raise SpecError(f"{where}: duplicate learning rates in {grid!r}")
    return lrs


def _check_run_fields(run: Mapping[str, Any], where: str, allow_epochs: bool) -> None:
    settable = [f.name for f in dataclasses.fields(RunConfig) if f.name not in _SET_BY_SPEC]
    if allow_epochs:
        settable.append("epochs")
    bad = sorted(set(run) - set(settable))
    if bad:
        raise SpecError(f"{where}: cannot set {bad}; settable RunConfig fields: {sorted(settable)}")


def _make_config(source: str, **kwargs: Any) -> RunConfig:
    try:
        return RunConfig(**kwargs)
    except (TypeError, ValueError) as err:
        raise SpecError(f"{source}: invalid run settings ({err})") from None

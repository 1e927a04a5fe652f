"""Plugins: a user's modules that register datasets, models, methods, dataset kinds or augmentations.

A plugin is a module that adds entries to the registries when imported (``DATASETS``,
``MODELS``, ``METHODS``, ``KINDS``, ``AUGMENTATIONS``). It reaches the suite in two ways:

- ``--import MODULE`` on any ``python -m deepnet`` command (repeatable; a dotted module name on
  ``sys.path`` or a path to a ``.py`` file), and a sweep spec's ``plugins = [...]``. The modules
  travel with every run in ``RunConfig.plugins`` and each run imports them before building its
  model and data, so they reach every worker kind (sequential, ``--cpu-workers``, one process
  per GPU, Slurm tasks).
- the ``deepnet.plugins`` entry-point group of an installed package, loaded by every deepnet
  command and every run: a module (``demo = "demo_pkg.plugin"``) is imported, a callable
  (``demo = "demo_pkg.plugin:register"``) is called with no arguments.

Example (``pyproject.toml`` of a user package)::

    [project.entry-points."deepnet.plugins"]
    mydata = "mypkg.deepnet_plugin"
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Sequence

ENTRY_POINT_GROUP = "deepnet.plugins"

_entry_points_loaded: set[str] = set()


class PluginError(ValueError):
    """A plugin that cannot be found or fails while importing; the message names the plugin."""


def is_file_plugin(plugin: str) -> bool:
    """True when ``plugin`` names a ``.py`` file rather than a dotted module name."""
    return plugin.endswith(".py")


def resolve_plugin(plugin: str, base: str | Path | None = None) -> str:
    """``plugin`` as it should travel to other processes: a dotted module name unchanged, a ``.py``
    file as an absolute path (relative ones resolved against ``base``, default the working directory)."""
    if not is_file_plugin(plugin):
        return plugin
    path = Path(plugin).expanduser()
    return str((Path(base or Path.cwd()) / path).resolve())


def import_plugin(plugin: str) -> ModuleType:
    """Import one plugin (a dotted module name or a ``.py`` file); importing it again is a no-op.

    Raises
    ------
    PluginError
        The module or file does not exist, or importing it raised (the message says what).
    """
    try:
        return _import_file(plugin) if is_file_plugin(plugin) else importlib.import_module(plugin)
    except PluginError:
        raise
    except ModuleNotFoundError as err:
        if err.name and plugin.startswith(err.name):
            raise PluginError(f"plugin {plugin!r}: no module named {err.name!r} on sys.path "
                              f"(run from the directory that holds it, set PYTHONPATH, or pass a .py file)") from err
        raise PluginError(f"plugin {plugin!r} failed to import: {err}") from err
    except Exception as err:
        raise PluginError(f"plugin {plugin!r} failed to import: {type(err).__name__}: {err}") from err


def _import_file(plugin: str) -> ModuleType:
    path = Path(resolve_plugin(plugin))
    if not path.is_file():
        raise PluginError(f"plugin file {path} does not exist")
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(path):
            return module
    name = f"deepnet_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin file {path} cannot be imported as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_entry_points() -> list[str]:
    """Load every ``deepnet.plugins`` entry point not loaded yet in this process; their names."""
    loaded = []
    for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry.name in _entry_points_loaded:
            continue
        try:
            target = entry.load()
            if callable(target) and not isinstance(target, ModuleType):
                target()
        except Exception as err:
            raise PluginError(f"entry point {entry.name!r} ({entry.value}) of group {ENTRY_POINT_GROUP!r} failed: "
                              f"{type(err).__name__}: {err}") from err
        _entry_points_loaded.add(entry.name)
        loaded.append(entry.name)
    return loaded


def load_plugins(plugins: Sequence[str] = ()) -> None:
    """The ``deepnet.plugins`` entry points, then each of ``plugins`` (see :func:`import_plugin`)."""
    load_entry_points()
    for plugin in plugins:
        import_plugin(plugin)


def add_import_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--import MODULE`` (repeatable) to a command; read it with :func:`plugins_from_args`."""
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="plugin to import first: a module name or a .py file that registers datasets, "
                             "models or methods (repeatable; sweeps pass it to every run)")


def plugins_from_args(args: argparse.Namespace) -> list[str]:
    """Load the entry points and the ``--import`` plugins of ``args``; the plugins as runs carry them."""
    plugins = [resolve_plugin(p) for p in args.imports]
    load_plugins(plugins)
    return plugins

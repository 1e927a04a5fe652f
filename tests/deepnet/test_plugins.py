"""Plugins: ``--import`` modules and ``.py`` files, the ``deepnet.plugins`` entry-point group, and a
plugin model plus a folder dataset reaching the worker processes of ``--cpu-workers 2``."""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import cloudpickle
import pytest

from deepnet import plugins
from deepnet.__main__ import main
from deepnet.config import RunConfig
from deepnet.data import DATASETS
from deepnet.methods import METHODS
from deepnet.models import MODELS
from deepnet.plugins import PluginError, import_plugin, load_entry_points, resolve_plugin
from deepnet.sweep import launchers, run_sweep

from tests.helpers import make_folder

# Submitit unpickles jobs in a fresh process: ship this module's functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

MODEL_PLUGIN = '''
import torch
from torch import nn
from deepnet.models import MODELS, LayerMap, ModelBundle, Preprocess
from deepnet.models.classifier import Classifier


@MODELS.register("{name}")
def tiny(num_classes, pretrained=True, img_size=None, device=None):
    with torch.device(device or "cpu"):
        backbone = nn.Sequential(nn.Conv2d(3, 4, 3, 2), nn.ReLU(), nn.Conv2d(4, 6, 3, 2),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())
        model = Classifier(backbone, 6, num_classes)
    names = [n for n, _ in model.named_parameters()]
    layer_map = LayerMap(embed=names[:2], embed_norm=[], middle=[names[2:4]], head=names[4:], stem=names[:2])
    return ModelBundle("{name}", model, layer_map, Preprocess((0.5,) * 3, (0.5,) * 3, (img_size or 12,) * 2), 6)
'''

METHOD_PLUGIN = '''
from deepnet.methods import METHODS, Method


def register():
    METHODS.add("{name}", Method("{name}", "a plugin's method", lr_grid=(0.5,)))
'''


@pytest.fixture
def unregister():
    """Names the test registers; removed from every registry afterwards."""
    names: list[str] = []
    yield names
    for registry in (MODELS, DATASETS, METHODS):
        for name in names:
            registry._items.pop(name, None)


def write_plugin(path: Path, text: str, name: str) -> Path:
    path.write_text(textwrap.dedent(text).replace("{name}", name))
    return path


def test_file_plugin_registers_once_and_lists(tmp_path, unregister, capsys):
    unregister.append("plugin_tiny_a")
    path = write_plugin(tmp_path / "tiny_a.py", MODEL_PLUGIN, "plugin_tiny_a")
    module = import_plugin(str(path))
    assert import_plugin(str(path)) is module and "plugin_tiny_a" in MODELS
    assert main(["models", "plugin_tiny_a", "--groups", "--import", str(path)]) == 0
    out = capsys.readouterr().out
    # 4x3x3x3 + 4 embedding parameters out of 112 + 4x6x3x3 + 6 = 334 in the backbone
    assert "plugin_tiny_a" in out and f"{100 * 112 / 334:.2f}%" in out and "embed" in out


def test_module_plugin_on_sys_path(tmp_path, monkeypatch, unregister):
    unregister.append("plugin_tiny_b")
    write_plugin(tmp_path / "tiny_b_mod.py", MODEL_PLUGIN, "plugin_tiny_b")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_plugin("tiny_b_mod") == "tiny_b_mod"
    import_plugin("tiny_b_mod")
    assert "plugin_tiny_b" in MODELS
    sys.modules.pop("tiny_b_mod")


def test_plugin_errors_name_the_plugin(tmp_path, capsys):
    with pytest.raises(PluginError, match="no module named 'no_such_plugin_mod'"):
        import_plugin("no_such_plugin_mod")
    with pytest.raises(PluginError, match="plugin file .*missing.py does not exist"):
        import_plugin(str(tmp_path / "missing.py"))
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match=r"broken.py' failed to import: RuntimeError: boom"):
        import_plugin(str(broken))
    taken = tmp_path / "taken.py"
    taken.write_text("from deepnet.methods import METHODS, Method\nMETHODS.add('sgd', Method('sgd', 'x'))\n")
    assert main(["methods", "--import", str(taken)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "method 'sgd' is already registered" in captured.err


def test_entry_point_group_is_loaded(tmp_path, monkeypatch, unregister, capsys):
    unregister.append("plugin_ep_method")
    write_plugin(tmp_path / "ep_plugin_mod.py", METHOD_PLUGIN, "plugin_ep_method")
    dist = tmp_path / "demo_deepnet_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-deepnet-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{plugins.ENTRY_POINT_GROUP}]\ndemo = ep_plugin_mod:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_entry_points_loaded", set())
    assert "plugin_ep_method" not in METHODS
    assert main(["methods"]) == 0
    assert "plugin_ep_method" in capsys.readouterr().out
    assert load_entry_points() == []  # once per process
    sys.modules.pop("ep_plugin_mod")


def test_plugin_model_and_folder_dataset_reach_cpu_workers(tmp_path, monkeypatch, unregister):
    """Each of two worker processes trains one run; only the run that carries the plugin knows the
    plugin's model (the main process has it imported, so a sequential sweep would not tell)."""
    monkeypatch.setattr(launchers, "POLL_S", 0.2)
    unregister += ["plugin_tiny_c", "shift"]
    path = write_plugin(tmp_path / "tiny_c.py", MODEL_PLUGIN, "plugin_tiny_c")
    import_plugin(str(path))
    data = make_folder(tmp_path / "data", per_class=1)
    common = dict(model="plugin_tiny_c", dataset="shift", method="sgd", epochs=1, batch_size=4, num_workers=0,
                  device="cpu", data_root=str(data), dataset_kind="folder", augment="flip")
    carried = RunConfig(lr=0.01, plugins=[str(path)], **common)
    missing = RunConfig(lr=0.02, **common)
    report = run_sweep([carried, missing], tmp_path / "sweep", progress=False, gpus=[], cpu_workers=2)
    by_lr = {o.name: o for o in report.outcomes}
    assert by_lr[carried.run_name()].status == "ok", report.summary()
    assert by_lr[missing.run_name()].status == "failed"
    assert "unknown model 'plugin_tiny_c'" in by_lr[missing.run_name()].error


def test_spec_plugins_and_cli_imports_travel_with_every_run(tmp_path, monkeypatch, unregister, capsys):
    unregister += ["plugin_tiny_d", "plugin_spec_method"]
    (tmp_path / "specs").mkdir()
    write_plugin(tmp_path / "specs" / "tiny_d.py", MODEL_PLUGIN, "plugin_tiny_d")
    method_file = write_plugin(tmp_path / "method_plugin.py", METHOD_PLUGIN + "\nregister()\n", "plugin_spec_method")
    spec = tmp_path / "specs" / "s.toml"
    spec.write_text('name = "p"\nmodels = ["plugin_tiny_d"]\ndatasets = ["digits"]\n'
                    'methods = ["plugin_spec_method"]\nplugins = ["tiny_d.py"]\n')
    monkeypatch.chdir(tmp_path)
    args = ["sweep", str(spec), "--root", str(tmp_path / "sweep"), "--dry-run"]
    assert main(args) == 2  # the spec's plugin has the model, but the method needs --import
    assert "unknown methods ['plugin_spec_method']" in capsys.readouterr().err
    assert main([*args, "--import", "method_plugin.py"]) == 0
    assert "1 runs under" in capsys.readouterr().out
    from deepnet.sweep import load_spec

    (cfg,) = load_spec(spec).expand({"plugins": [resolve_plugin("method_plugin.py")]})
    assert cfg.plugins == [str(tmp_path / "specs" / "tiny_d.py"), str(method_file)]


def build_only(cfg: RunConfig, run_dir: Path, progress: bool = False) -> dict:
    """A trainer that only builds the run's model and splits (what needs the plugin), then records."""
    from common.io import write_json
    from deepnet.run_inputs import build_inputs

    inputs = build_inputs(cfg)
    record = {"config": cfg.to_dict(), "status": "ok", "metrics": {"id_val": 0.0}, "history": [],
              "num_classes": inputs.num_classes, "ood_splits": inputs.ood_splits, "pid": os.getpid()}
    write_json(run_dir / "result.json", record)
    return record


@pytest.mark.slow
def test_plugins_reach_slurm_tasks(tmp_path, monkeypatch, unregister):
    """A Slurm launcher task (submitit's local cluster: a fresh process, as on a node) builds the
    plugin's model and the folder dataset from what its RunConfig carries."""
    from common.io import read_json

    monkeypatch.setattr(launchers, "POLL_S", 0.2)
    unregister += ["plugin_tiny_e", "shift_e"]
    path = write_plugin(tmp_path / "tiny_e.py", MODEL_PLUGIN, "plugin_tiny_e")
    import_plugin(str(path))
    data = make_folder(tmp_path / "data", classes=("a", "b", "c"), per_class=1)
    cfg = RunConfig(model="plugin_tiny_e", dataset="shift_e", method="sgd", lr=0.1, data_root=str(data),
                    dataset_kind="folder", plugins=[str(path)])
    report = run_sweep([cfg], tmp_path / "sweep", launcher="slurm", train_fn=build_only, progress=False,
                       cluster="local", timeout_min=5)
    assert [o.status for o in report.outcomes] == ["ok"], report.summary()
    record = read_json(tmp_path / "sweep" / cfg.key() / "result.json")
    assert record["num_classes"] == 3 and record["ood_splits"] == ["ood_night", "ood_sketch"]
    assert record["pid"] != os.getpid()

"""The speed run options (compile, fused_optimizer, tf32, persistent_workers) on the CPU: run
directories of configs without them keep their names, the options reach the optimizer, the
matmul precision and the loader, and a run with all of them on trains."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from deepnet.__main__ import build_parser, config_from_args
from deepnet.config import SPEED_OPTIONS, RunConfig
from deepnet.methods import get_method
from deepnet.models import create_model
from deepnet.runtime import float32_matmul_precision
from deepnet.train import train
from tests.helpers import tiny_run_config

# RunConfig("clip_vit_b16", "living17", "sgd", 3e-4).key() before the speed options existed
KEY_BEFORE_SPEED_OPTIONS = "42e1079e7aedad89"


def test_configs_without_speed_options_keep_their_keys():
    cfg = RunConfig("clip_vit_b16", "living17", "sgd", 3e-4)
    assert cfg.key() == KEY_BEFORE_SPEED_OPTIONS
    keys = {RunConfig("clip_vit_b16", "living17", "sgd", 3e-4, **{opt: True}).key() for opt in SPEED_OPTIONS}
    assert len(keys) == len(SPEED_OPTIONS) and cfg.key() not in keys
    assert RunConfig.from_dict({**cfg.to_dict(), "tf32": True}).tf32 is True


def test_persistent_workers_need_workers():
    with pytest.raises(ValueError, match="persistent_workers needs num_workers"):
        RunConfig("m", "d", "sgd", 1e-3, num_workers=0, persistent_workers=True)


def test_train_command_line_sets_the_speed_options():
    args = build_parser().parse_args(["train", "--model", "m", "--dataset", "d", "--method", "sgd", "--lr", "1e-3",
                                      "--compile", "--fused-optimizer", "--tf32", "--persistent-workers"])
    cfg = config_from_args(args)
    assert all(getattr(cfg, opt) for opt in SPEED_OPTIONS)


@pytest.mark.parametrize("name", ["sgd", "adamw", "sgd_freeze_embed_no_momentum"])
def test_fused_builds_torch_fused_optimizers(name):
    bundle = create_model("small_resnet", num_classes=3, pretrained=False)
    method = get_method(name)
    method.apply_freezing(bundle.model, bundle.layer_map)
    assert method.build_optimizer(bundle.model, bundle.layer_map, 1e-3, fused=True).defaults["fused"] is True
    assert not method.build_optimizer(bundle.model, bundle.layer_map, 1e-3).defaults["fused"]


def test_fused_is_refused_where_torch_has_none():
    bundle = create_model("small_resnet", num_classes=3, pretrained=False)
    with pytest.raises(ValueError, match="fused optimizers exist for sgd and adamw"):
        get_method("lars").build_optimizer(bundle.model, bundle.layer_map, 1e-1, fused=True)


def test_float32_matmul_precision_is_restored():
    before = torch.get_float32_matmul_precision()
    with float32_matmul_precision(True):
        assert torch.get_float32_matmul_precision() == "high"
        with float32_matmul_precision(False):
            assert torch.get_float32_matmul_precision() == "highest"
        assert torch.get_float32_matmul_precision() == "high"
    assert torch.get_float32_matmul_precision() == before


def test_a_run_with_every_speed_option_trains(waterbirds_root, tmp_path, monkeypatch):
    """torch.compile with the "eager" backend (inductor's code generation takes minutes on a CPU)."""
    compiled, precision, loaders, fused = [], [], [], []
    real_compile = nn.Module.compile

    def eager_compile(self, *args, **kw):
        compiled.append(type(self).__name__)
        real_compile(self, backend="eager")

    real_loader_init = torch.utils.data.DataLoader.__init__

    def recording_loader_init(self, *args, **kw):
        loaders.append(kw.get("persistent_workers", False))
        real_loader_init(self, *args, **kw)

    real_step = torch.optim.SGD.step

    def recording_step(self, *args, **kw):
        precision.append(torch.get_float32_matmul_precision())
        fused.append(self.defaults["fused"])
        return real_step(self, *args, **kw)

    monkeypatch.setattr(nn.Module, "compile", eager_compile)
    monkeypatch.setattr(torch.utils.data.DataLoader, "__init__", recording_loader_init)
    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)
    # the small ResNet traces faster than the small ViT; batches of 2 divide every split (12 train,
    # 8 and 6 evaluated), so one trace serves training and one evaluation, none a new batch shape
    cfg = tiny_run_config(waterbirds_root, model="small_resnet", batch_size=2, epochs=1, num_workers=1, device="cpu",
                          compile=True, fused_optimizer=True, tf32=True, persistent_workers=True)
    record = train(cfg, tmp_path / "run", progress=False)
    assert record["status"] == "ok" and record["config"]["compile"] is True
    assert compiled == ["Classifier"] and True in loaders
    assert precision and set(precision) == {"high"} and set(fused) == {True}
    assert torch.get_float32_matmul_precision() == "highest"

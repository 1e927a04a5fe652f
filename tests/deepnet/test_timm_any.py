"""Any timm model through timm's group_matcher, and the ``models`` / ``datasets`` / ``methods`` listings."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from deepnet.__main__ import build_parser, main
from deepnet.data import DATASETS
from deepnet.models import MODELS, check_layer_map, create_model
from deepnet.models.classifier import Classifier
from deepnet.models.timm_any import group_matcher_layer_map
from deepnet.sweep import SpecError, parse_spec


@pytest.mark.parametrize("name, embed_prefixes", [
    ("convnext_atto", ("backbone.stem.",)),
    ("vit_tiny_patch16_224.augreg_in21k", ("backbone.cls_token", "backbone.pos_embed", "backbone.patch_embed.")),
])
def test_timm_name_groups_with_embedding_first(name, embed_prefixes):
    assert name not in MODELS.names() and name in MODELS
    bundle = create_model(name, num_classes=5, pretrained=False, device="meta")
    names = [n for n, _ in bundle.model.named_parameters()]
    lm = bundle.layer_map
    assert lm.embed == [n for n in names if n.startswith(embed_prefixes)]
    assert lm.head == ["head.weight", "head.bias"] and bundle.model.head.out_features == 5
    assert len(lm.middle) >= 4 and lm.stem == lm.embed
    check_layer_map(bundle.model, lm)


def test_timm_model_trains_shape_and_norms_in_embedding():
    bundle = create_model("resnet10t", num_classes=3, pretrained=False)
    assert bundle.model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    batchnorms = {f"{m}.{p}" for m, mod in bundle.model.named_modules() if isinstance(mod, nn.BatchNorm2d)
                  for p in ("weight", "bias")}
    embed = bundle.layer_map.embed
    assert bundle.layer_map.embed_norm == [n for n in embed if n in batchnorms]
    assert 0 < len(bundle.layer_map.embed_norm) < len(embed)


def test_group_check_catches_a_parameter_in_two_groups_or_none(monkeypatch):
    model = create_model("convnext_atto", num_classes=2, pretrained=False, device="meta").model
    names = [n.removeprefix("backbone.") for n, _ in model.backbone.named_parameters()]
    monkeypatch.setattr("deepnet.models.timm_any.group_parameters",
                        lambda m, g: {0: names[:3], 1: names[2:]})
    with pytest.raises(ValueError, match=rf"in several \['backbone.{names[2]}'\]"):
        group_matcher_layer_map(model)
    monkeypatch.setattr("deepnet.models.timm_any.group_parameters", lambda m, g: {0: names[:3], 1: names[4:]})
    with pytest.raises(ValueError, match=rf"in none \['backbone.{names[3]}'\]"):
        group_matcher_layer_map(model)
    with pytest.raises(ValueError, match="has no group_matcher"):
        group_matcher_layer_map(Classifier(nn.Sequential(nn.Linear(2, 2)), 2, 2))


def test_models_command_shares_and_unknown_name(capsys):
    assert main(["models", "convnext_atto", "small_vit"]) == 0
    out = capsys.readouterr().out
    for name in ("convnext_atto", "small_vit"):
        bundle = create_model(name, num_classes=2, pretrained=False, device="meta")
        sizes = {n: p.numel() for n, p in bundle.model.named_parameters()}
        backbone = sum(v for n, v in sizes.items() if n.startswith("backbone."))
        share = sum(sizes[n] for n in bundle.layer_map.embed) / backbone
        assert f"{100 * share:7.2f}%" in next(line for line in out.splitlines() if line.startswith(name + " "))
    assert main(["models", "small_vit", "not_a_model_anywhere"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "unknown model 'not_a_model_anywhere'" in captured.err
    assert "any timm model" in captured.err


def test_models_command_lists_every_registered_model(capsys):
    assert main(["models"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert listed == MODELS.names()


def test_datasets_and_methods_list_the_registries(capsys, tmp_path):
    from deepnet.methods import METHODS
    from tests.helpers import make_folder

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert all(f"\n{name} " in out for name in DATASETS.names())
    assert "folder:" in out and "csv:" in out and "npz:" in out and "flip" in out
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines() if not line.startswith(" ")] == METHODS.names()
    root = make_folder(tmp_path / "d", classes=("a", "b", "c"))
    try:
        assert main(["datasets", "--dataset-kind", "folder", "--data-root", str(root), "--name", "cli_check"]) == 0
    finally:
        DATASETS._items.pop("cli_check", None)
    out = capsys.readouterr().out
    assert "3 classes (a, b, c)" in out and "ood_night" in out
    (root / "id_val" / "a" / "0.png").unlink()
    (root / "id_val" / "a" / "1.png").unlink()
    assert main(["datasets", "--dataset-kind", "folder", "--data-root", str(root), "--name", "cli_check"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "empty class directory" in captured.err and "cli_check" not in DATASETS


def test_spec_accepts_any_timm_model():
    spec = parse_spec({"name": "t", "models": ["convnext_atto"], "datasets": ["digits"], "methods": ["sgd"]})
    assert spec.models == ["convnext_atto"]
    with pytest.raises(SpecError, match="unknown models \\['convnext_nonsense'\\]"):
        parse_spec({"name": "t", "models": ["convnext_nonsense"], "datasets": ["digits"], "methods": ["sgd"]})


@pytest.mark.parametrize("command", ["train", "models", "datasets", "methods"])
def test_help_shows_defaults_and_an_example(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    out = capsys.readouterr().out
    assert "example" in out and "--import MODULE" in out
    if command in ("train", "datasets"):
        assert "(default: " in out and "(default: None)" not in out


def test_img_size_goes_to_timm_or_only_to_the_preprocessing():
    convnet = create_model("convnext_atto", num_classes=2, pretrained=False, device="meta", img_size=32)
    assert convnet.preprocess.input_size == (32, 32)
    vit = create_model("vit_tiny_patch16_224", num_classes=2, pretrained=False, device="meta", img_size=32)
    assert vit.preprocess.input_size == (32, 32) and vit.model.backbone.pos_embed.shape[1] == 2 * 2 + 1

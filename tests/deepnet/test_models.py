"""The paper's architectures: registry, layer maps against Appendix A / C facts, offline behaviour.

Big models are built on the meta device (shapes only); one real ViT-B/16 forward runs on CPU.
"""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from deepnet.methods import get_method
from deepnet.models import LayerMap, PretrainedUnavailableError, check_layer_map, create_model
from deepnet.models.registry import MODELS, load_model_families

PAPER_MODELS = ["clip_vit_b16", "clip_vit_l14", "openclip_vit_h14", "sup_vit_b16", "dino_vit_b16",
                "convnext_b", "bit_resnet50", "bit_resnet101"]
FEATURE_DIM = {"clip_vit_b16": 512, "clip_vit_l14": 768, "openclip_vit_h14": 1024, "sup_vit_b16": 768,
               "dino_vit_b16": 768, "convnext_b": 1024, "bit_resnet50": 2048, "bit_resnet101": 2048}
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_cache: dict[tuple[str, str], object] = {}


def meta_bundle(name: str, backend: str = "timm"):
    key = (name, backend)
    if key not in _cache:
        kw = {"backend": backend} if backend != "timm" else {}
        _cache[key] = create_model(name, num_classes=7, pretrained=False, device="meta", **kw)
    return _cache[key]


def numel(bundle, names) -> int:
    params = dict(bundle.model.named_parameters())
    return sum(params[n].numel() for n in names)


def total(bundle) -> int:
    return sum(p.numel() for p in bundle.model.parameters())


def test_registry_has_every_paper_model():
    load_model_families()
    assert set(PAPER_MODELS) <= set(MODELS.names())


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_layer_map_covers_each_parameter_once_and_head_is_new(name):
    b = meta_bundle(name)
    counts = Counter(b.layer_map.all_names())
    assert [n for n, c in counts.items() if c > 1] == []
    assert set(counts) == {n for n, _ in b.model.named_parameters()}
    assert b.layer_map.head == ["head.weight", "head.bias"]
    assert tuple(b.model.head.weight.shape) == (7, FEATURE_DIM[name]) and b.feature_dim == FEATURE_DIM[name]
    labels = [label for label, _ in b.layer_map.groups()]
    assert labels[0] == "embed" and labels[-1] == "head" and labels[-2] in ("final_norm", "proj")
    assert b.preprocess.input_size == (224, 224)


@pytest.mark.parametrize("name", ["clip_vit_b16", "clip_vit_l14", "openclip_vit_h14"])
def test_clip_embed_is_patch_embed_plus_pre_norm_and_tokens_stay_trainable(name):
    b = meta_bundle(name)
    assert b.layer_map.embed == ["backbone.patch_embed.proj.weight", "backbone.norm_pre.weight", "backbone.norm_pre.bias"]
    assert b.layer_map.embed_norm == ["backbone.norm_pre.weight", "backbone.norm_pre.bias"]
    assert b.layer_map.stem == ["backbone.patch_embed.proj.weight"]
    labels = [label for label, _ in b.layer_map.groups()]
    assert labels[1] == "tokens" and labels[-2] == "proj"
    assert b.preprocess.mean == CLIP_MEAN
    get_method("sgd_freeze_embed").apply_freezing(b.model, b.layer_map)
    frozen = {n for n, p in b.model.named_parameters() if not p.requires_grad}
    assert frozen == set(b.layer_map.embed)
    assert "backbone.cls_token" not in frozen and "backbone.pos_embed" not in frozen
    get_method("sgd_freeze_embed_not_ln").apply_freezing(b.model, b.layer_map)
    assert {n for n, p in b.model.named_parameters() if not p.requires_grad} == {"backbone.patch_embed.proj.weight"}


@pytest.mark.parametrize("name", ["sup_vit_b16", "dino_vit_b16"])
def test_sup_and_dino_embed_is_patch_embed_only(name):
    b = meta_bundle(name)
    assert b.layer_map.embed == ["backbone.patch_embed.proj.weight", "backbone.patch_embed.proj.bias"]
    assert b.layer_map.embed_norm == []
    labels = [label for label, _ in b.layer_map.groups()]
    depth = 12
    assert labels == ["embed", "tokens", *[f"block{i}.{s}" for i in range(depth) for s in ("attn", "mlp")],
                      "final_norm", "head"]


def test_vit_b16_embedding_share_matches_paper():
    """Section 3.4: the embedding layer is about 0.7% of a base ViT (paper rounds to 0.1%: +-0.05%)."""
    for name in ["clip_vit_b16", "sup_vit_b16", "dino_vit_b16"]:
        b = meta_bundle(name)
        share = numel(b, b.layer_map.embed) / total(b)
        assert abs(share - 0.007) < 0.0005, (name, share)


def test_open_clip_backend_maps_the_same_clip_architecture():
    t, o = meta_bundle("clip_vit_b16"), meta_bundle("clip_vit_b16", "open_clip")
    assert o.layer_map.embed == ["backbone.conv1.weight", "backbone.ln_pre.weight", "backbone.ln_pre.bias"]
    assert numel(o, o.layer_map.embed) == numel(t, t.layer_map.embed) == 768 * 3 * 16 * 16 + 2 * 768
    assert [label for label, _ in o.layer_map.groups()] == [label for label, _ in t.layer_map.groups()]
    # timm stores the CLIP projection with a (zero-loaded) bias, open_clip without: 512 params apart
    assert total(t) - total(o) == 512
    assert o.feature_dim == 512 and o.preprocess.mean == CLIP_MEAN


def test_convnext_b_parameter_counts_match_appendix_c():
    """Appendix C: stem 6.5k, stages 415k / 1.7M / 58M / 27M, final layer norm 2k, stem + stage 1 = 0.5%
    and stem alone = 0.007% of the model. Tolerance: half a unit of the paper's last printed digit."""
    b = meta_bundle("convnext_b")
    bb = b.model.backbone
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert abs(count(bb.stem) - 6.5e3) <= 50
    stages = [count(s) for s in bb.stages]
    for got, paper, tol in zip(stages, [415e3, 1.7e6, 58e6, 27e6], [500, 0.05e6, 0.5e6, 0.5e6]):
        assert abs(got - paper) <= tol, (stages, paper)
    assert abs(count(bb.head.norm) - 2e3) <= 500
    n = total(b)
    assert abs(numel(b, b.layer_map.embed) / n - 0.005) <= 0.0005
    assert abs(numel(b, b.layer_map.stem) / n - 0.00007) <= 0.000005
    assert set(b.layer_map.embed) == {k for k, _ in b.model.named_parameters()
                                      if k.startswith(("backbone.stem.", "backbone.stages.0."))}
    get_method("sgd_freeze_stem").apply_freezing(b.model, b.layer_map)
    assert {k for k, p in b.model.named_parameters() if not p.requires_grad} == {
        "backbone.stem.0.weight", "backbone.stem.0.bias", "backbone.stem.1.weight", "backbone.stem.1.bias"}


@pytest.mark.parametrize("name,blocks", [("bit_resnet50", 3 + 4 + 6 + 3), ("bit_resnet101", 3 + 4 + 23 + 3)])
def test_bit_embed_is_stem_plus_first_stage(name, blocks):
    b = meta_bundle(name)
    assert set(b.layer_map.embed) == {k for k, _ in b.model.named_parameters()
                                      if k.startswith(("backbone.stem.", "backbone.stages.0."))}
    assert b.layer_map.stem == ["backbone.stem.conv.weight"]
    assert len(b.layer_map.middle) == blocks - 3 + 1  # blocks after stage 0, plus the final norm
    assert all("norm" in n for n in b.layer_map.embed_norm) and b.layer_map.embed_norm


def test_clip_vit_b16_forward_on_cpu_gives_logits():
    torch.manual_seed(0)
    # the full architecture on 32 px images (4 patches): the forward's cost, not its shapes, grows with the size
    b = create_model("clip_vit_b16", num_classes=5, pretrained=False, img_size=32)
    b.model.eval()
    with torch.no_grad():
        out = b.model(torch.randn(2, 3, 32, 32))
        feats = b.model.features(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    assert feats.shape == (2, 512)


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """Make the model hub fail fast (offline, empty cache) whatever the machine's network."""
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("DEEPNET_OFFLINE", raising=False)


@pytest.mark.parametrize("backend", ["timm", "open_clip"])
def test_pretrained_without_hub_fails_with_offline_advice(no_hub, backend):
    with pytest.raises(PretrainedUnavailableError, match="--no-pretrained"):
        create_model("clip_vit_b16", num_classes=3, pretrained=True, backend=backend)


def test_offline_env_switch_gives_random_weights(no_hub, monkeypatch):
    monkeypatch.setenv("DEEPNET_OFFLINE", "1")
    b = create_model("bit_resnet50", num_classes=3, pretrained=True)
    assert b.model.head.out_features == 3


def test_bad_requests_fail_clearly():
    with pytest.raises(KeyError, match="known"):
        create_model("resnet_9000", num_classes=2, pretrained=False)
    with pytest.raises(ValueError, match="backend"):
        create_model("clip_vit_b16", num_classes=2, pretrained=False, device="meta", backend="jax")
    with pytest.raises(ValueError, match="not a CLIP model"):
        create_model("dino_vit_b16", num_classes=2, pretrained=False, device="meta", backend="open_clip")
    with pytest.raises(ValueError, match="meta"):
        create_model("dino_vit_b16", num_classes=2, pretrained=True, device="meta")
    with pytest.raises(ValueError, match="num_classes"):
        create_model("dino_vit_b16", num_classes=0, pretrained=False)


def test_layer_map_validation():
    with pytest.raises(ValueError, match="embed_norm"):
        LayerMap(embed=["a"], embed_norm=["b"], middle=[], head=["h"], stem=[])
    lm = LayerMap(embed=["a"], embed_norm=[], middle=[["b"], ["c"]], head=["h"], stem=["a"], middle_labels=["x", "y"])
    assert lm.groups() == [("embed", ["a"]), ("x", ["b"]), ("y", ["c"]), ("head", ["h"])]
    assert lm.kind_of() == {"a": "embed", "b": "middle", "c": "middle", "h": "head"}
    b = meta_bundle("dino_vit_b16")
    broken = LayerMap(embed=b.layer_map.embed, embed_norm=[], middle=b.layer_map.middle[:-1],
                      head=b.layer_map.head + b.layer_map.embed[:1], stem=[])
    with pytest.raises(ValueError, match="exactly once"):
        check_layer_map(b.model, broken)


@pytest.mark.parametrize("name,backend", [("clip_vit_b16", "timm"), ("clip_vit_b16", "open_clip"),
                                          ("convnext_b", "timm"), ("bit_resnet50", "timm")])
def test_image_size_reaches_model_and_preprocessing(name, backend):
    kw = {"backend": backend} if backend != "timm" else {}
    b = create_model(name, num_classes=2, pretrained=False, device="meta", img_size=64, **kw)
    assert b.preprocess.input_size == (64, 64)
    params = dict(b.model.named_parameters())
    pos = params.get("backbone.pos_embed", params.get("backbone.positional_embedding"))
    if pos is not None:
        assert pos.shape[-2] == (64 // 16) ** 2 + 1

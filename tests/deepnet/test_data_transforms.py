"""The paper's Appendix A pipelines: sizes, which steps are random, and what eval does exactly."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from deepnet.data import transforms as T

SPEC = T.ImageSpec((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), (224, 224))


def _image(h: int, w: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _plain(img: Image.Image) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - 0.5) / 0.25


def test_fmow_eval_is_identity_at_native_size_and_train_only_flips():
    img = _image(224, 224)
    assert torch.allclose(T.fmow_transform(SPEC, False)(img), _plain(img), atol=1e-6)
    plain, mirrored = _plain(img), _plain(img).flip(-1)
    outs = [T.fmow_transform(SPEC, True)(img) for _ in range(20)]
    assert all(torch.allclose(o, plain, atol=1e-6) or torch.allclose(o, mirrored, atol=1e-6) for o in outs)
    assert any(torch.allclose(o, mirrored, atol=1e-6) for o in outs)


def test_camelyon_resizes_96_to_224_and_flips_only_in_training():
    img = _image(96, 96)
    ev = T.camelyon_transform(SPEC, False)
    assert ev(img).shape == (3, 224, 224) and torch.equal(ev(img), ev(img))
    outs = {T.camelyon_transform(SPEC, True)(img)[0, 0, 0].item() for _ in range(20)}
    assert len(outs) == 2  # the flip moves the corner pixel; nothing else is random


def test_living17_eval_resizes_256_then_centre_crops_and_train_is_random():
    img = _image(300, 400)
    ev = T.living17_transform(SPEC, False)
    expected = _plain(img.resize((256, 256), Image.BILINEAR).crop((16, 16, 240, 240)))
    assert torch.allclose(ev(img), expected, atol=0.05)  # PIL vs torchvision antialias rounding
    tr = T.living17_transform(SPEC, True)
    a, b = tr(img), tr(img)
    assert a.shape == (3, 224, 224) and not torch.equal(a, b)


def test_domainnet_train_crops_from_256_and_eval_resizes_bicubic():
    img = _image(180, 260)
    assert T.domainnet_transform(SPEC, True)(img).shape == (3, 224, 224)
    expected = _plain(img.resize((224, 224), Image.BICUBIC))
    assert torch.allclose(T.domainnet_transform(SPEC, False)(img), expected, atol=0.05)


def test_waterbirds_has_no_augmentation():
    img = _image(200, 300)
    tr, ev = T.waterbirds_transform(SPEC, True), T.waterbirds_transform(SPEC, False)
    assert torch.equal(tr(img), ev(img)) and tr(img).shape == (3, 224, 224)


def test_sizes_scale_with_model_input_size():
    small = T.ImageSpec((0.5,) * 3, (0.5,) * 3, (112, 112))
    assert small.scaled(256) == (128, 128)
    assert T.living17_transform(small, False)(_image(50, 70)).shape == (3, 112, 112)


@pytest.mark.parametrize("size, expected", [((3, 20, 24), (20, 24)), (32, (32, 32)), ((16, 8), (16, 8))])
def test_image_spec_from_preprocess(size, expected):
    pre = SimpleNamespace(mean=(0.1, 0.2, 0.3), std=(1, 1, 1), input_size=size)
    spec = T.ImageSpec.from_preprocess(pre, default_size=224)
    assert spec.size == expected and spec.mean == (0.1, 0.2, 0.3)
    assert T.ImageSpec.from_preprocess(None, 32).size == (32, 32)

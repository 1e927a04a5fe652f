"""Near-duplicate detection (``deepnet.data.duplicates``, ``python -m deepnet.data check``)."""
from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from deepnet.data import make_fixture
from deepnet.data import duplicates
from deepnet.data.__main__ import main
from deepnet.data.common import ImageArray
from deepnet.data.digits import load_mnist_5k, mnist_path
from deepnet.data.duplicates import DEFAULT_IMAGE_SIZE, DEFAULT_THRESHOLD, best_matches, fingerprints, near_duplicates
from deepnet.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageSpec, resize_transform

SPEC = ImageSpec(IMAGENET_MEAN, IMAGENET_STD, (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE))


def _jpeg(img: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=75)
    return np.asarray(Image.open(buf))


def _splits(train: np.ndarray, **others: np.ndarray) -> dict:
    tf = resize_transform(SPEC, False)
    return {name: ImageArray(x, np.arange(len(x)) % 10, np.full(len(x), -1), tf)
            for name, x in {"train": train, **others}.items()}


def test_fingerprints_are_unit_norm_and_blind_to_brightness_and_contrast():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 200, (3, 20, 20), dtype=np.uint8)
    brighter = (imgs * 1.2 + 10).astype(np.uint8)
    fp, fb = fingerprints(_splits(imgs)["train"], progress=False), fingerprints(_splits(brighter)["train"], progress=False)
    assert np.allclose(np.linalg.norm(fp, axis=1), 1, atol=1e-5)
    assert np.all(np.sum(fp * fb, axis=1) > 0.999)


def test_constant_images_are_never_duplicates():
    blank = np.full((2, 20, 20), 7, dtype=np.uint8)
    assert not fingerprints(_splits(blank)["train"], progress=False).any()
    (report,) = near_duplicates(_splits(blank, id_test=blank.copy()), progress=False)
    assert report.count == 0


def test_best_matches_chunks_and_rejects_mismatched_shapes(monkeypatch):
    monkeypatch.setattr(duplicates, "MAX_SIMILARITIES", 20)  # chunks of 2 queries
    rng = np.random.default_rng(1)
    refs = rng.normal(size=(7, 5)).astype(np.float32)
    queries = np.concatenate([refs[[3, 0]], rng.normal(size=(61, 5)).astype(np.float32)])
    index, corr = best_matches(queries, refs)
    assert index[:2].tolist() == [3, 0]
    assert np.allclose(corr, (queries @ refs.T).max(1), atol=1e-5)
    with pytest.raises(ValueError):
        best_matches(queries, refs[:, :4])
    with pytest.raises(ValueError):
        best_matches(queries, refs[:0])


def test_planted_copies_of_real_digits_are_found_and_distinct_digits_are_not():
    """Real MNIST digits: JPEG-recompressed and brightness-changed copies of train images planted in
    an evaluation split are found with their source; other digits of the same classes are not."""
    x, _ = load_mnist_5k(mnist_path(None))
    order = np.random.default_rng(0).permutation(len(x))  # the file is sorted by class
    train, distinct = x[order[:2000]], x[order[2000:2500]]
    planted_from = [5, 17, 400, 1999]
    copies = np.stack([_jpeg(train[planted_from[0]]), _jpeg(train[planted_from[1]]),
                       np.clip(train[planted_from[2]] * 0.8 + 30, 0, 255).astype(np.uint8),
                       np.clip(train[planted_from[3]] * 1.1, 0, 255).astype(np.uint8)])
    where = [3, 50, 120, 499]
    mixed = distinct.copy()
    mixed[where] = copies
    clean, dirty = near_duplicates(_splits(train, id_val=distinct, id_test=mixed), DEFAULT_THRESHOLD, progress=False)
    assert clean.split == "id_val" and clean.count == 0
    assert sorted(zip(dirty.index.tolist(), dirty.train_index.tolist())) == list(zip(where, planted_from))
    assert np.all(dirty.correlation >= DEFAULT_THRESHOLD) and np.all(np.diff(dirty.correlation) <= 0)


def _copy_correlations(images: np.ndarray) -> dict[str, np.ndarray]:
    """Correlation of each image with its perturbed copy, per perturbation of the calibration."""
    rng = np.random.default_rng(3)
    copies = {
        "jpeg75": np.stack([_jpeg(im) for im in images]),
        "brightness": np.clip(images * 0.8 + 30, 0, 255).astype(np.uint8),
        "noise5": np.clip(images + rng.normal(0, 5, images.shape), 0, 255).astype(np.uint8),
        "shift1": np.roll(images, 1, axis=2),
    }
    base = fingerprints(_splits(images)["train"], progress=False)
    return {k: np.sum(base * fingerprints(_splits(v)["train"], progress=False), axis=1) for k, v in copies.items()}


def _check_calibration(images: np.ndarray) -> None:
    corr = _copy_correlations(images)
    for kind in ("jpeg75", "brightness", "noise5"):
        assert np.median(corr[kind]) >= 0.998 and np.quantile(corr[kind], 0.01) >= 0.985, kind
    assert np.median(corr["shift1"]) < 0.9  # shifted copies are not what the check finds


def test_calibration_on_mnist():
    """The copy correlations that CALIBRATION quotes, on 300 MNIST digits."""
    x, _ = load_mnist_5k(mnist_path(None))
    _check_calibration(x[np.random.default_rng(4).choice(len(x), 300, replace=False)])


@pytest.mark.fashion_mnist
def test_calibration_on_fashion_mnist():
    from deepnet.data.fashion_mnist import load_fashion_mnist

    (x, _), _ = load_fashion_mnist()
    _check_calibration(x[np.random.default_rng(5).choice(len(x), 300, replace=False)])


def test_near_duplicates_counts_label_agreement_and_validates():
    rng = np.random.default_rng(2)
    train = rng.integers(0, 256, (10, 16, 16), dtype=np.uint8)
    splits = _splits(train, id_test=train[[2, 3]].copy())
    splits["id_test"].labels[:] = [2, 9]  # train labels are arange % 10: the second pair disagrees
    (report,) = near_duplicates(splits, progress=False)
    assert report.count == 2 and report.same_label.tolist().count(True) == 1
    with pytest.raises(ValueError, match="threshold"):
        near_duplicates(splits, threshold=0, progress=False)


# ---------------------------------------------------------------- the command
def test_check_counts_a_train_image_copied_into_ood_test(tmp_path, capsys):
    root = make_fixture("camelyon", tmp_path, n_per_class=3, image_size=16)
    args = ["check", "camelyon", "--data-root", str(root), "--image-size", "8"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ood_test        0 of 12 images" in out and "every image decoded" in out
    rows = (root / "metadata.csv").read_text().splitlines()[1:]
    path = lambda r: root / "patches" / f"patient_{r[1]}_node_{r[2]}" / f"patch_patient_{r[1]}_node_{r[2]}_x_{r[3]}_y_{r[4]}.png"  # noqa: E731
    train_row = next(r.split(",") for r in rows if r.split(",")[7] == "0")   # hospital 0: train
    ood_row = next(r.split(",") for r in rows if r.split(",")[7] == "2")     # hospital 2: ood_test
    shutil.copyfile(path(train_row), path(ood_row))
    assert main(args + ["--out", str(tmp_path / "dups.json")]) == 0
    out = capsys.readouterr().out
    assert "ood_test        1 of 12 images" in out and "id_val          0 of" in out
    record = json.loads((tmp_path / "dups.json").read_text())
    assert record["threshold"] == DEFAULT_THRESHOLD and record["image_size"] == 8
    (pair,) = record["splits"]["ood_test"]["pairs"]
    assert pair["correlation"] == pytest.approx(1.0, abs=1e-5)


def test_check_quick_and_bad_input(tmp_path, capsys):
    root = make_fixture("camelyon", tmp_path, n_per_class=1, image_size=8)
    assert main(["check", "camelyon", "--data-root", str(root), "--image-size", "8", "--quick"]) == 0
    assert "first/last images decoded" in capsys.readouterr().out
    assert main(["check", "camelyon", "--data-root", str(tmp_path / "missing")]) == 2
    assert "Expected layout" in capsys.readouterr().err
    for bad in (["--threshold", "1.5"], ["--threshold", "x"], ["--image-size", "1"]):
        with pytest.raises(SystemExit) as e:
            main(["check", "digits", *bad])
        assert e.value.code == 2

"""Tests marked ``fashion_mnist`` need the Debian data package; without it they skip and say how to
install it (the setup script installs it where it runs as root)."""
import pytest

from deepnet.data.fashion_mnist import DEFAULT_DIR


def pytest_collection_modifyitems(config, items):
    if (DEFAULT_DIR / "train-images-idx3-ubyte.gz").is_file():
        return
    skip = pytest.mark.skip(reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    for item in items:
        if "fashion_mnist" in item.keywords:
            item.add_marker(skip)

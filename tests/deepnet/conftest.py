"""Tests marked ``fashion_mnist`` need the Debian data package; without it they skip and say how to
install it (the setup script installs it where it runs as root). ``saved_figures`` records the
figures a command saves, so a test can check what they draw."""
import pytest
from matplotlib.figure import Figure

from deepnet.data.fashion_mnist import DEFAULT_DIR


def pytest_collection_modifyitems(config, items):
    if (DEFAULT_DIR / "train-images-idx3-ubyte.gz").is_file():
        return
    skip = pytest.mark.skip(reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    for item in items:
        if "fashion_mnist" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def saved_figures(monkeypatch) -> list[Figure]:
    """Every matplotlib figure saved during the test, once per file written, in order; the files
    are still written."""
    saved: list[Figure] = []
    savefig = Figure.savefig

    def recording_savefig(self, *args, **kw):
        saved.append(self)
        return savefig(self, *args, **kw)

    monkeypatch.setattr(Figure, "savefig", recording_savefig)
    return saved

"""Fixtures every test folder may use (the builders behind them are in :mod:`tests.helpers`)."""
from __future__ import annotations

import pytest

from deepnet.data import make_fixture


@pytest.fixture(scope="session")
def waterbirds_root(tmp_path_factory) -> str:
    """The Waterbirds fixture tree (12 training images of 16 px), written once per session; tests
    read it and never change it. Its parent holds nothing else (a root of one folder per dataset)."""
    return str(make_fixture("waterbirds", tmp_path_factory.mktemp("waterbirds_data"), n_per_class=2, image_size=16))

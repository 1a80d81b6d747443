"""Fixtures; the plain helpers the tests share are in support.py."""

import pytest
from support import make_npz


@pytest.fixture
def tiny_npz(tmp_path):
    return make_npz(tmp_path / "tiny.npz")

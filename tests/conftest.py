"""Fixtures; the plain helpers the tests share are in support.py."""

import pytest
from slurm_cluster import missing as slurm_missing
from slurm_cluster import slurm_cluster
from support import make_npz


@pytest.fixture
def tiny_npz(tmp_path):
    return make_npz(tmp_path / "tiny.npz")


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A real single-node SLURM (2 CPUs) for the whole session: the environment its commands need."""
    why = slurm_missing()
    if why:
        pytest.skip(why)
    with slurm_cluster(tmp_path_factory.mktemp("slurm"), cpus=2) as env:
        yield {"SLURM_CONF": env["SLURM_CONF"]}

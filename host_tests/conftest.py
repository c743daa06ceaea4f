import pytest

from tools.harness.cloud import Lab
from tools.harness.peer import Peer, Started


@pytest.fixture
def make_peer(tmp_path):
    """Builds and starts peers in a temporary data folder; stops them after."""
    made = []

    def make(name="peer", start=True, **kw):
        p = Peer(tmp_path / name, **kw)
        made.append(p)
        return p.start() if start else p

    yield make
    for p in made:
        p.stop()


@pytest.fixture
def peer(make_peer):
    return make_peer()


@pytest.fixture
def run_folder():
    """Starts the firmware on data folders written by someone else."""
    started = Started()
    yield started
    started.stop()


@pytest.fixture
def cloud(tmp_path):
    """The real lab cloud, serving from a temporary folder."""
    c = Lab(tmp_path / "cloud").start()
    yield c
    c.stop()

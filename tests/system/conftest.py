"""Shared fixtures for migd's system tests.

`lab`: one seeded 3-CN lab (tests/lab/lab.py) for the whole pytest session,
always torn down, even when tests fail; a module that needs four CNs takes
`four_cn_lab` as its own lab (`lab = conftest.four_cn_lab`).  `build_dir` /
`source_dir`: where ctest says the build and the sources are
(MIGD_BUILD_DIR, MIGD_SOURCE_DIR), defaulting to this checkout.
`migd_fixture(**config)` makes a module's `migd` fixture.  `import lab`
works in every test module.

Environment knobs: MIGD_LAB_DATA_MB (data written into each VM, default 4),
MIGD_LAB_SSH_PORT (default 22), MIGD_LAB_PORT_WAIT_S (how long to wait for
another lab on this machine to release the CN addresses, default 600).
"""
import os
import pathlib
import sys
import time

import pytest

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SOURCE_DIR / 'tests' / 'lab'))

import lab as labmod  # noqa: E402
from migd_daemon import running_migd  # noqa: E402


@pytest.fixture(scope='session')
def source_dir():
    return pathlib.Path(os.environ.get('MIGD_SOURCE_DIR', SOURCE_DIR))


@pytest.fixture(scope='session')
def build_dir(source_dir):
    return pathlib.Path(os.environ.get('MIGD_BUILD_DIR', source_dir / 'build'))


def wait_for_cn_addresses(ncns, port):
    """Another lab may hold 127.0.0.1x:port; wait for it to go away."""
    deadline = time.monotonic() + float(os.environ.get('MIGD_LAB_PORT_WAIT_S', 600))
    ips = [labmod.seed.cn_ip(n) for n in range(1, ncns + 1)]
    while not all(labmod.port_free(ip, port) for ip in ips):
        if time.monotonic() > deadline:
            return  # up() then fails with a message that says what to do
        time.sleep(1)


def start_lab(tmp_path_factory, request, cns=3, data_mb=None, **kwargs):
    """A seeded lab of cns CNs on MIGD_LAB_SSH_PORT, up, and torn down when
    request's scope ends.  data_mb: MiB written into each VM (default
    MIGD_LAB_DATA_MB, else 4); kwargs go to lab.Lab."""
    port = int(os.environ.get('MIGD_LAB_SSH_PORT', 22))
    if data_mb is None:
        data_mb = float(os.environ.get('MIGD_LAB_DATA_MB', 4))
    the_lab = labmod.Lab(str(tmp_path_factory.mktemp('lab')), cns=cns, ssh_port=port,
                         data_mb=data_mb, **kwargs)
    request.addfinalizer(the_lab.down)
    wait_for_cn_addresses(cns, port)
    the_lab.up()
    return the_lab


@pytest.fixture(scope='session')
def lab(tmp_path_factory, request):
    return start_lab(tmp_path_factory, request)


@pytest.fixture(scope='module')
def four_cn_lab(tmp_path_factory, request):
    """A module's own lab of four CNs (the seed gives cn3 an older platform,
    so cn1's VMs have two targets, cn2 and cn4).  A module takes it as its
    `lab` with `lab = conftest.four_cn_lab`."""
    return start_lab(tmp_path_factory, request, cns=4)


def migd_fixture(**config):
    """A module's `migd` fixture (`migd = conftest.migd_fixture(...)`): one
    migd for the module on its `lab`, with config's sections (as Migd takes
    them), stopped and checked at the end (running_migd)."""
    @pytest.fixture(scope='module')
    def migd(lab, build_dir, tmp_path_factory):
        yield from running_migd(lab, build_dir, tmp_path_factory.mktemp('migd'), **config)
    return migd

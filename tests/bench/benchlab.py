"""What the lab benchmarks (bench_*.py) share.

tests/lab and tests/system go on the module path (the lab, migd's driver and
the system tests' helpers, which a bench imports after this module); the
build directory comes from the command line; each bench brings up a lab in a
new temporary directory and a migd logging at info in it.
"""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lab'))
sys.path.insert(0, os.path.join(HERE, '..', 'system'))
import lab as labmod  # noqa: E402
from migd_daemon import Migd  # noqa: E402


def build_dir():
    """The build directory: the first argument (default build), absolute."""
    return os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else 'build')


def new_lab(work, cns, port):
    """A lab of cns CNs under work, not up yet (a bench may size it first)."""
    return labmod.Lab(os.path.join(work, 'lab'), cns=cns, ssh_port=port, data_mb=1)


def lab_up(prefix, cns, port):
    """A new temporary directory (named prefix...) and a lab of cns CNs up in it."""
    work = tempfile.mkdtemp(prefix=prefix)
    lab = new_lab(work, cns, port)
    lab.up()
    return work, lab


def migd_up(lab, build, work, name='migd', **config):
    """A migd of build, logging at info, in work/name, with config's sections, started."""
    return Migd(lab, build, os.path.join(work, name), log_level='info', **config).start()

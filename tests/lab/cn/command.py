#!/usr/bin/python3
"""The emulated commands of a lab CN: zfs, zpool, vmadm, zoneadm, zonecfg,
imgadm, svcadm, svcs, sysinfo and sed are symlinks to this file, which runs
smartos.main() under the name it was called by.

smartos.py is imported here rather than run as a script: Python compiles a
script on every start but keeps an imported module's bytecode in
__pycache__, so each emulated command starts about 30 ms sooner on the
2-core test machine (90 ms a call run as a script, 61 ms imported), which
every lab test and benchmark pays thousands of times."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import smartos  # noqa: E402

sys.exit(smartos.main())

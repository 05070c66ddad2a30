"""Run firmware in an emulator with its UART on a local TCP port.

QEMU (:class:`QemuSession`, :func:`emulate_project`) runs with ``-icount shift=0``: one guest instruction
is one nanosecond of virtual time, so timer counts are the same on every run and proportional to the work
done. The firmware ends the session with a semihosting exit, whose code becomes QEMU's exit status.

Renode (:mod:`tinyedge.runners.renode`) gets a generated ``.resc`` and Robot Framework suite per project
for boards whose file names a Renode platform; it runs when ``renode``/``renode-test`` are installed.
"""

from __future__ import annotations

from .qemu import QEMU_HINT, QemuSession, emulate_project, free_port, qemu_command
from .renode import RENODE_HINT, renode_script, robot_suite, run_renode, run_robot, write_renode_files

ENGINES = ("qemu", "renode")

__all__ = [
    "ENGINES",
    "QEMU_HINT",
    "QemuSession",
    "RENODE_HINT",
    "emulate_project",
    "free_port",
    "qemu_command",
    "renode_script",
    "robot_suite",
    "run_renode",
    "run_robot",
    "write_renode_files",
]

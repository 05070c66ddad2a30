"""Run firmware: one :class:`~tinyedge.runners.core.Runner` interface, one file per runner, and
:func:`~tinyedge.runners.deploy.deploy` (generate → build → start the runner).

QEMU (:class:`QemuRunner`, :class:`QemuSession`, :func:`emulate_project`) runs with ``-icount shift=0``:
one guest instruction is one nanosecond of virtual time, so timer counts are the same on every run and
proportional to the work done. The firmware ends the session with a semihosting exit, whose code becomes
QEMU's exit status.

Renode (:mod:`tinyedge.runners.renode`, :class:`RenodeRunner`) gets a generated ``.resc`` and Robot
Framework suite per project for boards whose file names a Renode platform; it runs when
``renode``/``renode-test`` are installed.

A real board (:class:`SerialBoardRunner`) is flashed with PlatformIO and reached on its serial port.

A board in a labgrid farm (:class:`LabgridPlaceRunner`, :mod:`tinyedge.runners.labgrid`) is a labgrid place,
acquired for the run and released after it; its UART is the place's ``NetworkSerialPort``.
"""

from __future__ import annotations

from .core import ENGINES, Runner, runner_for
from .deploy import Deployment, deploy
from .labgrid import LabgridPlaceRunner, PlaceInfo, coordinator_address, find_places, parse_tags
from .qemu import QEMU_HINT, QemuRunner, QemuSession, emulate_project, free_port, qemu_command
from .renode import RENODE_HINT, RenodeRunner, renode_script, robot_suite, run_renode, run_robot, write_renode_files
from .serial import SerialBoardRunner

__all__ = [
    "Deployment",
    "ENGINES",
    "LabgridPlaceRunner",
    "PlaceInfo",
    "QEMU_HINT",
    "QemuRunner",
    "QemuSession",
    "RENODE_HINT",
    "RenodeRunner",
    "Runner",
    "SerialBoardRunner",
    "coordinator_address",
    "deploy",
    "emulate_project",
    "find_places",
    "free_port",
    "parse_tags",
    "qemu_command",
    "renode_script",
    "robot_suite",
    "run_renode",
    "run_robot",
    "runner_for",
    "write_renode_files",
]

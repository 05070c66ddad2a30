"""Run firmware in QEMU with its UART on a local TCP port (:class:`QemuSession`, :func:`emulate_project`).

QEMU runs with ``-icount shift=0``: one guest instruction is one nanosecond of virtual time, so timer
counts are the same on every run and proportional to the work done. The firmware ends the session
with a semihosting exit, whose code becomes QEMU's exit status.
"""

from __future__ import annotations

from .qemu import QEMU_HINT, QemuSession, emulate_project, free_port, qemu_command

__all__ = ["QEMU_HINT", "QemuSession", "emulate_project", "free_port", "qemu_command"]

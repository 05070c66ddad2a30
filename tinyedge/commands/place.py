"""The labgrid options shared by score, run, flash, monitor and matrix: ``--place``, ``--coordinator``,
``--place-wait`` (not a command itself)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..runners.labgrid import DEFAULT_PLACE_WAIT

COORDINATOR_HELP = "labgrid coordinator of --place (default: $LG_COORDINATOR, else 127.0.0.1:20408)."
PLACE_WAIT_HELP = (f"Seconds to wait for a place someone else holds before giving up (default {DEFAULT_PLACE_WAIT:g}); "
                   "a held place is never taken from its holder.")


def place_options(place_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--place NAME`` (with ``place_help``), ``--coordinator HOST:PORT`` and ``--place-wait SECONDS``."""
    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--place-wait", "place_wait", type=click.FloatRange(min=0), default=DEFAULT_PLACE_WAIT,
                         show_default=False, metavar="SECONDS", help=PLACE_WAIT_HELP)(f)
        f = click.option("--coordinator", "coordinator", default=None, metavar="HOST:PORT", help=COORDINATOR_HELP)(f)
        return click.option("--place", "place", default=None, metavar="NAME", help=place_help)(f)
    return decorate

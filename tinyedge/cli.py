"""The ``tinyedge`` command: a click group whose subcommands are imported only when used.

Keeping imports lazy means ``tinyedge --help`` starts in a fraction of a second and never imports
TensorFlow. Each subcommand lives in ``tinyedge.commands.<name>`` as a click command named ``cmd``
and is a thin wrapper over a library function.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from . import __version__
from .errors import TinyedgeError

# name -> (module, one-line help shown by `tinyedge --help` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "boards": ("tinyedge.commands.boards", "List the boards tinyedge knows."),
    "quantize": ("tinyedge.commands.quantize", "Quantize a Keras/SavedModel model to full-integer int8 .tflite."),
    "inspect": ("tinyedge.commands.inspect", "Show ops, MACs, memory plan of a .tflite and whether it fits a board."),
    "generate": ("tinyedge.commands.generate", "Generate a PlatformIO firmware project for a model and board."),
    "export": ("tinyedge.commands.export", "Export a model as a library for your own firmware (C API, self-test)."),
    "build": ("tinyedge.commands.build", "Build a generated project with PlatformIO (pio run)."),
    "flash": ("tinyedge.commands.flash", "Upload a built project to the board (pio run -t upload)."),
    "emulate": ("tinyedge.commands.emulate", "Run a built project's firmware in QEMU with the UART on a TCP port."),
    "score": ("tinyedge.commands.score", "Stream a labelled test set to a device and score accuracy, latency, energy."),
    "run": ("tinyedge.commands.run", "The whole pipeline: quantize, generate, build, emulate and score."),
    "matrix": ("tinyedge.commands.matrix", "Compatibility matrix: which boards a model fits, at what cost."),
    "test": ("tinyedge.commands.test", "Run a project's Renode/Robot Framework test suite."),
    "monitor": ("tinyedge.commands.monitor", "Live dashboard of a device's inference stream (terminal or web)."),
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, _ = COMMANDS[name]
        try:
            command: click.Command = importlib.import_module(module).cmd
        except ModuleNotFoundError as exc:
            if exc.name == module:
                return None
            raise
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TinyedgeError as exc:
            # One clear line (the message already ends in what to try), never a traceback.
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinyedge")
@click.option("-v", "--verbose", count=True, help="Log the exact external commands (-v) and more (-vv).")
def cli(verbose: int) -> None:
    """tinyedge: from a trained model to a measured result on a microcontroller."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)


def main() -> None:
    cli(prog_name="tinyedge")


if __name__ == "__main__":
    main()

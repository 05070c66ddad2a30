"""The one deploy chain: generate the project → build it → start its runner, as a context manager.

>>> with deploy(graph, "qemu-mps2-an386", workdir / "project", core_dir=core) as dep:
...     report = score(dep.url, data, model=dep.project.graph, board=dep.project.board, out_dir=...)

The model is loaded once and the in-memory Graph and Board are handed on (``dep.project.graph``,
``dep.project.board``), so nothing downstream reads or looks them up again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..boards import Board, get_board
from ..firmware import BuildResult, GeneratedProject, build_project, generate_project
from ..model import Graph, load_model
from .core import Runner, runner_for


@dataclass(frozen=True)
class Deployment:
    """A model generated, built and running: its project, build, the UART's URL and the runner."""

    project: GeneratedProject
    build: BuildResult
    url: str
    runner: Runner


def _quiet(message: str) -> None:
    """The default ``say``: no progress messages."""


@contextmanager
def deploy(model: Graph | Path | str, board: Board | str, workdir: Path | str, *, mlperf_id: str | None = None,
           say: Callable[[str], None] | None = None, engine: str | None = None, port: str | None = None,
           serial_port: int | None = None, core_dir: Path | None = None,
           force: bool = False, place: str | None = None, coordinator: str | None = None,
           place_wait: float | None = None, choices: Mapping[int, str] | None = None,
           why: Mapping[int, str] | None = None) -> Iterator[Deployment]:
    """Generate ``model`` for ``board`` into the project folder ``workdir``, build it with PlatformIO and
    start its runner (:func:`~tinyedge.runners.core.runner_for`: QEMU for emulated boards, ``engine``
    to pick Renode, ``port`` for a real board, which is flashed, ``place`` for a board in a labgrid farm at
    ``coordinator``, acquired for the deployment and released after it); yields the :class:`Deployment`.

    The runner is chosen first, so a board that cannot run (a real board without a port, say) fails
    before anything is built. The runner is stopped on exit, also on an exception or Ctrl-C.
    ``say`` gets one line per step; ``core_dir`` is the PlatformIO core folder (default: tinyedge's);
    ``force`` overwrites generated files the user edited and ``choices``/``why`` pick each layer's kernel
    variant (a :class:`~tinyedge.tune.TuneResult`'s), both passed to :func:`~tinyedge.firmware.generate_project`.
    """
    tell = say or _quiet
    graph = model if isinstance(model, Graph) else load_model(model)
    board = board if isinstance(board, Board) else get_board(board)
    runner = runner_for(board, engine=engine, port=port, serial_port=serial_port, core_dir=core_dir, place=place,
                        coordinator=coordinator, place_wait=place_wait)
    tell(f"generate a PlatformIO project for {board.id}")
    project = generate_project(graph, board, Path(workdir), mlperf_id=mlperf_id, force=force, choices=choices,
                               why=why)
    tell("build: pio run")
    build = build_project(project.path, core_dir=core_dir)
    tell(f"      flash {build.flash_bytes:,} B, RAM {build.ram_bytes:,} B")
    tell(runner.describe())
    with runner:
        url = runner.start(project.path)
        yield Deployment(project=project, build=build, url=url, runner=runner)

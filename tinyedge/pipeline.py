"""``tinyedge run``: the whole pipeline, model to scored result, each stage the library call its
own command uses."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .boards import Board, get_board
from .errors import TinyedgeError

log = logging.getLogger("tinyedge.pipeline")

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass
class RunResult:
    model: Path  # the int8 .tflite that was deployed
    project: Path
    build: object  # tinyedge.firmware.BuildResult
    report: object  # tinyedge.score.Report
    quantize: object | None = None  # tinyedge.quantize.QuantizeReport when MODEL was Keras


def is_keras_model(path: Path) -> bool:
    return path.suffix in KERAS_SUFFIXES or (path.is_dir() and (path / "saved_model.pb").is_file())


def run_pipeline(
    model: str | Path,
    board: str | Board,
    data: str | Path,
    out_dir: str | Path,
    *,
    calib: str | Path | None = None,
    limit: int | None = None,
    slos: tuple[str, ...] = (),
    port: str | None = None,
    core_dir: Path | None = None,
    allow_model_mismatch: bool = False,
    power_trace: str | Path | None = None,
    progress: bool = True,
    say: Callable[[str], None] = lambda s: None,
) -> RunResult:
    """Quantize (when MODEL is Keras), generate, build with PlatformIO, run (QEMU, or flash and use
    ``port`` on a real board) and score. Every artefact lands in ``out_dir``.

    ``slos`` and ``power_trace`` are passed to :func:`tinyedge.score.score`.
    """
    model, data, out_dir = Path(model), Path(data), Path(out_dir)
    board = board if isinstance(board, Board) else get_board(board)
    if board.qemu is None and port is None:
        raise TinyedgeError(f"board {board.id} has no emulator here",
                            "connect it and pass --port /dev/ttyACM0 (it is flashed first), or pick a qemu-* board")
    out_dir.mkdir(parents=True, exist_ok=True)
    qreport = None
    if is_keras_model(model):
        if calib is None:
            raise TinyedgeError(f"{model} is a Keras model and needs calibration data to quantize",
                                "pass --calib DATA.npz (a few hundred representative inputs)")
        from .quantize import quantize_model

        say(f"[1/5] quantize {model} -> {out_dir / 'model.tflite'}")
        qreport = quantize_model(model, Path(calib), out_dir / "model.tflite", eval_data=data)
        model = out_dir / "model.tflite"
    else:
        say(f"[1/5] {model} is already a .tflite: no quantization")

    from .firmware import generate_project

    say(f"[2/5] generate a PlatformIO project for {board.id}")
    project = generate_project(model, board, out_dir / "project")

    from .firmware import build_project

    say("[3/5] build: pio run")
    build = build_project(project.path, core_dir=core_dir)
    say(f"      flash {build.flash_bytes:,} B, RAM {build.ram_bytes:,} B")

    from .score import score

    score_dir = out_dir / "score"
    if port is None:
        from .runners import QemuSession

        say(f"[4/5] emulate: QEMU {board.qemu['machine']} (-icount shift=0)")
        with QemuSession(board, build.elf) as qemu:
            say(f"[5/5] score over {qemu.url}")
            report = score(qemu.url, data, model, out_dir=score_dir, limit=limit, slos=slos,
                           allow_model_mismatch=allow_model_mismatch, progress=progress, power_trace=power_trace)
    else:
        from .firmware import flash_project

        say(f"[4/5] flash: pio run -t upload ({port})")
        flash_project(project.path, upload_port=port, core_dir=core_dir)
        say(f"[5/5] score over {port}")
        report = score(port, data, model, out_dir=score_dir, limit=limit, slos=slos,
                       allow_model_mismatch=allow_model_mismatch, progress=progress, power_trace=power_trace)
    return RunResult(model, project.path, build, report, qreport)

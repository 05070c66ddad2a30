"""``tinyedge run``: the whole pipeline, model to scored result, each stage the library call its
own command uses."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .boards import Board, get_board
from .data import load_npz
from .errors import TinyedgeError
from .firmware import BuildResult
from .quantize import QuantizeReport, quantize_model
from .runners import deploy, runner_for
from .score import Report, score
from .tune import tune as tune_layers

log = logging.getLogger("tinyedge.pipeline")

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass
class RunResult:
    model: Path  # the int8 .tflite that was deployed
    project: Path
    build: BuildResult
    report: Report
    quantize: QuantizeReport | None = None  # when MODEL was Keras


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
    place: str | None = None,
    coordinator: str | None = None,
    place_wait: float | None = None,
    core_dir: Path | None = None,
    allow_model_mismatch: bool = False,
    power_trace: str | Path | None = None,
    progress: bool = True,
    force: bool = False,
    stall_timeout: float | None = None,
    allow_nonfinite: bool = False,
    tune: bool = False,
    say: Callable[[str], None] = lambda s: None,
) -> RunResult:
    """Quantize (when MODEL is Keras), generate, build with PlatformIO, run (QEMU, or flash and use
    ``port`` on a real board) and score. Every artefact lands in ``out_dir``.

    ``slos``, ``power_trace`` and ``stall_timeout`` are passed to :func:`tinyedge.score.score` (a stalled
    device raises DeviceStalled, the partial report written); ``force`` to
    :func:`tinyedge.firmware.generate_project` (overwrite edited generated files of ``out_dir/project``).
    ``tune`` picks each layer's kernel by measuring its candidates in QEMU first (:func:`tinyedge.tune.tune`,
    answered by the tuning cache when the model was tuned before), as ``generate --tune`` does.
    """
    model, data, out_dir = Path(model), Path(data), Path(out_dir)
    board = board if isinstance(board, Board) else get_board(board)
    # a real board without a port fails before quantizing
    runner_for(board, port=port, core_dir=core_dir, place=place, coordinator=coordinator, place_wait=place_wait)
    load_npz(data, allow_nonfinite=allow_nonfinite)  # and so does bad data (NaN, text, no samples)
    out_dir.mkdir(parents=True, exist_ok=True)
    qreport = None
    if is_keras_model(model):
        if calib is None:
            raise TinyedgeError(f"{model} is a Keras model and needs calibration data to quantize",
                                "pass --calib DATA.npz (a few hundred representative inputs)")
        say(f"[1/5] quantize {model} -> {out_dir / 'model.tflite'}")
        qreport = quantize_model(model, Path(calib), out_dir / "model.tflite", eval_data=data)
        model = out_dir / "model.tflite"
    else:
        say(f"[1/5] {model} is already a .tflite: no quantization")

    step = [1]

    def numbered(line: str) -> None:
        # deploy says one line per step (generate, build, run/flash); detail lines are indented
        if not line.startswith(" "):
            step[0] += 1
            line = f"[{step[0]}/5] {line}"
        say(line)

    choices = why = None
    if tune:
        tuned = tune_layers(model, board, core_dir=core_dir, say=lambda line: say(f"      tune: {line}"))
        choices, why = tuned.choices, tuned.why
        runs = f"{tuned.qemu_runs} QEMU runs" if tuned.qemu_runs else "from the cache, no QEMU run"
        say(f"      tuned {len(choices)} layers on {tuned.core} ({runs})")
    with deploy(model, board, out_dir / "project", say=numbered, port=port, core_dir=core_dir,
                force=force, place=place, coordinator=coordinator, place_wait=place_wait, choices=choices,
                why=why) as dep:
        say(f"[5/5] score over {dep.url}")
        report = score(dep.url, data, model=dep.project.graph, board=dep.project.board, out_dir=out_dir / "score",
                       limit=limit, slos=slos, allow_model_mismatch=allow_model_mismatch, progress=progress,
                       power_trace=power_trace, stall_timeout=stall_timeout, allow_nonfinite=allow_nonfinite)
    return RunResult(model, dep.project.path, dep.build, report, qreport)

"""Stream a labelled test set to a device and score it: accuracy, parity, latency, energy, memory."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .. import __version__
from ..data import fit_shape, load_npz, quantize_inputs
from ..errors import BoardError, DataError, LinkError, ModelError
from ..link.dut import DutClient
from ..link.transport import Transport
from .model_io import ModelIO, read_model_io
from .slo import Slo, SloResult, evaluate, parse_slos

log = logging.getLogger("tinyedge.score")


class ModelMismatchError(LinkError):
    """The firmware on the device was generated from a different model than the one given."""


@dataclass
class Report:
    """The result of :func:`score`: ``data`` is report.json; ``slo_results`` the SLO gate."""

    data: dict[str, Any]
    slo_results: list[SloResult] = field(default_factory=list)
    out_dir: Path | None = None

    @property
    def passed(self) -> bool:
        """True when every SLO holds (and trivially when there are none)."""
        return all(r.passed for r in self.slo_results)

    @property
    def failed(self) -> list[SloResult]:
        return [r for r in self.slo_results if not r.passed]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def summary_rows(self) -> list[tuple[str, str]]:
        """(figure, value) pairs for a summary table."""
        d = self.data
        lat = d["latency_ms"]

        def f(v: Any, fmt: str) -> str:
            return "n/a" if v is None else format(v, fmt)

        rows = [
            ("board", d["board"]),
            ("samples", str(d["samples"])),
            ("accuracy", f(d["accuracy"], ".4f")),
            ("parity", f(d["parity"], ".4f")),
            ("latency_ms p50/p95/p99/max",
             " / ".join(f(lat[k], ".3f") for k in ("p50", "p95", "p99", "max"))
             + (" (estimate)" if d["emulated"] else "")),
            ("instructions", f(d["instructions"], ",d")),
            ("energy_uj_per_inference", f(d["energy_uj_per_inference"], ".2f") + " (power model)"),
            ("ram_bytes", f(d["ram_bytes"], ",d")),
            ("flash_bytes", f(d["flash_bytes"], ",d")),
        ]
        return rows

    def to_markdown(self) -> str:
        d = self.data
        out = [f"# tinyedge score: {d['model']} on {d['board']}", ""]
        out += ["| figure | value |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in self.summary_rows()]
        out += ["", "## How each figure was obtained", ""]
        out += [f"- **{k}**: {v}" for k, v in d["measurement"].items()]
        if d.get("model_mismatch"):
            out += ["", f"**Model mismatch allowed**: firmware runs {d['firmware_model_sha256']}, "
                        f"scored against {d['model_sha256']}."]
        if self.slo_results:
            out += ["", "## SLOs", "", "| slo | value | result |", "|---|---|---|"]
            out += [f"| `{r.slo.expr}` | {'n/a' if r.value is None else f'{r.value:g}'} | "
                    f"{'pass' if r.passed else 'MISS'} |" for r in self.slo_results]
        link = d["link"]
        out += ["", f"Link {link['url']}: {link['corrupt_lines']} corrupt, {link['unknown_lines']} unknown, "
                    f"{link['truncated_lines']} truncated lines; raw bytes in raw.log.", ""]
        return "\n".join(out)


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(values.max())}


def _load_board(board_id: str):
    from ..boards import get_board

    try:
        return get_board(board_id)
    except BoardError as exc:
        log.warning("no board file for %s (%s): energy is not estimated", board_id, exc)
        return None


def _oracle(model_bytes: bytes, xq: np.ndarray) -> tuple[np.ndarray | None, str]:
    try:
        from ..oracle import run_tflm

        return run_tflm(model_bytes, xq), ""
    except Exception as exc:  # the oracle is a measurement aid: scoring goes on without it
        log.warning("tflite_micro could not run the model: %s", exc)
        return None, f"not measured: tflite_micro could not run the model ({exc})"


def score(
    port: str | Transport | DutClient,
    data: str | Path,
    model: str | Path,
    *,
    out_dir: str | Path,
    limit: int | None = None,
    slos: Iterable[str] = (),
    allow_model_mismatch: bool = False,
    baud: int | None = None,
    progress: bool = False,
    ready_timeout: float = 10.0,
) -> Report:
    """Score the firmware on ``port`` with the labelled ``data`` (.npz: x, y) for ``model`` (.tflite).

    ``port`` is a pyserial URL (opened and closed here), or an already-open Transport/DutClient
    (left open: the caller owns it). Writes raw.log, records.jsonl, report.json and report.md into
    ``out_dir``. Raises ModelMismatchError when the firmware was built from another model, unless
    ``allow_model_mismatch``.
    """
    parsed_slos: list[Slo] = parse_slos(slos)  # fail on a typo before any device time is spent
    out_dir = Path(out_dir)
    model = Path(model)
    try:
        model_bytes = model.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model {model}: {exc.strerror}", "check the path to the .tflite") from None
    sha = hashlib.sha256(model_bytes).hexdigest()
    io = read_model_io(model_bytes, model)
    x, y = load_npz(data)
    if limit is not None:
        x, y = x[:limit], (y[:limit] if y is not None else None)
    if len(x) == 0:
        raise DataError(f"{data} has no samples", "pass a data file with at least one row in x")
    x = fit_shape(x, io.input.shape[1:], data)
    xq = quantize_inputs(x, io.input.scale, io.input.zero_point)
    oracle_out, oracle_note = _oracle(model_bytes, xq)

    out_dir.mkdir(parents=True, exist_ok=True)
    raw_log = out_dir / "raw.log"
    raw_log.write_bytes(b"")
    own = isinstance(port, str)
    if isinstance(port, DutClient):
        client = port
    else:
        transport = Transport(port, baud=baud, connect_timeout=5.0) if own else port
        client = DutClient(transport)
    client.transport.add_raw_log(raw_log)
    try:
        if not isinstance(port, DutClient):
            client.wait_ready(ready_timeout)
        report = _score_on_device(client, io, xq, y, oracle_out, oracle_note, model, sha, out_dir,
                                  allow_model_mismatch, progress)
    finally:
        if own:
            client.close()
        else:
            client.transport.remove_raw_logs()
    report.slo_results = evaluate(parsed_slos, report.data)
    report.data["slo"] = [r.as_dict() for r in report.slo_results]
    (out_dir / "report.json").write_text(json.dumps(report.data, indent=2) + "\n")
    (out_dir / "report.md").write_text(report.to_markdown())
    return report


def _score_on_device(
    client: DutClient,
    io: ModelIO,
    xq: np.ndarray,
    y: np.ndarray | None,
    oracle_out: np.ndarray | None,
    oracle_note: str,
    model: Path,
    sha: str,
    out_dir: Path,
    allow_model_mismatch: bool,
    progress: bool,
) -> Report:
    info = client.info()
    fw_sha = str(info["model_sha256"])
    mismatch = fw_sha.lower() != sha
    if mismatch and not allow_model_mismatch:
        raise ModelMismatchError(
            f"the firmware at {client.url} was generated from model sha256 {fw_sha} "
            f"({info.get('model', '?')}), but {model.name} has sha256 {sha}",
            "flash firmware generated from this model (tinyedge generate/build), pass the model it was "
            "built from, or add --allow-model-mismatch to score anyway",
        )
    if int(info["input_bytes"]) != io.input.size or int(info["output_count"]) != io.output.size:
        raise ModelMismatchError(
            f"the firmware at {client.url} takes {info['input_bytes']} input bytes and gives "
            f"{info['output_count']} outputs; {model.name} takes {io.input.size} and gives {io.output.size}",
            "score with the model the firmware was generated from",
        )
    board = _load_board(str(info["board"]))
    emulated = bool(info["emulated"])
    timer_hz = int(info["timer_hz"])
    clock_hz = int(info.get("clock_hz") or (board.clock_hz if board else 0))
    classifier = y is not None and io.output.size > 1 and io.output.size != io.input.size

    n = len(xq)
    ticks = np.zeros(n, dtype=np.int64)
    outs = np.zeros((n, io.output.size), dtype=np.int8)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   disable=not progress, transient=True)
    with bar, open(out_dir / "records.jsonl", "w") as records:
        task = bar.add_task("score", total=n)
        for i in range(n):
            client.load_input(np.ascontiguousarray(xq[i]).astype(np.int8).tobytes())
            client.infer(1, 0)
            res = client.te_results()
            ticks[i], outs[i] = res.ticks, res.out
            rec: dict[str, Any] = {"index": i, "ticks": int(res.ticks)}
            if emulated:
                rec["instructions"] = int(round(res.ticks * 1e9 / timer_hz))
                rec["latency_ms"] = rec["instructions"] / clock_hz * 1e3 if clock_hz else None
            else:
                rec["latency_ms"] = res.ticks / timer_hz * 1e3
            if y is not None:
                rec["label"] = int(y[i])
            if classifier:
                rec["pred"] = int(np.argmax(res.out))
                rec["correct"] = rec["pred"] == int(y[i])  # type: ignore[index]
            if oracle_out is not None:
                rec["parity"] = bool(np.array_equal(res.out, oracle_out[i]))
            rec["out"] = [int(v) for v in res.out]
            records.write(json.dumps(rec) + "\n")
            records.flush()
            bar.advance(task)

    # -- figures
    if emulated:
        instr = ticks.astype(np.float64) * 1e9 / timer_hz
        lat_ms = instr / clock_hz * 1e3 if clock_hz else np.zeros(0)
        instructions: int | None = int(round(float(np.median(instr))))
    else:
        lat_ms = ticks.astype(np.float64) / timer_hz * 1e3
        instructions = None
    latency = _percentiles(lat_ms)
    accuracy = float(np.mean(np.argmax(outs, axis=1) == y)) if classifier else None
    parity = float(np.mean(np.all(outs == oracle_out, axis=1))) if oracle_out is not None else None
    energy = board.run_power_mw * latency["p50"] if board and latency["p50"] is not None else None

    timer = info.get("timer", "?")
    m: dict[str, str] = {}
    if emulated:
        m["instructions"] = (
            f"median over samples of the ticks of one inference (te-results) x 1e9 / timer_hz ({timer_hz} Hz, "
            f"{timer}); under QEMU -icount shift=0 one instruction takes 1 ns of virtual time")
        m["latency_ms"] = (
            f"ESTIMATE, not a measurement: instructions / clock_hz ({clock_hz} Hz), assuming one instruction "
            f"per cycle on the emulated board")
    else:
        m["instructions"] = "not measured: real hardware counts time, not instructions"
        m["latency_ms"] = f"measured: ticks of one inference (te-results) / timer_hz ({timer_hz} Hz, {timer})"
    if board is not None:
        p = board.power
        m["energy_uj_per_inference"] = (
            f"power model, not a measurement: {board.run_power_mw:.3f} mW (run current {board.run_current_ma:.3f} mA "
            f"x {p['voltage_v']} V) x median latency; source: {p.get('source', 'board file')}")
    else:
        m["energy_uj_per_inference"] = f"not estimated: no board file for '{info['board']}'"
    m["accuracy"] = ("top-1: argmax of the device's int8 outputs vs y" if classifier else
                     "not measured: no labels, or the model is not a classifier (e.g. an autoencoder)")
    m["parity"] = oracle_note or (
        "fraction of samples whose int8 outputs equal tflite_micro's (tinyedge.oracle.run_tflm) exactly")
    m["memory"] = "from te-info: flash and RAM between the linker symbols __te_*_start and __te_*_end"
    if mismatch:
        m["model"] = f"MISMATCH allowed: firmware model sha256 {fw_sha}, scored against {sha}"

    stats = client.parser.stats
    data = {
        "tinyedge_version": __version__,
        "board": str(info["board"]),
        "emulated": emulated,
        "model": model.name,
        "model_sha256": sha,
        "firmware_model_sha256": fw_sha,
        "model_mismatch": mismatch,
        "allow_model_mismatch": allow_model_mismatch,
        "samples": n,
        "accuracy": accuracy,
        "parity": parity,
        "latency_ms": latency,
        "instructions": instructions,
        "energy_uj_per_inference": energy,
        "ram_bytes": int(info.get("ram_bytes", 0)) or None,
        "flash_bytes": int(info.get("flash_bytes", 0)) or None,
        "clock_hz": clock_hz,
        "timer_hz": timer_hz,
        "timer": timer,
        "measurement": m,
        "device": {k: v for k, v in info.items()},
        "link": {"url": client.url, "corrupt_lines": stats.corrupt, "unknown_lines": stats.unknown,
                 "truncated_lines": stats.truncated},
    }
    return Report(data, out_dir=out_dir)

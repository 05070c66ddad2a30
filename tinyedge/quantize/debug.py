"""Which layer loses the accuracy: the error int8 quantization adds, layer by layer.

The float model and the int8 model run side by side on the evaluation data:

- **float reference**: the converter's calibrated float model (the same graph, operators and tensor names as
  the int8 model, before quantization), run by TFLM's interpreter in float. Every intermediate tensor is read
  by running the model truncated after the operator that writes it (TFLM's Python interpreter only returns
  the model's outputs).
- **int8**: the model ``tinyedge quantize`` writes (same conversion, same calibration subset), run by TFLM.
  *Accumulated* error: the int8 model truncated after the layer, fed the quantized evaluation inputs.
  *Isolated* error: the layer alone as a one-operator int8 model, fed the float model's input to that layer
  quantized with the int8 model's scale, so only this layer's own rounding, clipping and weights count.
- **float fallback**: one layer kept float (``denylisted_nodes``, the mechanism of TensorFlow's
  ``tf.lite.experimental.QuantizationDebugger``: ``mlir_quantize`` on the calibrated model, so the other
  layers keep exactly the int8 model's scales), and every other layer kept float. TFLM runs these mixed models
  too: it has float kernels for the ops tinyedge supports, and the DEQUANTIZE/QUANTIZE pairs the converter
  inserts. So every figure comes from one interpreter, TFLM, the one the firmware matches bit for bit.

SQNR (dB) = 10 log10(sum f^2 / sum (f - q)^2) over all elements of all samples, f the float tensor and q the
int8 tensor dequantized; RMSE = sqrt(mean (f - q)^2) in the tensor's float units. A value counts as clipped
when the float value lies more than half a step outside the range the int8 tensor can represent,
``[scale * (-128 - zp), scale * (127 - zp)]``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np

from ..data import fit_shape, load_npz, quantize_inputs
from ..errors import DataError, ModelError, OracleError
from ..oracle import run_tflm
from . import _check_model_path, _classes, _convert, _import_tf, _load, _quiet_converter, _tflite_info
from .mixed import op_layers, resolve_layers, splice_int16

#: Operators that only move data: no float fallback figures for them (the error they add is their input's).
_DATA_MOVES = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "QUANTIZE", "DEQUANTIZE"}
#: Operators whose int8 output range TFLite fixes (not calibrated): clipping there is not a calibration problem.
_FIXED_RANGE = {"SOFTMAX", "LOGISTIC", "TANH"}
#: Elements of each layer's float and int8 values kept for the histograms (seeded sample).
_HIST_ELEMENTS = 20000


@dataclass
class LayerDebug:
    """One operator of the int8 model and the error its quantization adds."""

    index: int  # operator index in the int8 model
    op: str
    layer: str  # the Keras layer it came from (``--int16`` takes this name)
    tensor: str  # output tensor name
    shape: list[int]
    scale: float | None = None  # of the output tensor (per-tensor for activations)
    zero_point: int | None = None
    range_min: float | None = None  # the float range the int8 output can represent
    range_max: float | None = None
    float_min: float | None = None  # the float model's values on the evaluation data
    float_max: float | None = None
    clipped: float | None = None  # fraction of float values outside the int8 range
    sqnr_db_own: float | None = None  # the layer's own error: float and int8 layer fed the same int8 input
    rmse_own: float | None = None
    sqnr_db: float | None = None  # isolated: the layer fed the float model's input (rounded to its int8 scale)
    rmse: float | None = None
    sqnr_db_accumulated: float | None = None  # through the int8 chain from the model input
    rmse_accumulated: float | None = None
    weight_sqnr_db: float | None = None  # the layer's int8 weights against the float ones
    accuracy_layer_float: float | None = None  # this layer float, the rest int8
    accuracy_only_layer_int8: float | None = None  # this layer int8, the rest float
    readers: list[str] = field(default_factory=list)  # layers reading its output (through reshapes)
    int16_layers: list[str] = field(default_factory=list)  # worst layers: the --int16 recommended
    int16_accuracy: float | None = None  # ... and the accuracy measured with it
    notes: list[str] = field(default_factory=list)

    @property
    def severity(self) -> float:
        """Sort key, lower is worse: own SQNR (else isolated, else accumulated); an exact layer is +inf."""
        for sqnr, rmse in ((self.sqnr_db_own, self.rmse_own), (self.sqnr_db, self.rmse),
                           (self.sqnr_db_accumulated, self.rmse_accumulated)):
            if sqnr is not None:
                return sqnr
            if rmse is not None:
                return math.inf if rmse == 0 else -math.inf
        return math.inf


@dataclass
class DebugReport:
    """What :func:`debug_quantization` measured; ``to_dict()`` is the JSON report."""

    model: str
    int8_sha256: str
    samples: int
    calib_samples: int
    float_accuracy: float
    int8_accuracy: float
    layers: list[LayerDebug]
    worst: list[int]  # operator indices, worst first
    advice: list[str]  # one line per worst layer
    summary: str  # one line: how much int8 loses and where
    measurement: dict[str, str]
    seconds: float = 0.0
    series: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)  # plots only

    def layer(self, index: int) -> LayerDebug:
        """The layer of operator ``index``."""
        return next(ly for ly in self.layers if ly.index == index)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (no NaN/inf: an exact layer has SQNR null and RMSE 0)."""
        d = {k: v for k, v in asdict(self).items() if k != "series"}
        return _finite(d)  # type: ignore[no-any-return]

    def rows(self) -> list[dict[str, str]]:
        """The per-layer table as strings, in operator order ("worst": 1 for the worst layer, 2, ...)."""
        out = []
        for ly in self.layers:
            out.append({
                "#": str(ly.index),
                "worst": str(self.worst.index(ly.index) + 1) if ly.index in self.worst else "",
                "layer": ly.layer,
                "op": ly.op,
                "scale / zp": "n/a" if ly.scale is None else f"{ly.scale:.4g} / {ly.zero_point}",
                "int8 range": "n/a" if ly.range_min is None else f"[{ly.range_min:.3g}, {ly.range_max:.3g}]",
                "float range": "n/a" if ly.float_min is None else f"[{ly.float_min:.3g}, {ly.float_max:.3g}]",
                "clipped": "n/a" if ly.clipped is None else f"{100 * ly.clipped:.2f}%",
                "SQNR dB (own)": _db(ly.sqnr_db_own, ly.rmse_own),
                "SQNR dB (isolated)": _db(ly.sqnr_db, ly.rmse),
                "SQNR dB (accumulated)": _db(ly.sqnr_db_accumulated, ly.rmse_accumulated),
                "RMSE (isolated)": "n/a" if ly.rmse is None else f"{ly.rmse:.3g}",
                "weight SQNR dB": "n/a" if ly.weight_sqnr_db is None else f"{ly.weight_sqnr_db:.1f}",
                "acc, layer float": _acc_delta(ly.accuracy_layer_float, self.int8_accuracy),
                "acc, rest float": _acc_delta(ly.accuracy_only_layer_int8, self.float_accuracy),
                "acc, --int16": "" if not ly.int16_layers else
                f"{','.join(ly.int16_layers)}: {_acc_delta(ly.int16_accuracy, self.int8_accuracy)}",
            })
        return out

    def to_text(self) -> str:
        """A plain-text table plus the advice (what the CLI prints without a rich console)."""
        rows = self.rows()
        cols = list(rows[0]) if rows else []
        width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
        lines = ["  ".join(c.ljust(width[c]) for c in cols)]
        lines += ["  ".join(r[c].ljust(width[c]) for c in cols) for r in rows]
        return "\n".join([*lines, "", self.summary, *self.advice])

    # ------------------------------------------------------------------ html

    def figures(self) -> list[tuple[str, str, str]]:
        """(title, caption, PNG as base64): per-layer SQNR bars and the worst layers' histograms."""
        import matplotlib  # noqa: PLC0415 - heavy optional dependency, only for the HTML report

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt  # noqa: PLC0415

        def png(fig: Any) -> str:
            buf = io.BytesIO()
            fig.tight_layout()
            fig.savefig(buf, format="png", dpi=90)
            plt.close(fig)
            return base64.b64encode(buf.getvalue()).decode("ascii")

        figs: list[tuple[str, str, str]] = []
        shown = [ly for ly in self.layers if ly.sqnr_db is not None or ly.sqnr_db_accumulated is not None]
        if shown:
            names = [f"{ly.index}: {ly.layer} ({ly.op})"[:40] for ly in shown]
            y = np.arange(len(shown))
            fig, ax = plt.subplots(figsize=(6.5, 0.8 + 0.42 * len(shown)))
            own = [ly.sqnr_db_own if ly.sqnr_db_own is not None else 0.0 for ly in shown]
            iso = [ly.sqnr_db if ly.sqnr_db is not None else 0.0 for ly in shown]
            acc = [ly.sqnr_db_accumulated if ly.sqnr_db_accumulated is not None else 0.0 for ly in shown]
            colors = ["#cc3311" if ly.index in self.worst else "#4477aa" for ly in shown]
            ax.barh(y - 0.27, own, height=0.27, color=colors, label="own (same int8 input)")
            ax.barh(y, iso, height=0.27, color="#88ccee", label="isolated (float input)")
            ax.barh(y + 0.27, acc, height=0.27, color="#bbbbbb", label="accumulated (int8 chain)")
            ax.set_yticks(y, names, fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel("SQNR (dB), higher is better")
            for i, ly in enumerate(shown):  # an exact layer (e.g. max pooling of its int8 input) has no SQNR
                if ly.sqnr_db_own is None and ly.rmse_own == 0:
                    ax.text(0.5, i - 0.27, "exact", va="center", fontsize=6)
            ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
            figs.append(("Per-layer SQNR", self.measurement["sqnr_db"] + " The own-SQNR bars of the worst layers are "
                         "red, the others dark blue.", png(fig)))
        for idx in self.worst:
            s = self.series.get(idx)
            if not s:
                continue
            ly = self.layer(idx)
            f, q = s["float"], s["int8"]
            lo, hi = float(min(f.min(), q.min())), float(max(f.max(), q.max()))
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 61)
            fig, ax = plt.subplots(figsize=(6.5, 3))
            ax.hist(f, bins=bins.tolist(), alpha=0.55, label="float", color="#4477aa")
            ax.hist(q, bins=bins.tolist(), alpha=0.55, label=f"int8 ({s['which']}), dequantized", color="#ee6677")
            if ly.range_min is not None and ly.range_max is not None:
                for edge in (ly.range_min, ly.range_max):
                    ax.axvline(edge, color="k", linestyle="--", linewidth=0.8)
            ax.set_yscale("log")
            ax.set_xlabel(f"output values of {ly.layer} ({ly.op}); dashed: the int8 range")
            ax.set_ylabel("elements")
            ax.legend(fontsize=7)
            figs.append((f"Layer {idx}: {ly.layer} ({ly.op}), float vs int8",
                         f"A seeded sample of up to {_HIST_ELEMENTS} output elements over the evaluation samples. "
                         + self.measurement["clipped"], png(fig)))
        return figs

    def to_html(self, *, plots: bool = True) -> str:
        """A self-contained HTML page (plots embedded as data URIs)."""
        esc = html.escape
        title = f"tinyedge quantize --debug: {self.model}"
        parts = [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>{esc(title)}</title>",
            "<style>body{font-family:sans-serif;max-width:72em;margin:2em auto;color:#222}"
            "table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em;"
            "text-align:left}.worst{background:#fde8e4}figure{margin:1.5em 0}"
            "figcaption{font-size:.85em;color:#555}</style></head><body>",
            f"<h1>{esc(title)}</h1>",
            "<table><tr><th>figure</th><th>value</th></tr>",
            f"<tr><td>evaluation samples</td><td>{self.samples}</td></tr>",
            f"<tr><td>calibration samples</td><td>{self.calib_samples}</td></tr>",
            f"<tr><td>float accuracy</td><td>{_f(self.float_accuracy, '.4f')}</td></tr>",
            f"<tr><td>int8 accuracy</td><td>{_f(self.int8_accuracy, '.4f')}</td></tr>",
            f"<tr><td>int8 model sha256</td><td>{esc(self.int8_sha256)}</td></tr></table>",
            f"<h2>What to try</h2><p>{esc(self.summary)}</p><ul>",
            *[f"<li>{esc(a)}</li>" for a in self.advice],
            "</ul><h2>Per layer</h2><table>",
        ]
        rows = self.rows()
        if rows:
            parts.append("<tr>" + "".join(f"<th>{esc(c)}</th>" for c in rows[0]) + "</tr>")
            for ly, r in zip(self.layers, rows, strict=True):
                cls = " class='worst'" if ly.index in self.worst else ""
                parts.append(f"<tr{cls}>" + "".join(f"<td>{esc(v)}</td>" for v in r.values()) + "</tr>")
        parts.append("</table>")
        notes = [(ly, n) for ly in self.layers for n in ly.notes]
        if notes:
            parts.append("<ul>" + "".join(f"<li>{ly.index} {esc(ly.layer)}: {esc(n)}</li>" for ly, n in notes)
                         + "</ul>")
        for t, caption, b64 in self.figures() if plots else []:
            parts.append(f"<figure><h3>{esc(t)}</h3><img alt='{esc(t)}' src='data:image/png;base64,{b64}'>"
                         f"<figcaption>{esc(caption)}</figcaption></figure>")
        parts.append("<h2>How each figure was obtained</h2><ul>")
        parts += [f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in self.measurement.items()]
        parts.append(f"</ul><p><small>{self.seconds:.1f} s</small></p></body></html>")
        return "\n".join(parts) + "\n"

    def write(self, json_path: str | Path, html_path: str | Path | None = None, *,
              plots: bool = True) -> dict[str, Path]:
        """Write the JSON report (and the HTML one), each via a temp file and a rename."""
        files = {Path(json_path): json.dumps(self.to_dict(), indent=2) + "\n"}
        if html_path is not None:
            files[Path(html_path)] = self.to_html(plots=plots)
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        return {p.suffix.lstrip("."): p for p in files}


def _f(v: float | None, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def _db(sqnr: float | None, rmse: float | None) -> str:
    if sqnr is not None:
        return f"{sqnr:.1f}"
    return "exact" if rmse == 0 else "n/a"


def _acc_delta(acc: float | None, base: float | None) -> str:
    if acc is None:
        return "n/a"
    return f"{acc:.4f}" + ("" if base is None else f" ({100 * (acc - base):+.1f})")


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def sqnr_db(reference: np.ndarray, approx: np.ndarray) -> tuple[float | None, float]:
    """(SQNR in dB or None when undefined, RMSE) of ``approx`` against ``reference``.

    SQNR is None when the error is zero (exact) or the reference is all zeros.
    """
    f = np.asarray(reference, dtype=np.float64).reshape(-1)
    e = f - np.asarray(approx, dtype=np.float64).reshape(-1)
    noise, signal = float(np.sum(e * e)), float(np.sum(f * f))
    rmse = math.sqrt(noise / max(len(f), 1))
    if noise == 0 or signal == 0:
        return None, rmse
    return 10 * math.log10(signal / noise), rmse


# --- flatbuffer surgery ----------------------------------------------------------------------------


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema  # noqa: PLC0415

    return schema


def _submodel(model: Any, ops: list[int], inputs: list[int], outputs: list[int]) -> bytes:
    """``model`` (a ModelT, left unchanged) with only operators ``ops``, reading ``inputs``, giving ``outputs``."""
    sg = model.subgraphs[0]
    saved = sg.operators, sg.inputs, sg.outputs
    try:
        sg.operators, sg.inputs, sg.outputs = [saved[0][i] for i in ops], list(inputs), list(outputs)
        builder = flatbuffers.Builder(1 << 16)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
    finally:
        sg.operators, sg.inputs, sg.outputs = saved


def _name(t: Any) -> str:
    n = t.name
    return n.decode(errors="replace") if isinstance(n, bytes) else str(n or "")


def _is_const(m: Any, t: int) -> bool:
    buf = m.buffers[m.subgraphs[0].tensors[t].buffer]
    return buf is not None and buf.data is not None and len(buf.data) > 0


def _qparams(tensor: Any) -> tuple[np.ndarray, np.ndarray, int] | None:
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(q.scale), dtype=np.int64)
    return np.asarray(q.scale, dtype=np.float32), zp, int(q.quantizedDimension or 0)


def _dequantize(q: np.ndarray, tensor: Any) -> np.ndarray:
    """Integer values of ``tensor`` (per-tensor quantized) as float32."""
    qp = _qparams(tensor)
    if qp is None:
        raise ModelError(f"tensor {_name(tensor)!r} has no quantization parameters",
                         "report this model to tinyedge: the converter left an int8 tensor without a scale")
    out: np.ndarray = (q.astype(np.float32) - np.float32(qp[1][0])) * qp[0][0]
    return out


def _const(m: Any, t: int, dtype: Any) -> np.ndarray:
    tensor = m.subgraphs[0].tensors[t]
    data = np.asarray(m.buffers[tensor.buffer].data, dtype=np.uint8).tobytes()
    return np.frombuffer(data, dtype=dtype).reshape([int(d) for d in tensor.shape])


def _weight_sqnr(int8_m: Any, t8: int, float_m: Any, tf_: int) -> float | None:
    """SQNR of the int8 weights (dequantized per channel) against the float weights."""
    schema = _schema()
    w8, wf = int8_m.subgraphs[0].tensors[t8], float_m.subgraphs[0].tensors[tf_]
    qp = _qparams(w8)
    if qp is None or w8.type != schema.TensorType.INT8 or wf.type != schema.TensorType.FLOAT32:
        return None
    scale, zp, axis = qp
    q = _const(int8_m, t8, np.int8).astype(np.float64)
    f = _const(float_m, tf_, np.float32)
    if q.shape != f.shape:
        return None
    shape = [1] * q.ndim
    if len(scale) > 1:
        shape[axis] = len(scale)
    deq = (q - zp.reshape(shape)) * scale.astype(np.float64).reshape(shape)
    return sqnr_db(f, deq)[0]


# --- the debugger ----------------------------------------------------------------------------------


def _calibrated(tf: Any, loaded: Any, x_cal: np.ndarray) -> bytes:
    """The converter's calibrated float model (min/max recorded, nothing quantized yet)."""

    def representative() -> Any:
        for i in range(len(x_cal)):
            yield [x_cal[i : i + 1]]

    try:
        with _quiet_converter():
            converter = tf.lite.TFLiteConverter.from_concrete_functions([loaded.fixed_fn])
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
            converter.experimental_mlir_quantizer = True
            converter._experimental_calibrate_only = True  # noqa: SLF001 - what QuantizationDebugger sets
            return bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001 - ConverterError, RuntimeError from calibration, ...
        raise ModelError(f"calibrating the model for --debug failed: {str(exc).splitlines()[0][:300]}",
                         "run 'tinyedge quantize' without --debug to see whether the conversion itself works") from None


def _quantize_with_float(tf: Any, calibrated: bytes, float_nodes: list[str]) -> bytes:
    """The int8 model with the operators writing ``float_nodes`` (tensor names) kept float."""
    from tensorflow.lite.python import convert as tf_convert  # noqa: PLC0415  (what QuantizationDebugger calls)

    with _quiet_converter():
        return bytes(tf_convert.mlir_quantize(
            calibrated, fully_quantize=True, input_data_type=tf.int8, output_data_type=tf.int8,
            denylisted_nodes=float_nodes))


def debug_quantization(
    model: Path,
    calib: Path,
    eval_data: Path,
    *,
    max_calib: int = 500,
    max_samples: int | None = 1000,
    worst: int = 3,
    fallback: bool = True,
    int16: bool = True,
) -> DebugReport:
    """Measure, layer by layer, the error int8 quantization adds to ``model`` on ``eval_data``.

    The int8 model is the one :func:`tinyedge.quantize.quantize_model` writes with the same ``calib`` and
    ``max_calib``. Up to ``max_samples`` evaluation samples are used (a seeded subset; None: all). With
    ``fallback``, the accuracy with each layer kept float, and with only that layer int8, is measured too
    (two extra models per layer). The ``worst`` layers are those with the lowest own SQNR; with ``int16``, the
    accuracy with the ``--int16`` layers recommended for each is measured (TFLM, the mixed int8/int16x8 model
    ``quantize --int16`` writes).

    Raises ModelError, DataError, ToolError (TensorFlow missing) or OracleError.
    """
    start = time.monotonic()
    model, calib, eval_data = Path(model), Path(calib), Path(eval_data)
    _check_model_path(model)
    if max_calib < 1:
        raise DataError(f"max_calib must be at least 1 (got {max_calib})", "pass --max-calib 100 or more")
    x_cal, _ = load_npz(calib, need_labels=False)
    x_eval, y_eval = load_npz(eval_data, need_labels=True)
    assert y_eval is not None  # need_labels
    tf = _import_tf()
    loaded = _load(tf, model)
    x_cal = fit_shape(x_cal, loaded.input_shape, calib).astype(np.float32)
    x_eval = fit_shape(x_eval, loaded.input_shape, eval_data).astype(np.float32)
    if len(x_cal) > max_calib:  # the same seeded subset as quantize_model
        x_cal = x_cal[np.sort(np.random.default_rng(0).choice(len(x_cal), max_calib, replace=False))]
    if max_samples is not None and len(x_eval) > max_samples:
        idx = np.sort(np.random.default_rng(0).choice(len(x_eval), max_samples, replace=False))
        x_eval, y_eval = x_eval[idx], y_eval[idx]

    int8 = _convert(tf, loaded, x_cal)
    info = _tflite_info(int8)
    if info["input_type"] != "INT8" or info["output_type"] != "INT8" or info["float_ops"]:
        raise ModelError("the converted model is not a full-integer int8 model",
                         "run 'tinyedge quantize' without --debug for the details")
    calibrated = _calibrated(tf, loaded, x_cal)

    schema = _schema()
    m8 = schema.ModelT.InitFromPackedBuf(int8, 0)
    mf = schema.ModelT.InitFromPackedBuf(calibrated, 0)
    s8, sf = m8.subgraphs[0], mf.subgraphs[0]
    q_in = quantize_inputs(x_eval, info["input_scale"], info["input_zero_point"])

    # int8 tensor -> float tensor by name; the converter keeps the names of the graph it quantizes.
    f_by_name = {_name(t): i for i, t in enumerate(sf.tensors)}
    f_producer = {t: i for i, op in enumerate(sf.operators) for t in op.outputs}
    f_op_by_out = {_name(sf.tensors[op.outputs[0]]): i for i, op in enumerate(sf.operators)}
    float_cache: dict[int, np.ndarray] = {}

    def float_tensor(t8: int) -> np.ndarray | None:
        """The float model's values of the tensor matching int8 tensor ``t8``, one row per sample."""
        tf_idx = f_by_name.get(_name(s8.tensors[t8]))
        if tf_idx is None:
            return None
        if tf_idx not in float_cache:
            if tf_idx in sf.inputs:
                float_cache[tf_idx] = x_eval.reshape(len(x_eval), -1)
            elif tf_idx in f_producer:
                k = f_producer[tf_idx]
                float_cache[tf_idx] = run_tflm(_submodel(mf, list(range(k + 1)), list(sf.inputs), [tf_idx]), x_eval)
            else:
                return None
        return float_cache[tf_idx]

    def dequantize(q: np.ndarray, t8: int) -> np.ndarray:
        return _dequantize(q, s8.tensors[t8])

    rng = np.random.default_rng(0)
    float_out = run_tflm(calibrated, x_eval)
    int8_out = dequantize(run_tflm(int8, q_in), s8.outputs[0])
    float_acc = float(np.mean(_classes(float_out) == y_eval))
    int8_acc = float(np.mean(_classes(int8_out) == y_eval))

    layers: list[LayerDebug] = []
    series: dict[int, dict[str, Any]] = {}
    names = op_layers(int8)
    readers = _readers(s8, names)
    for k, op in enumerate(s8.operators):
        t_out = int(op.outputs[0])
        tensor = s8.tensors[t_out]
        ly = LayerDebug(index=k, op=names[k].op, layer=names[k].layer, tensor=names[k].tensor,
                        shape=[int(d) for d in tensor.shape], readers=readers[k])
        layers.append(ly)
        qp = _qparams(tensor)
        if tensor.type != schema.TensorType.INT8 or qp is None:
            ly.notes.append("its output is not an int8 tensor: no error figures")
            continue
        scale, zp = float(qp[0][0]), int(qp[1][0])
        ly.scale, ly.zero_point = scale, zp
        ly.range_min, ly.range_max = scale * (-128 - zp), scale * (127 - zp)
        f = float_tensor(t_out)
        if f is None:
            ly.notes.append("no tensor of this name in the float model: no error figures")
            continue
        ly.float_min, ly.float_max = float(f.min()), float(f.max())
        ly.clipped = float(np.mean((f < ly.range_min - scale / 2) | (f > ly.range_max + scale / 2)))

        acc_q = dequantize(run_tflm(_submodel(m8, list(range(k + 1)), list(s8.inputs), [t_out]), q_in), t_out)
        ly.sqnr_db_accumulated, ly.rmse_accumulated = sqnr_db(f, acc_q)
        hist_q, which = acc_q, "accumulated"

        fk = f_op_by_out.get(_name(tensor))
        slots = [i for i, t in enumerate(op.inputs) if t >= 0 and not _is_const(m8, int(t))]
        if len(slots) != 1:
            ly.notes.append(f"isolated error needs one activation input, it has {len(slots)}")
        else:
            t_in = int(op.inputs[slots[0]])
            f_in, in_q = float_tensor(t_in), _qparams(s8.tensors[t_in])
            if f_in is None or in_q is None or s8.tensors[t_in].type != schema.TensorType.INT8:
                ly.notes.append("its input has no float counterpart or is not int8: no isolated error")
            else:
                x_q = quantize_inputs(f_in, float(in_q[0][0]), int(in_q[1][0]))
                iso_q = dequantize(run_tflm(_submodel(m8, [k], [t_in], [t_out]), x_q), t_out)
                ly.sqnr_db, ly.rmse = sqnr_db(f, iso_q)
                hist_q, which = iso_q, "isolated"
                # The float layer fed the same rounded input: what is left is this layer's own error.
                f_in_t = int(sf.operators[fk].inputs[slots[0]]) if fk is not None else -1
                if fk is not None and f_in_t >= 0 and not _is_const(mf, f_in_t):
                    f_same = run_tflm(_submodel(mf, [fk], [f_in_t], [int(sf.operators[fk].outputs[0])]),
                                      _dequantize(x_q, s8.tensors[t_in]))
                    ly.sqnr_db_own, ly.rmse_own = sqnr_db(f_same, iso_q)

        if fk is not None and ly.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1:
            w8, wf = int(op.inputs[1]), int(sf.operators[fk].inputs[1])
            if w8 >= 0 and wf >= 0 and _is_const(m8, w8) and _is_const(mf, wf):
                ly.weight_sqnr_db = _weight_sqnr(m8, w8, mf, wf)

        n = f.size
        pick = rng.choice(n, _HIST_ELEMENTS, replace=False) if n > _HIST_ELEMENTS else np.arange(n)
        series[k] = {"float": f.reshape(-1)[pick], "int8": hist_q.reshape(-1)[pick], "which": which}

        # Only float tensors a later operator reads stay cached (a large model's would not fit in memory).
        live = {f_by_name.get(_name(s8.tensors[int(t)])) for o in s8.operators[k + 1:] for t in o.inputs if t >= 0}
        for t_f in [t for t in float_cache if t not in live]:
            del float_cache[t_f]

    if fallback:
        f_nodes = {ly.index: _name(s8.tensors[s8.operators[ly.index].outputs[0]]) for ly in layers}
        all_nodes = [n for n in f_nodes.values() if n in f_op_by_out]
        for ly in layers:
            node = f_nodes[ly.index]
            if ly.op in _DATA_MOVES or node not in f_op_by_out:
                continue
            for attr, nodes in (("accuracy_layer_float", [node]),
                                ("accuracy_only_layer_int8", [n for n in all_nodes if n != node])):
                try:
                    mixed = _quantize_with_float(tf, calibrated, nodes)
                    out_t = schema.ModelT.InitFromPackedBuf(mixed, 0).subgraphs[0]
                    deq = _dequantize(run_tflm(mixed, q_in), out_t.tensors[out_t.outputs[0]])
                    setattr(ly, attr, float(np.mean(_classes(deq) == y_eval)))
                except (OracleError, ModelError, RuntimeError, ValueError, TypeError) as exc:
                    ly.notes.append(f"{attr}: could not be measured ({str(exc).splitlines()[0][:200]})")

    ranked = sorted((ly for ly in layers if ly.severity < math.inf), key=lambda ly: (ly.severity, ly.index))
    worst_layers = ranked[:max(worst, 0)]
    if int16 and worst_layers:
        _measure_int16(tf, loaded, x_cal, int8, worst_layers, q_in, y_eval)
    report = DebugReport(
        model=str(model),
        int8_sha256=hashlib.sha256(int8).hexdigest(),
        samples=len(x_eval),
        calib_samples=len(x_cal),
        float_accuracy=float_acc,
        int8_accuracy=int8_acc,
        layers=layers,
        worst=[ly.index for ly in worst_layers],
        advice=[_advice(ly, float_acc, int8_acc, _loses(float_acc, int8_acc, len(x_eval))) for ly in worst_layers],
        summary=_summary(float_acc, int8_acc, len(x_eval), worst_layers),
        measurement=_MEASUREMENT,
        series=series,
    )
    report.seconds = time.monotonic() - start
    return report


def _measure_int16(tf: Any, loaded: Any, x_cal: np.ndarray, int8: bytes, worst: list[LayerDebug],
                   q_in: np.ndarray, y_eval: np.ndarray) -> None:
    """Fill ``int16_layers`` / ``int16_accuracy`` of the ``worst`` layers: the mixed model each recommendation
    makes (as ``quantize --int16 LAYERS`` does), run by TFLM."""
    schema = _schema()
    out_t = schema.ModelT.InitFromPackedBuf(int8, 0).subgraphs[0]
    out_tensor = out_t.tensors[out_t.outputs[0]]
    try:
        int16_model = _convert(tf, loaded, x_cal, int16=True)
    except ModelError as exc:
        for ly in worst:
            ly.int16_layers = _int16_choice(ly)
            ly.notes.append(f"--int16 not measured: the 16-bit conversion failed ({exc.problem})")
        return
    for ly in worst:
        ly.int16_layers = _int16_choice(ly)
        try:
            mixed = splice_int16(int8, int16_model, resolve_layers(int8, ly.int16_layers))
            deq = _dequantize(run_tflm(mixed, q_in), out_tensor)  # the mixed model keeps the int8 output
            ly.int16_accuracy = float(np.mean(_classes(deq) == y_eval))
        except (ModelError, OracleError) as exc:
            ly.notes.append(f"--int16 {','.join(ly.int16_layers)} not measured: {exc.problem}")


def _readers(sg: Any, names: list[Any]) -> list[list[str]]:
    """Per operator, the layers reading its output: a data move (reshape) counts, and so do its readers."""
    consumers: dict[int, list[int]] = {}
    for i, op in enumerate(sg.operators):
        for t in op.inputs:
            if t >= 0:
                consumers.setdefault(int(t), []).append(i)
    out = []
    for op in sg.operators:
        found: list[str] = []
        todo = [c for t in op.outputs for c in consumers.get(int(t), [])]
        while todo:
            c = todo.pop(0)
            if names[c].layer not in found:
                found.append(names[c].layer)
            if names[c].op in _DATA_MOVES:
                todo += [d for t in sg.operators[c].outputs for d in consumers.get(int(t), [])]
        out.append(found)
    return out


def _loses(float_acc: float, int8_acc: float, n: int) -> bool:
    """True when int8 gets at least one more evaluation sample wrong than float."""
    return (float_acc - int8_acc) * n >= 0.5


def _summary(float_acc: float, int8_acc: float, n: int, worst: list[LayerDebug]) -> str:
    drop = 100 * (float_acc - int8_acc)
    names = ", ".join(f"{ly.layer} ({_db(ly.sqnr_db_own, ly.rmse_own)} dB own SQNR)" for ly in worst) or "none"
    if not _loses(float_acc, int8_acc, n):
        return (f"int8 loses no accuracy on these {n} samples (float {float_acc:.4f}, int8 {int8_acc:.4f}): nothing "
                f"needs fixing; the layers adding the most error are {names}.")
    return (f"int8 loses {drop:.2f} accuracy points against float ({float_acc:.4f} -> {int8_acc:.4f} on {n} "
            f"samples); the layers adding the most error are {names}.")


def _diagnose(ly: LayerDebug) -> tuple[list[str], bool]:
    """What the figures of ``ly`` say is wrong, and whether it is the output tensor's scale."""
    why = []
    scale_problem = False
    if ly.clipped is not None and ly.clipped > 1e-3 and ly.op in _FIXED_RANGE:
        why.append(f"{100 * ly.clipped:.2f}% of its float values fall outside its int8 range, which TFLite fixes "
                   f"for {ly.op} ([{ly.range_min:.3g}, {ly.range_max:.3g}]), not calibration")
    elif ly.clipped is not None and ly.clipped > 1e-3:
        scale_problem = True
        why.append(f"{100 * ly.clipped:.2f}% of its float values fall outside its int8 range "
                   f"[{ly.range_min:.3g}, {ly.range_max:.3g}]: calibrate with data that covers the evaluation "
                   "inputs (--calib)")
    if (ly.float_min is not None and ly.float_max is not None and ly.range_min is not None
            and ly.range_max is not None and ly.op not in _FIXED_RANGE):
        used = max(ly.float_max, 0.0) - min(ly.float_min, 0.0)
        span = ly.range_max - ly.range_min
        if used > 0 and span / used >= 8:
            scale_problem = True
            why.append(f"its int8 range [{ly.range_min:.3g}, {ly.range_max:.3g}] is {span / used:.0f}x wider than "
                       f"the values it takes on the evaluation data [{ly.float_min:.3g}, {ly.float_max:.3g}], so "
                       "few of the 256 steps are used: look for outliers in the calibration data")
    if ly.weight_sqnr_db is not None and ly.weight_sqnr_db < 25:
        why.append(f"its int8 weights lose precision (weight SQNR {ly.weight_sqnr_db:.1f} dB: a few large weights "
                   "set the per-channel scale; 16-bit activations keep 8-bit weights, so clip the weights or "
                   "retrain with weight decay)")
    return why, scale_problem


def _int16_choice(ly: LayerDebug) -> list[str]:
    """The layers to keep at 16 bits for ``ly``: with its readers when its output scale is the problem (the
    badly scaled tensor is their input too, and stays int8 unless they read it at 16 bits)."""
    return [ly.layer, *ly.readers] if _diagnose(ly)[1] and ly.readers else [ly.layer]


def _advice(ly: LayerDebug, float_acc: float, int8_acc: float, needed: bool) -> str:
    """What to try for one of the worst layers, from what its figures say."""
    head = f"layer {ly.index} {ly.layer} ({ly.op}): own SQNR {_db(ly.sqnr_db_own, ly.rmse_own)} dB"
    if ly.accuracy_only_layer_int8 is not None:
        head += (f"; the only int8 layer (the rest float): {100 * (ly.accuracy_only_layer_int8 - float_acc):+.1f} "
                 "accuracy points against float")
    if ly.accuracy_layer_float is not None:
        head += f"; kept float: {100 * (ly.accuracy_layer_float - int8_acc):+.1f} points against int8"
    why = _diagnose(ly)[0]
    choice = ly.int16_layers or _int16_choice(ly)
    what = "keep it and the layers reading its output" if len(choice) > 1 else "keep it"
    measured = ("" if ly.int16_accuracy is None else
                f" (measured: accuracy {ly.int16_accuracy:.4f}, {100 * (ly.int16_accuracy - int8_acc):+.1f} points "
                "against int8)")
    why.append(f"{what} at 16 bits: --int16 {','.join(choice)}{measured}")
    return head + (". Try: " if needed else ". If you need the last bit of accuracy, try: ") + "; ".join(why) + "."


_MEASUREMENT = {
    "sqnr_db": "SQNR = 10 log10(sum f^2 / sum (f - q)^2) over all output elements of all evaluation samples, q the "
               "int8 layer output dequantized. Own: the layer alone as a one-operator int8 model (TFLM) against "
               "the same float operator (TFLM, float) fed the same int8 input dequantized, so only the layer's own "
               "weights, arithmetic and output rounding/clipping count. Isolated: the int8 layer fed the float "
               "model's input to that layer (rounded to the int8 input scale, as it must be) against the float "
               "model's output of that layer. Accumulated: the int8 model up to that layer (TFLM) fed the quantized "
               "evaluation inputs against the float model's output of that layer. Float = the converter's "
               "calibrated float model (same operators and tensor names) run by TFLM in float.",
    "rmse": "sqrt(mean (f - q)^2) in the tensor's float units.",
    "clipped": "Fraction of the float layer's output values more than half a step outside the int8 range "
               "[scale * (-128 - zp), scale * (127 - zp)].",
    "weight_sqnr_db": "The int8 weights dequantized with their per-channel scales against the float weights.",
    "accuracy": "Top-1 accuracy on the evaluation samples with TFLM: float = the calibrated float model, "
                "int8 = the model tinyedge quantize writes.",
    "accuracy_layer_float": "The model quantized from the same calibration with this one layer kept float "
                            "(TensorFlow's denylisted_nodes, as tf.lite.experimental.QuantizationDebugger does: "
                            "DEQUANTIZE/QUANTIZE around it), run by TFLM; in brackets the change in points against "
                            "int8. The tensors between a float layer and its int8 neighbours stay int8 at the same "
                            "scale, so a badly scaled tensor hurts as much with its writer kept float.",
    "accuracy_only_layer_int8": "Every other layer kept float, this one int8 (the model input stays int8), run by "
                                "TFLM; in brackets the change in points against float.",
    "worst": "The layers with the lowest own SQNR: the error each adds by itself.",
    "int16_accuracy": "For the worst layers: the mixed int8/int16x8 model 'quantize --int16 LAYERS' makes for the "
                      "recommended layers (spliced from the int8 and the 16-bit-activation conversions), run by "
                      "TFLM; in brackets the change in points against int8.",
}

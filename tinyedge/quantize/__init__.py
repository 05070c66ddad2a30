"""Keras / SavedModel -> full-integer int8 ``.tflite`` with TensorFlow's converter.

TensorFlow is imported only inside the functions that need it, so ``import tinyedge.quantize``
(and the CLI) stays fast and works without TensorFlow installed.

The conversion traces the model with a fixed batch size of 1: a dynamic batch makes the
converter emit SHAPE / STRIDED_SLICE / PACK in front of every RESHAPE, which the code generator
(and MCU memory planning) do not support.

Accuracy of the converted model is measured with TFLM's own interpreter (``tinyedge.oracle``),
never ``tf.lite.Interpreter``, because the firmware must match TFLM bit for bit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import fit_shape, load_npz, quantize_inputs
from ..errors import DataError, ModelError, ToolError
from ..oracle import run_tflm
from .mixed import choose_auto, parse_spec, resolve_layers, splice_int16

log = logging.getLogger("tinyedge.quantize")

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_EVAL_BATCH = 256


@dataclass
class QuantizeReport:
    """What ``quantize_model`` produced; ``to_dict()`` is what goes into ``OUT.json``."""

    model: str
    out: str
    sha256: str
    size_bytes: int
    input_shape: list[int]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    ops: list[str] = field(default_factory=list)
    calib_samples: int = 0
    samples: int = 0
    float_accuracy: float | None = None
    int8_accuracy: float | None = None
    #: --int16: the layers kept at 16-bit activations (empty: an all-int8 model), their operators in the
    #: int8 model, the mixed model's accuracy and, for ``auto``, what each layer measured.
    int16_layers: list[str] = field(default_factory=list)
    int16_ops: list[int] = field(default_factory=list)
    mixed_accuracy: float | None = None
    int16_auto: dict[str, Any] | None = None

    @property
    def accuracy_drop(self) -> float | None:
        """float minus int8 accuracy (a fraction, positive when int8 is worse), or None without eval."""
        if self.float_accuracy is None or self.int8_accuracy is None:
            return None
        return self.float_accuracy - self.int8_accuracy

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the report."""
        return {**asdict(self), "accuracy_drop": self.accuracy_drop}


@dataclass
class _Loaded:
    """A float model reduced to what quantization needs: one input shape and a batch predictor."""

    input_shape: tuple[int, ...]  # without batch
    fixed_fn: Any  # tf ConcreteFunction with input [1, *input_shape]
    predict: Callable[[np.ndarray], np.ndarray]
    batch: int  # batch size ``predict`` accepts (1 when the model's batch is fixed)
    owner: Any = None  # keeps a loaded SavedModel alive: its functions only weakly reference variables


def quantize_model(
    model: Path,
    calib: Path,
    out: Path,
    *,
    eval_data: Path | None = None,
    max_calib: int = 500,
    int16: str | None = None,
    int16_tolerance: float = 0.01,
) -> QuantizeReport:
    """Convert ``model`` (``.keras``/``.h5`` or a SavedModel directory) to int8 ``out``.

    Calibration uses up to ``max_calib`` rows of ``x`` from ``calib``. With ``eval_data``, float
    (Keras/TF) and int8 (TFLM) top-1 accuracy are measured on the same samples. ``out`` and the
    report ``out.with_suffix('.json')`` are written only once everything succeeded, atomically,
    so a failure never replaces an existing model.

    ``int16``: ``"LAYER,..."`` keeps those Keras layers at 16-bit activations (int16x8) and the rest int8;
    ``"auto[:BUDGET]"`` chooses the fewest layers that bring the accuracy within ``int16_tolerance`` of
    float, with at most BUDGET extra bytes of planned RAM (needs ``eval_data``). See
    :mod:`tinyedge.quantize.mixed` for how the mixed model is made.

    Raises ModelError, DataError or ToolError (TensorFlow missing).
    """
    model, calib, out = Path(model), Path(calib), Path(out)
    _check_model_path(model)
    if max_calib < 1:
        raise DataError(f"max_calib must be at least 1 (got {max_calib})", "pass --max-calib 100 or more")

    # Read the data before the (slow) TensorFlow import so a bad file fails fast.
    x_cal, _ = load_npz(calib, need_labels=False)
    if len(x_cal) == 0:
        raise DataError(f"calibration file {calib} has no samples", "pass a few hundred representative inputs")
    int16_spec = parse_spec(int16) if int16 is not None else None
    if int16_spec is not None and int16_spec[0] == "auto" and eval_data is None:
        raise DataError("--int16 auto measures accuracy, so it needs evaluation data",
                        "pass --eval DATA.npz (labelled samples), or name the layers: --int16 LAYER,...")
    x_eval = y_eval = None
    if eval_data is not None:
        x_eval, y_eval = load_npz(eval_data, need_labels=True)
        if len(x_eval) == 0:
            raise DataError(f"evaluation file {eval_data} has no samples", "pass a labelled test set")

    tf = _import_tf()
    loaded = _load(tf, model)
    x_cal = fit_shape(x_cal, loaded.input_shape, calib).astype(np.float32)
    if x_eval is not None and eval_data is not None:
        x_eval = fit_shape(x_eval, loaded.input_shape, eval_data).astype(np.float32)

    if len(x_cal) > max_calib:
        # A seeded subset rather than the first rows: files are often sorted by class.
        idx = np.sort(np.random.default_rng(0).choice(len(x_cal), max_calib, replace=False))
        x_cal = x_cal[idx]

    tflite = _convert(tf, loaded, x_cal)
    info = _tflite_info(tflite)
    if info["input_type"] != "INT8" or info["output_type"] != "INT8":
        raise ModelError(
            f"the converter produced {info['input_type']} input / {info['output_type']} output instead of int8",
            "make sure the model has exactly one float input and one output",
        )
    if info["float_ops"]:
        raise ModelError(
            "the converted model is not full-integer: these ops have no int8 kernel and would run in "
            f"float: {', '.join(info['float_ops'])}",
            "replace them with int8-capable layers (Conv2D, DepthwiseConv2D, pooling, Dense, Reshape, Softmax)",
        )

    report = QuantizeReport(
        model=str(model),
        out=str(out),
        sha256=hashlib.sha256(tflite).hexdigest(),
        size_bytes=len(tflite),
        input_shape=[1, *loaded.input_shape],
        input_scale=info["input_scale"],
        input_zero_point=info["input_zero_point"],
        output_scale=info["output_scale"],
        output_zero_point=info["output_zero_point"],
        ops=info["ops"],
        calib_samples=len(x_cal),
    )

    if x_eval is not None and y_eval is not None:
        float_out = np.concatenate(
            [loaded.predict(x_eval[i : i + loaded.batch]) for i in range(0, len(x_eval), loaded.batch)]
        )
        q = quantize_inputs(x_eval, report.input_scale, report.input_zero_point)
        int8_out = run_tflm(tflite, q).astype(np.float32)
        deq = (int8_out - report.output_zero_point) * report.output_scale
        report.samples = len(y_eval)
        report.float_accuracy = float(np.mean(_classes(float_out) == y_eval))
        report.int8_accuracy = float(np.mean(_classes(deq) == y_eval))

    if int16_spec is not None:
        tflite = _mix(tf, loaded, x_cal, tflite, int16_spec, int16_tolerance, report, x_eval, y_eval,
                      float_out if x_eval is not None else None)
        report.sha256, report.size_bytes = hashlib.sha256(tflite).hexdigest(), len(tflite)
        report.ops = _tflite_info(tflite)["ops"]

    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out, tflite)
    _atomic_write(out.with_suffix(".json"), (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    return report


# --- loading -------------------------------------------------------------------------------------


def _check_model_path(model: Path) -> None:
    if not model.exists():
        raise ModelError(f"model {model} does not exist", "pass a .keras/.h5 file or a SavedModel directory")
    if model.is_dir():
        if not ((model / "saved_model.pb").is_file() or (model / "saved_model.pbtxt").is_file()):
            raise ModelError(
                f"{model} is a directory without saved_model.pb, so not a SavedModel",
                "pass a .keras/.h5 file or a directory written by tf.saved_model.save / model.export",
            )
        return
    with model.open("rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3" or model.suffix == ".tflite":
        raise ModelError(
            f"{model} is already a .tflite model",
            "use it directly with 'tinyedge inspect' / 'tinyedge generate', or pass the float Keras model",
        )
    is_zip, is_hdf5 = head.startswith(b"PK"), head.startswith(b"\x89HDF")
    if model.suffix.lower() not in KERAS_SUFFIXES or not (is_zip or is_hdf5):
        raise ModelError(
            f"{model} is not a Keras model (.keras zip or .h5 HDF5) or a SavedModel directory",
            "save the model with model.save('model.keras') or model.export('saved_model_dir')",
        )


def _import_tf() -> Any:  # the tensorflow module (no type information)
    # Quiet TensorFlow's C++ start-up logging unless the user asked for it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with _quiet_native("tensorflow import"):  # oneDNN / absl start-up banners on fd 2
            import tensorflow as tf  # noqa: PLC0415  (optional, heavy: the [tf] extra)
    except ImportError as exc:
        raise ToolError(f"TensorFlow is not installed ({exc})", "pip install 'tinyedge[tf]'") from None
    return tf


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _load(tf: Any, path: Path) -> _Loaded:
    if path.is_dir():
        return _load_saved_model(tf, path)
    return _load_keras(tf, path)


def _static_shape(shape: Iterable[int | None], what: str) -> tuple[int, ...]:
    dims = list(shape)[1:]
    if not dims or any(d is None for d in dims):
        raise ModelError(
            f"{what} has input shape {tuple(shape)}: all dimensions except the batch must be fixed",
            "give the model's Input layer a full shape, e.g. keras.Input(shape=(49, 10, 1))",
        )
    return tuple(int(d) for d in dims if d is not None)  # (none is None: checked above)


def _load_keras(tf: Any, path: Path) -> _Loaded:
    try:
        model = tf.keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for bad files; all mean "cannot load"
        raise ModelError(
            f"cannot load {path} as a Keras model: {_first_line(exc)}",
            "check the file was saved with model.save() by a compatible Keras version",
        ) from None
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except Exception:  # noqa: BLE001 - subclassed models that were never called have no inputs
        inputs, outputs = [], []
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"{path} has {len(inputs)} inputs and {len(outputs)} outputs; tinyedge needs exactly one of each",
            "build the model with one keras.Input and one output (Sequential or functional API)",
        )
    shape = _static_shape(inputs[0].shape, str(path))

    @tf.function(input_signature=[tf.TensorSpec([1, *shape], tf.float32)], autograph=False)
    def fixed(x: Any) -> Any:
        return model(x, training=False)

    @tf.function(input_signature=[tf.TensorSpec([None, *shape], tf.float32)], autograph=False)
    def batched(x: Any) -> Any:
        return model(x, training=False)

    return _Loaded(
        input_shape=shape,
        fixed_fn=fixed.get_concrete_function(),
        predict=lambda x: np.asarray(batched(x)),
        batch=_EVAL_BATCH,
    )


def _load_saved_model(tf: Any, path: Path) -> _Loaded:
    try:
        obj = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise ModelError(
            f"cannot load {path} as a SavedModel: {_first_line(exc)}",
            "check the directory was written by tf.saved_model.save or model.export",
        ) from None
    sig = getattr(obj, "signatures", {}).get("serving_default")
    if sig is None:
        raise ModelError(
            f"SavedModel {path} has no 'serving_default' signature",
            "export it with model.export(dir) or tf.saved_model.save(model, dir, signatures=...)",
        )
    in_specs = sig.structured_input_signature[1]
    out_names = sorted(sig.structured_outputs)
    if len(in_specs) != 1 or len(out_names) != 1:
        raise ModelError(
            f"SavedModel {path} has {len(in_specs)} inputs and {len(out_names)} outputs; "
            "tinyedge needs exactly one of each",
            "export a model with one input and one output",
        )
    (in_name, spec), out_name = next(iter(in_specs.items())), out_names[0]
    if spec.shape.rank is None:
        raise ModelError(f"SavedModel {path} has an input of unknown rank", "export with a fixed input shape")
    shape = _static_shape(spec.shape.as_list(), f"SavedModel {path}")
    batch_fixed = spec.shape.as_list()[0] is not None

    @tf.function(input_signature=[tf.TensorSpec([1, *shape], tf.float32)], autograph=False)
    def fixed(x: Any) -> Any:
        return sig(**{in_name: tf.cast(x, spec.dtype)})[out_name]

    return _Loaded(
        input_shape=shape,
        fixed_fn=fixed.get_concrete_function(),
        predict=lambda x: np.asarray(sig(**{in_name: tf.constant(x, dtype=spec.dtype)})[out_name]),
        batch=1 if batch_fixed else _EVAL_BATCH,
        owner=obj,
    )


# --- conversion ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_native(what: str) -> Iterator[None]:
    """Send what native code writes to fd 2 into a temp file, logged at debug level afterwards.

    TensorFlow's C++ banners ignore TF_CPP_MIN_LOG_LEVEL before absl logging is initialised.
    """
    saved_fd = None
    with tempfile.TemporaryFile() as captured:
        try:
            try:
                saved_fd = os.dup(2)
                os.dup2(captured.fileno(), 2)
            except OSError:  # no real fd 2 (e.g. some embedded interpreters): just don't capture
                saved_fd = None
            yield
        finally:
            if saved_fd is not None:
                os.dup2(saved_fd, 2)
                os.close(saved_fd)
            captured.seek(0)
            text = captured.read().decode(errors="replace").strip()
            if text:
                log.debug("%s output:\n%s", what, text)


@contextlib.contextmanager
def _quiet_converter() -> Iterator[None]:
    """Hide the converter's expected chatter: the deprecated-path notice, the float-input
    statistics warning and the C++ "fully_quantize: ..." line."""
    from absl import logging as absl_logging  # noqa: PLC0415  (comes with TensorFlow)

    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        with warnings.catch_warnings(), _quiet_native("converter"):
            warnings.simplefilter("ignore")
            yield
    finally:
        absl_logging.set_verbosity(verbosity)


def _converter_message(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    msg = " | ".join((errors or lines or [type(exc).__name__])[:3])
    return msg[:600]


def _convert(tf: Any, loaded: _Loaded, x_cal: np.ndarray, *, int16: bool = False) -> bytes:
    def representative() -> Iterator[list[np.ndarray]]:
        for i in range(len(x_cal)):
            yield [x_cal[i : i + 1]]

    # No trackable object on purpose: this path freezes variables into constants. Passing the
    # Keras 3 model keeps READ_VARIABLE ops, and calibration then fails.
    try:
        with _quiet_converter():
            converter = tf.lite.TFLiteConverter.from_concrete_functions([loaded.fixed_fn])
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            if int16:  # 16-bit activations, 8-bit weights, model-wide (the only way the converter offers)
                converter.target_spec.supported_ops = [
                    tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
                converter.inference_input_type = converter.inference_output_type = tf.int16
            else:
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
            return bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001 - ConverterError, RuntimeError from calibration, ...
        raise ModelError(
            f"the TFLite converter failed: {_converter_message(exc)}",
            "use only ops with TFLite int8 builtin kernels (Conv2D, DepthwiseConv2D, pooling, Dense, "
            "Reshape, Softmax) and check the calibration data matches the model",
        ) from None


def _mix(tf: Any, loaded: _Loaded, x_cal: np.ndarray, int8_model: bytes, spec: tuple[str, list[str], int | None],
         tolerance: float, report: QuantizeReport, x_eval: np.ndarray | None, y_eval: np.ndarray | None,
         float_out: np.ndarray | None) -> bytes:
    """The mixed int8/int16x8 model ``spec`` asks for; fills the report's int16 fields."""
    int16_model = _convert(tf, loaded, x_cal, int16=True)
    kind, names, budget = spec

    def evaluate(model: bytes) -> tuple[float, float]:
        assert x_eval is not None and y_eval is not None and float_out is not None
        q = quantize_inputs(x_eval, report.input_scale, report.input_zero_point)
        deq = (run_tflm(model, q).astype(np.float32) - report.output_zero_point) * report.output_scale
        err = float(np.mean(np.abs(deq.reshape(len(deq), -1) - float_out.reshape(len(float_out), -1))))
        return float(np.mean(_classes(deq) == y_eval)), err

    if kind == "auto":
        assert report.float_accuracy is not None
        choice = choose_auto(int8_model, int16_model, evaluate, report.float_accuracy - tolerance, budget)
        report.int16_layers, report.int16_ops = choice.layers, choice.ops
        report.int16_auto = {"target_accuracy": report.float_accuracy - tolerance, "ram_budget_bytes": budget,
                             "reached": choice.reached, "ram_bytes": choice.cost.ram_bytes,
                             "flash_bytes": choice.cost.flash_bytes, "int8_ram_bytes": choice.base_cost.ram_bytes,
                             "int8_flash_bytes": choice.base_cost.flash_bytes, "trials": choice.trials}
        mixed = splice_int16(int8_model, int16_model, choice.ops)
    else:
        report.int16_ops = resolve_layers(int8_model, names)
        report.int16_layers = names
        mixed = splice_int16(int8_model, int16_model, report.int16_ops)
    if x_eval is not None:
        report.mixed_accuracy = evaluate(mixed)[0]
    return mixed


def _tflite_info(model: bytes) -> dict[str, Any]:
    """Input/output types and quantization and the op list, read with TFLM's flatbuffer schema."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema  # noqa: PLC0415

    m = schema.ModelT.InitFromPackedBuf(model, 0)
    sg = m.subgraphs[0]
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    ops, float_ops = [], []
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex]
        # Codes above 127 live only in builtinCode; older files only fill the deprecated field.
        name = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "UNKNOWN")
        ops.append(name)
        # The converter silently keeps ops without int8 kernels in float between DEQUANTIZE/QUANTIZE.
        tensors = [i for i in list(op.inputs) + list(op.outputs) if i >= 0]
        if name not in ("QUANTIZE", "DEQUANTIZE") and any(
            sg.tensors[i].type == schema.TensorType.FLOAT32 for i in tensors
        ):
            float_ops.append(name)
    tin, tout = sg.tensors[sg.inputs[0]], sg.tensors[sg.outputs[0]]

    def qparams(t: Any) -> tuple[float, int]:
        q = t.quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            return 0.0, 0
        return float(np.float32(q.scale[0])), int(q.zeroPoint[0])

    (si, zi), (so, zo) = qparams(tin), qparams(tout)
    return {
        "ops": ops,
        "float_ops": sorted(set(float_ops)),
        "input_type": type_names.get(tin.type, str(tin.type)),
        "output_type": type_names.get(tout.type, str(tout.type)),
        "input_scale": si,
        "input_zero_point": zi,
        "output_scale": so,
        "output_zero_point": zo,
    }


# --- helpers -------------------------------------------------------------------------------------


def _classes(outputs: np.ndarray) -> np.ndarray:
    """Top-1 class per row; a single output unit is read as a probability with threshold 0.5."""
    outputs = outputs.reshape(len(outputs), -1)
    classes: np.ndarray = (outputs[:, 0] > 0.5) if outputs.shape[1] == 1 else np.argmax(outputs, axis=1)
    return classes.astype(np.int64)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory and rename, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

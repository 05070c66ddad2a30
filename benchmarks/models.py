"""Keras models of the MLPerf Tiny IC, VWW and SWW architectures with random (seeded) weights, quantized to int8.

The MLPerf Tiny reference models for image classification (ResNet-8 on CIFAR-10), visual wake words
(MobileNetV1 alpha=0.25, 96x96) and streaming wake word (a depthwise-separable TCN on 30 x 40 features) are
not in ``../shared/models``; these builders give models of the same architecture (same layers, shapes and
ops after conversion) so the benchmark measures the same kernels.
The weights are random, not trained: instruction counts depend on the shapes and on the per-channel
requantization constants, not on accuracy. A few output channels are deliberately dead (all-zero
weights) and a few tiny (weights scaled by 1e-6), as in trained networks: those are the channels whose
requantization constants fall outside what the fast DSP kernels handle.

Everything is seeded (weights, the dead and tiny channels, the calibration data), and the int8 model is
produced by tinyedge's own quantizer (``tinyedge.quantize.quantize_model``), so two builds on the same
machine and TensorFlow version give the same bytes. ``cached_model(name, cache)`` builds once into
``cache/<name>-<key>/`` where the key hashes this file and the TensorFlow version.

    python -m benchmarks.models --out DIR      # writes DIR/ic.tflite, DIR/vww.tflite, DIR/sww.tflite, ...
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tinyedge.quantize import quantize_model

SEED = 1313
CALIB_SAMPLES = 64
#: Fraction of the output channels of each conv/depthwise layer made dead (all-zero weights) and tiny.
DEAD_FRACTION = 0.06
TINY_FRACTION = 0.06
TINY_SCALE = 1e-6


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # noqa: PLC0415  (heavy, optional)

    return tf


def build_ic() -> Any:
    """ResNet-8 as in MLPerf Tiny's image classification model (eembc ``resnet_v1``, 16 filters).

    conv3x3(16) -> three stacks of two conv3x3 with a residual ADD (16, 32, 64 filters; the 2nd and 3rd
    stacks stride 2 and take a 1x1 stride-2 conv on the shortcut) -> average pool 8x8 -> dense 10 -> softmax.
    Batch normalization is left out: the converter folds it into the convolutions' weights and biases,
    which are random here anyway.
    """
    tf = _tf()
    layers = tf.keras.layers

    def conv(x: Any, filters: int, k: int, stride: int, act: str | None, name: str) -> Any:
        return layers.Conv2D(filters, k, strides=stride, padding="same", activation=act, name=name)(x)

    # Every layer is named: Keras numbers unnamed layers per process, and the names end up in the .tflite.
    inputs = tf.keras.Input(shape=(32, 32, 3), name="image")
    x = conv(inputs, 16, 3, 1, "relu", "conv0")
    for i, (filters, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
        y = conv(x, filters, 3, stride, "relu", f"stack{i}_conv1")
        y = conv(y, filters, 3, 1, None, f"stack{i}_conv2")
        if stride != 1:
            x = conv(x, filters, 1, stride, None, f"stack{i}_shortcut")
        x = layers.Activation("relu", name=f"stack{i}_relu")(layers.Add(name=f"stack{i}_add")([x, y]))
    x = layers.AveragePooling2D(pool_size=8, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(10, activation="softmax", name="dense")(x)
    return tf.keras.Model(inputs, outputs, name="ic_resnet8")


def build_vww() -> Any:
    """MobileNetV1 alpha=0.25 at 96x96x3 with 2 classes, as MLPerf Tiny's visual wake words model
    (eembc ``mobilenet_v1``): conv3x3/2 (8) -> 13 depthwise-separable blocks (depthwise 3x3 + pointwise
    1x1, ReLU, "same" padding) -> average pool 3x3 -> dense 2 -> softmax. Batch normalization is folded
    away as in ``build_ic``.
    """
    tf = _tf()
    layers = tf.keras.layers
    # (pointwise filters, depthwise stride) of the 13 blocks: MobileNetV1's 32..1024 times alpha 0.25.
    blocks = ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1), (128, 1), (128, 1),
              (128, 1), (256, 2), (256, 1))
    inputs = tf.keras.Input(shape=(96, 96, 3), name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv0")(inputs)
    for i, (filters, stride) in enumerate(blocks, start=1):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu", name=f"block{i}_dw")(x)
        x = layers.Conv2D(filters, 1, padding="same", activation="relu", name=f"block{i}_pw")(x)
    x = layers.AveragePooling2D(pool_size=int(x.shape[1]), name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(2, activation="softmax", name="dense")(x)
    return tf.keras.Model(inputs, outputs, name="vww_mobilenet_v1_025")


#: MLPerf Tiny streaming wake word (mlcommons/tiny benchmark/training/streaming_wakeword): 1000 ms clips at
#: 16 kHz, 64 ms windows every 32 ms -> 1 + (16000 - 1024) // 512 = 30 frames of 40 features (str_ww_util.py
#: defaults); four depthwise-separable blocks ("ds_tcn" in keras_model.py).
SWW_FRAMES = 30
SWW_FEATURES = 40
#: (pointwise filters, depthwise kernel length in time) of the four blocks: ds_filters and ds_kernel_size.
SWW_BLOCKS = ((128, 3), (128, 5), (128, 10), (32, 15))
SWW_CLASSES = 3


def build_sww() -> Any:
    """MLPerf Tiny streaming wake word ("ds_tcn", mlcommons/tiny benchmark/training/streaming_wakeword/
    keras_model.py): input 30 frames x 1 x 40 features; four blocks of a depthwise conv (k x 1 in time,
    stride 1, dilation 1, "valid" padding, no bias) then a 1x1 conv (128, 128, 128, 32 filters) with batch
    normalization and ReLU; flatten; dense 3 with softmax. The kernel lengths 3 + 5 + 10 + 15 (minus 3) make
    the receptive field exactly the 30-frame window, so time shrinks 30 -> 28 -> 24 -> 15 -> 1 and nothing
    is left to pool.

    The reference has no streaming state variables: the long-audio evaluation runs the same weights with a
    variable-length time axis (one output per frame), and the device runs this fixed 30-frame window on the
    newest features, which is the inference graph built here. Batch normalization is folded into the 1x1
    conv's bias (the converter does the same); dropout vanishes at inference. Quantized, the graph is
    DEPTHWISE_CONV_2D / CONV_2D x 4, RESHAPE, FULLY_CONNECTED, SOFTMAX.
    """
    tf = _tf()
    layers = tf.keras.layers
    inputs = tf.keras.Input(shape=(SWW_FRAMES, 1, SWW_FEATURES), name="features")
    x = inputs
    for i, (filters, k) in enumerate(SWW_BLOCKS, start=1):
        x = layers.DepthwiseConv2D((k, 1), padding="valid", use_bias=False, name=f"block{i}_dw")(x)
        x = layers.Conv2D(filters, 1, padding="valid", activation="relu", name=f"block{i}_pw")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(SWW_CLASSES, activation="softmax", name="dense")(x)
    return tf.keras.Model(inputs, outputs, name="sww_ds_tcn")


BUILDERS: dict[str, tuple[Callable[[], Any], tuple[int, ...]]] = {
    "ic": (build_ic, (32, 32, 3)),
    "vww": (build_vww, (96, 96, 3)),
    "sww": (build_sww, (SWW_FRAMES, 1, SWW_FEATURES)),
}
#: Models with every channel live, ``name: architecture``: the architecture's weights, calibration data and
#: quantizer, without the dead and tiny channels. On such a model the DSP kernels of the tree issue 13 was
#: filed on ran every layer (SWW: 1,474,200 instructions, 6,784 B planned RAM, as the issue's own SWW
#: figures), where on the models with dead channels they fell back to the portable kernels: these are the
#: like-for-like models for comparing flash with that tree.
ALL_LIVE = {"ic-live": "ic", "vww-live": "vww", "sww-live": "sww"}
BUILDERS.update({live: BUILDERS[arch] for live, arch in ALL_LIVE.items()})


def randomize(model: Any, rng: np.random.Generator, *, dead_channels: bool = True) -> dict[str, dict[str, list[int]]]:
    """Give every layer seeded He-normal weights and small random biases, then make a few output
    channels of each conv/depthwise layer dead (all-zero weights) and a few tiny (scaled by 1e-6); with
    ``dead_channels=False`` the same weights without that (the same random draws, so only those channels differ).

    Returns ``{layer name: {"dead": [channels], "tiny": [channels]}}`` (empty lists without ``dead_channels``).
    """
    marked: dict[str, dict[str, list[int]]] = {}
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        kernel = weights[0]
        cls = type(layer).__name__
        # Output channels are the last kernel axis, except depthwise (k, k, in, multiplier): the in axis.
        out_axis = 2 if cls == "DepthwiseConv2D" else kernel.ndim - 1
        fan_in = int(np.prod(kernel.shape[:-1])) if cls != "DepthwiseConv2D" else int(np.prod(kernel.shape[:2]))
        kernel = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=kernel.shape).astype(np.float32)
        new = [kernel] + [rng.normal(0.0, 0.05, size=w.shape).astype(np.float32) for w in weights[1:]]
        if cls in ("Conv2D", "DepthwiseConv2D"):
            n = kernel.shape[out_axis]
            pick = rng.permutation(n)
            n_dead = max(1, round(n * DEAD_FRACTION))
            n_tiny = max(1, round(n * TINY_FRACTION))
            dead, tiny = sorted(pick[:n_dead].tolist()), sorted(pick[n_dead:n_dead + n_tiny].tolist())
            if not dead_channels:
                dead, tiny = [], []
            index: list[Any] = [slice(None)] * kernel.ndim
            for c in dead:
                index[out_axis] = c
                kernel[tuple(index)] = 0.0
            for c in tiny:
                index[out_axis] = c
                kernel[tuple(index)] *= TINY_SCALE
            marked[layer.name] = {"dead": dead, "tiny": tiny}
        layer.set_weights(new)
    return marked


def build(name: str, out: Path, *, seed: int = SEED) -> Path:
    """Build model ``name`` ("ic", "vww", "sww" or one of ALL_LIVE) with seeded random weights and quantize it to
    int8 ``out`` with tinyedge's quantizer and seeded random calibration data in [0, 1)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(BUILDERS)}")
    tf = _tf()
    builder, shape = BUILDERS[name]
    arch = ALL_LIVE.get(name, name)
    rng = np.random.default_rng([seed, sum(arch.encode())])
    tf.keras.utils.set_random_seed(seed)
    model = builder()
    randomize(model, rng, dead_channels=name not in ALL_LIVE)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"te-bench-{name}-") as d:
        keras_path = Path(d) / f"{name}.keras"
        model.save(keras_path)
        calib = Path(d) / "calib.npz"
        np.savez(calib, x=rng.random((CALIB_SAMPLES, *shape), dtype=np.float32))
        quantize_model(keras_path, calib, out, max_calib=CALIB_SAMPLES)
    return out


def cache_key() -> str:
    """Hash of this recipe and the TensorFlow version: a changed recipe builds new models."""
    tf = _tf()
    return hashlib.sha256(Path(__file__).read_bytes() + tf.__version__.encode()).hexdigest()[:16]


def cached_model(name: str, cache_root: str | Path) -> Path:
    """``build(name)`` into ``cache_root/<name>-<key>/<name>_int8.tflite`` unless already there.

    Safe when several processes race: each builds into a private folder and the first rename wins.
    """
    root = Path(cache_root)
    final = root / f"{name}-{cache_key()}"
    path = final / f"{name}_int8.tflite"
    if path.is_file():
        return path
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}-"))
    try:
        build(name, tmp / path.name)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first (or a stale partial folder is in the way)
            if not path.is_file():
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.models", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output directory for <name>.tflite")
    ap.add_argument("--models", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        tmp = args.out / f".{name}.tflite.tmp"
        build(name, tmp)
        tmp.with_suffix(".json").unlink(missing_ok=True)
        os.replace(tmp, args.out / f"{name}.tflite")  # readers never see a partial file
        print(args.out / f"{name}.tflite")


if __name__ == "__main__":
    main()

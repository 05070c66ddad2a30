"""A digits classifier whose int8 model loses accuracy in one layer, for ``tinyedge quantize --debug`` and
``--int16``.

    python examples/mixed-precision/train.py --out DIR

writes ``DIR/outlier.keras`` and ``DIR/{train,calib,test}.npz`` (the splits of ``examples/digits``:
scikit-learn's bundled 8x8 digits, nothing downloaded).

How the loss is made: after training, one channel of the first convolution is scaled up by ``GAIN`` and
the next convolution's weights that read it are scaled down by the same factor. ReLU is positively
homogeneous (relu(g*z) = g*relu(z)), so the float model computes exactly the same function, but the first
layer's output now has one channel ``GAIN`` times wider than the others: int8 quantizes that tensor with
one scale, so the other 15 channels keep only a few of their 256 levels. This is the "outlier channel"
that cross-layer equalization papers describe in trained MobileNets; here it is made deliberately so the
example is reproducible. 16-bit activations for that one layer give back 8 bits of resolution.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

SEED = 1234
EPOCHS = 30
GAIN = 400.0  # how much wider the outlier channel is made (int8 accuracy 98.8% -> 90.5%)
OUTLIER = 3  # which channel of the first convolution


def _digits() -> Any:
    """examples/digits/train.py as a module (the same data splits)."""
    spec = importlib.util.spec_from_file_location("digits_train", Path(__file__).parent.parent / "digits" / "train.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def build_model() -> Any:
    """conv1 (16, relu) -> conv2 (16, relu) -> pool -> dense -> softmax."""
    import tensorflow as tf  # noqa: PLC0415

    keras = tf.keras
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1), name="image"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(10, name="dense"),
            keras.layers.Softmax(name="softmax"),
        ],
        name="outlier",
    )


def add_outlier(model: Any, gain: float = GAIN, channel: int = OUTLIER) -> None:
    """Scale conv1's ``channel`` by ``gain`` and conv2's weights reading it by 1/gain (same float function)."""
    k1, b1 = model.get_layer("conv1").get_weights()
    k1[..., channel] *= gain
    b1[channel] *= gain
    model.get_layer("conv1").set_weights([k1, b1])
    k2, b2 = model.get_layer("conv2").get_weights()
    k2[:, :, channel, :] /= gain
    model.get_layer("conv2").set_weights([k2, b2])


def train(out_dir: str | Path, *, epochs: int = EPOCHS) -> dict[str, Path]:
    """Train, add the outlier channel, and write the model and the data splits into ``out_dir``."""
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import tensorflow as tf  # noqa: PLC0415

    tf.keras.utils.set_random_seed(SEED)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = _digits().load_splits()
    paths: dict[str, Path] = {}
    for name, (x, y) in splits.items():
        paths[name] = out / f"{name}.npz"
        np.savez(paths[name], x=x, y=y)
    model = build_model()
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x_train, y_train = splits["train"]
    x_test, y_test = splits["test"]
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, shuffle=True, verbose=0)
    before = model.predict(x_test, verbose=0)
    add_outlier(model)
    after = model.predict(x_test, verbose=0)
    paths["model"] = out / "outlier.keras"
    model.save(paths["model"])
    paths["metrics"] = out / "metrics.json"
    paths["metrics"].write_text(json.dumps({
        "float_test_accuracy": float(np.mean(np.argmax(after, axis=1) == y_test)),
        "max_output_change_from_outlier": float(np.max(np.abs(after - before))),
        "gain": GAIN, "channel": OUTLIER}, indent=2) + "\n")
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    args = ap.parse_args()
    paths = train(args.out, epochs=args.epochs)
    print(json.loads(paths["metrics"].read_text()))
    for k, v in paths.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()

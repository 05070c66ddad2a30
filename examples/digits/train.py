"""Train a small int8-friendly CNN on scikit-learn's bundled handwritten digits (8x8, offline).

    python examples/digits/train.py --out DIR

writes ``DIR/digits.keras`` and ``DIR/{train,calib,test}.npz`` (``x`` float32 in [0, 1] shaped
(N, 8, 8, 1), ``y`` int64). Importable too: ``train(out_dir) -> dict of paths``.

The data ships inside scikit-learn, so nothing is downloaded. Everything is seeded, so two runs
on the same machine give the same model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

SEED = 1234
EPOCHS = 40
# 1797 samples -> 1000 train, 200 calibration, 597 test (stratified).
N_TRAIN = 1000
N_CALIB = 200


def load_splits(seed: int = SEED) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The digits data as ``{"train"|"calib"|"test": (x, y)}``; x float32 (N, 8, 8, 1) in [0, 1]."""
    # scikit-learn and TensorFlow load on first use: importing this file (the tests do) stays cheap.
    from sklearn.datasets import load_digits  # noqa: PLC0415
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    digits = load_digits()
    # Pixel values are 0..16; [0, 1] gives the int8 input scale 1/255 with zero point -128.
    x = (digits.images.astype(np.float32) / 16.0)[..., None]
    y = digits.target.astype(np.int64)
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, train_size=N_TRAIN, stratify=y, random_state=seed
    )
    x_calib, x_test, y_calib, y_test = train_test_split(
        x_rest, y_rest, train_size=N_CALIB, stratify=y_rest, random_state=seed
    )
    return {"train": (x_train, y_train), "calib": (x_calib, y_calib), "test": (x_test, y_test)}


def build_model():
    """Conv -> pool -> conv -> dense -> softmax: only ops tinyedge's code generator supports."""
    import tensorflow as tf  # noqa: PLC0415

    keras = tf.keras
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1), name="image"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
            keras.layers.Softmax(),
        ],
        name="digits",
    )


def train(out_dir: str | Path, *, epochs: int = EPOCHS, verbose: int = 0) -> dict[str, Path]:
    """Train the model and write it and the three data splits into ``out_dir``.

    Returns ``{"model", "train", "calib", "test", "metrics"}`` -> paths.
    """
    # Seeds alone are not enough: some TF kernels pick non-deterministic algorithms.
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import tensorflow as tf  # noqa: PLC0415

    tf.keras.utils.set_random_seed(SEED)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # noqa: BLE001 - older TF or already initialised; determinism is best effort
        pass

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = load_splits()
    paths: dict[str, Path] = {}
    for name, (x, y) in splits.items():
        paths[name] = out / f"{name}.npz"
        np.savez(paths[name], x=x, y=y)

    x_train, y_train = splits["train"]
    x_test, y_test = splits["test"]
    model = build_model()
    model.compile(
        optimizer=tf.keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, shuffle=True, verbose=verbose)
    _, test_acc = model.evaluate(x_test, y_test, verbose=0)

    paths["model"] = out / "digits.keras"
    model.save(paths["model"])
    paths["metrics"] = out / "metrics.json"
    paths["metrics"].write_text(
        json.dumps({"float_test_accuracy": float(test_acc), "test_samples": int(len(y_test))}, indent=2) + "\n"
    )
    return paths


_FILES = {"model": "digits.keras", "train": "train.npz", "calib": "calib.npz", "test": "test.npz",
          "metrics": "metrics.json"}


def cached_train(cache_root: str | Path) -> dict[str, Path]:
    """``train()`` into ``cache_root/<key>`` unless already there; the key hashes this script and
    the TensorFlow version, so editing the recipe retrains. Safe when several processes race:
    each trains into a private folder and the first rename wins."""
    import tensorflow as tf  # noqa: PLC0415

    key = hashlib.sha256(Path(__file__).read_bytes() + tf.__version__.encode()).hexdigest()[:16]
    root = Path(cache_root)
    final = root / f"digits-{key}"
    paths = {k: final / name for k, name in _FILES.items()}
    if all(p.is_file() for p in paths.values()):
        return paths
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".digits-"))
    try:
        train(tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first (or a stale partial folder is in the way)
            if not all(p.is_file() for p in paths.values()):
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()
    paths = train(args.out, epochs=args.epochs, verbose=2)
    metrics = json.loads(paths["metrics"].read_text())
    print(f"float test accuracy: {metrics['float_test_accuracy']:.4f} on {metrics['test_samples']} samples")
    for key, path in paths.items():
        print(f"{key}: {path}")


if __name__ == "__main__":
    main()

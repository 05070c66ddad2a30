"""Class names for a dashboard: a labels file, or the labels packed into a ``.tflite``'s metadata."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from ..errors import DataError


def load_labels(path: str | Path) -> list[str]:
    """Class names from ``path``: a JSON list, or text with one name per line (blank lines skipped).

    A line may be ``index name`` or ``index: name`` (as some labels files are); the index is dropped.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read labels file {path}: {exc}",
                        "pass a text file with one class name per line, or a JSON list of names") from None
    return parse_labels(text, str(path))


def parse_labels(text: str, where: str = "labels") -> list[str]:
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            names = json.loads(stripped)
        except ValueError as exc:
            raise DataError(f"{where} is not valid JSON: {exc}",
                            "write a JSON list of strings, or one name a line") from None
        if not isinstance(names, list) or not all(isinstance(n, (str, int)) for n in names):
            raise DataError(f"{where} is not a JSON list of names", "write a JSON list of strings, or one name a line")
        return [str(n) for n in names]
    names = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        head, sep, rest = line.replace(":", " ", 1).partition(" ")
        names.append(rest.strip() if sep and head.isdigit() and rest.strip() else line)
    return names


def model_labels(model: str | Path | bytes) -> list[str]:
    """Class names stored in a ``.tflite``, or ``[]`` when it has none.

    Two places are looked at: a flatbuffer metadata entry named ``labels`` (newline-separated names),
    and the zip archive the TFLite metadata writer appends to a model for its associated files (the
    first ``*label*.txt`` in it).
    """
    buf = model if isinstance(model, bytes) else Path(model).read_bytes()
    names = _metadata_entry(buf, "labels")
    if names is not None:
        return parse_labels(names)
    try:
        with zipfile.ZipFile(io.BytesIO(buf)) as zf:
            for name in zf.namelist():
                if "label" in name.lower() and name.lower().endswith(".txt"):
                    return parse_labels(zf.read(name).decode("utf-8", "replace"))
    except (zipfile.BadZipFile, OSError, ValueError):
        pass
    return []


def _metadata_entry(buf: bytes, wanted: str) -> str | None:
    try:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema  # noqa: PLC0415

        model = schema.Model.GetRootAs(buf, 0)
        for i in range(model.MetadataLength()):
            meta = model.Metadata(i)
            name = meta.Name()
            if name is not None and name.decode("utf-8", "replace") == wanted:
                data = model.Buffers(meta.Buffer()).DataAsNumpy()
                if isinstance(data, int):  # flatbuffers gives 0 for an empty vector
                    return ""
                return bytes(data).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - class names are a nicety; an odd file just has none
        return None
    return None

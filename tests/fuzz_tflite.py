"""A seeded mutator of ``.tflite`` files and the harness that feeds the mutants to ``inspect`` and ``generate``.

Used by ``tests/test_fuzz.py`` and by the long-run command ``python -m benchmarks --fuzz N`` (which imports
this module from tests/): the fuzz logic lives here only.

Mutant ``i`` of a model under seed ``S`` depends only on (model bytes, S, i), so any finding is reproduced
with ``Mutator(model_bytes).mutant(S, i)``. Two families of mutation:

* raw bytes: bit flips, overwrites with interesting 8/16/32-bit and float values, truncation, insertion,
  deletion, duplication — aimed mostly at the flatbuffer's tables and vectors rather than at the weights;
* structure-aware edits of the flatbuffer through the schema's object API (``ModelT``), re-serialized with
  ``flatbuffers.Builder``: shapes, types, scales (0, negative, inf, nan, tiny), zero points, quantized
  dimension, buffer / tensor / opcode indices (out of range, negative), builtin codes, names (invalid
  UTF-8), options, operator order, buffer contents, graph inputs and outputs.

Each mutant is classified (:func:`check_mutant`): ``refused`` (a ``TinyedgeError``: good), ``accepted``,
``raw`` (any other exception: a bug), and, from the process that ran it, ``death`` (the process died) or
``hang``. Mutants run in a child process (:func:`run_fuzz`) so a crash kills only the child; the child is
restarted after the mutant it died on. For a sample of accepted mutants, the generated C compiled for the
host (the project exactly as ``generate`` wrote it, and the portable program) is compared bit for bit with
the tflite_micro interpreter, which also runs in a child process.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S

from tinyedge.analysis import analyze
from tinyedge.boards import get_board
from tinyedge.codegen.cmodel import render_model
from tinyedge.codegen.host import build_host, run_host
from tinyedge.errors import TinyedgeError
from tinyedge.firmware.generate import generate_project, project_sources
from tinyedge.model.graph import read_model_bytes
from tinyedge.model.program import build_program

#: The board mutants are generated for: Cortex-M4 with DSP, so the target pass runs too.
FUZZ_BOARD = "qemu-mps2-an386"

INTERESTING_INTS = (0, 1, -1, 2, -2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 100, 127, -128, 128, -129, 255, 256,
                    1000, 4095, 32767, -32768, 65535, 65536, 1 << 20, 1 << 24, (1 << 31) - 1, -(1 << 31))
INTERESTING_FLOATS = (0.0, -0.0, -1.0, 1.0, float("inf"), float("-inf"), float("nan"), 1e-45, 1e-38, 1e-30,
                      1e-10, 1e-6, 1e10, 1e30, 3.4e38, -3.4e38, 0.5, 2.0)
INT32_RANGE = (-(1 << 31), (1 << 31) - 1)
UINT32_MAX = (1 << 32) - 1
BAD_NAMES = (b"\xff\xfe\xfd", b"\xc3", b"ab\x80cd", b"\xed\xa0\x80", b"", b"x" * 5000, b"a\x00b", b"\xe2\x82")


def _enum_values(cls: type) -> list[int]:
    return sorted(v for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int))


OPERATORS = _enum_values(S.BuiltinOperator)
TENSOR_TYPES = _enum_values(S.TensorType)
OPTION_TYPES = _enum_values(S.BuiltinOptions)


@dataclass(frozen=True)
class Mutant:
    """One mutated model: its bytes, the mutation family (``raw``/``struct``) and what was done."""

    index: int
    data: bytes
    kind: str
    desc: str


def pack(model: Any) -> bytes:
    """Serialize a ``ModelT`` the way ``tests/tflite_builder.py`` does."""
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _data_ranges(buf: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the buffers' data vectors (the weights): raw mutations mostly avoid them."""
    root = S.Model.GetRootAs(buf, 0)
    ranges = []
    for i in range(root.BuffersLength()):
        b = root.Buffers(i)
        o = b._tab.Offset(4)  # Buffer.data
        if o:
            start = b._tab.Vector(o)
            n = b._tab.VectorLen(o)
            if n > 64:
                ranges.append((start, start + n))
    return sorted(ranges)


class Mutator:
    """Deterministic mutants of one model: ``mutant(seed, i)`` depends only on the model, ``seed`` and ``i``."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.model = S.ModelT.InitFromObj(S.Model.GetRootAs(self.data, 0))
        mask = np.ones(len(self.data), dtype=bool)
        for a, b in _data_ranges(self.data):
            mask[a:b] = False
        self.structural = np.flatnonzero(mask)  # offsets outside the weights

    def mutant(self, seed: int, index: int) -> Mutant:
        rng = np.random.default_rng([seed, index, zlib.crc32(self.data[:4096])])
        if rng.random() < 0.35:
            data, desc = self._raw(rng)
            return Mutant(index, data, "raw", desc)
        for _ in range(20):  # a few edits cannot be serialized (a value too wide for its field): draw again
            m = copy.deepcopy(self.model)
            descs = [_structural(m, rng) for _ in range(1 if rng.random() < 0.75 else int(rng.integers(2, 4)))]
            try:
                return Mutant(index, pack(m), "struct", "; ".join(descs))
            except (struct.error, OverflowError, TypeError, ValueError, AttributeError):
                continue
        data, desc = self._raw(rng)
        return Mutant(index, data, "raw", desc)

    # ------------------------------------------------------------------------------------ raw bytes
    def _offset(self, rng: np.random.Generator, n: int) -> int:
        if rng.random() < 0.75 and len(self.structural):
            return int(self.structural[rng.integers(len(self.structural))]) % max(n, 1)
        return int(rng.integers(max(n, 1)))

    def _raw(self, rng: np.random.Generator) -> tuple[bytes, str]:
        buf = bytearray(self.data)
        n = len(buf)
        what = rng.integers(9)
        if what == 0:
            k = int(rng.integers(1, 9))
            offs = [self._offset(rng, n) for _ in range(k)]
            for o in offs:
                buf[o] ^= 1 << int(rng.integers(8))
            return bytes(buf), f"flip {k} bits at {offs[:4]}"
        if what == 1:
            o = self._offset(rng, n) & ~3
            v = int(rng.choice(INTERESTING_INTS))
            buf[o:o + 4] = struct.pack("<i", v)
            return bytes(buf), f"int32 {v} at {o}"
        if what == 2:
            o = self._offset(rng, n) & ~3
            f = float(rng.choice(INTERESTING_FLOATS))
            buf[o:o + 4] = struct.pack("<f", f)
            return bytes(buf), f"float32 {f} at {o}"
        if what == 3:
            o = self._offset(rng, n)
            v = int(rng.choice((0, 1, 0x7F, 0x80, 0xFF)))
            buf[o] = v
            if rng.random() < 0.5 and o + 1 < n:
                buf[o + 1] = v
            return bytes(buf), f"byte {v} at {o}"
        if what == 4:
            cut = int(rng.choice([int(rng.integers(0, 16)), int(rng.integers(n)), n - int(rng.integers(1, 64))]))
            return bytes(buf[:max(cut, 0)]), f"truncate to {max(cut, 0)}"
        if what == 5:
            o = self._offset(rng, n)
            k = int(rng.choice((1, 2, 4, 8, 64)))
            return bytes(buf[:o] + rng.bytes(k) + buf[o:]), f"insert {k} bytes at {o}"
        if what == 6:
            o = self._offset(rng, n)
            k = int(rng.choice((1, 2, 4, 8, 64)))
            return bytes(buf[:o] + buf[o + k:]), f"delete {k} bytes at {o}"
        if what == 7:
            o, src = self._offset(rng, n), self._offset(rng, n)
            k = int(rng.choice((4, 8, 16, 64)))
            buf[o:o + k] = self.data[src:src + k]
            return bytes(buf[:n]), f"copy {k} bytes from {src} to {o}"
        o = self._offset(rng, n)
        k = int(rng.integers(1, 9))
        buf[o:o + k] = rng.bytes(k)
        return bytes(buf[:n]), f"random {k} bytes at {o}"


# ---------------------------------------------------------------------------------- structural edits
def _pick(rng: np.random.Generator, seq: Sequence[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _int_value(rng: np.random.Generator, valid: int) -> int:
    """An index/size value: out of range, negative, extreme, or another valid one."""
    choices = [-1, -2, -100, valid, valid + 1, valid + 1000, (1 << 31) - 1, -(1 << 31),
               int(rng.integers(max(valid, 1)))]
    return int(_pick(rng, choices))


def _tensor(m: Any, rng: np.random.Generator) -> tuple[int, Any]:
    tensors = m.subgraphs[0].tensors
    i = int(rng.integers(len(tensors)))
    return i, tensors[i]


def _mut_shape(m: Any, rng: np.random.Generator) -> str:
    i, t = _tensor(m, rng)
    shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    what = rng.integers(6)
    if what == 0 and shape:
        d = int(rng.integers(len(shape)))
        shape[d] = int(_pick(rng, INTERESTING_INTS))
    elif what == 1 and shape:
        d = int(rng.integers(len(shape)))
        shape[d] += int(_pick(rng, (-1, 1, 2)))
    elif what == 2 and shape:
        del shape[int(rng.integers(len(shape)))]
    elif what == 3:
        shape.insert(int(rng.integers(len(shape) + 1)), int(_pick(rng, (1, 2, 3, 0))))
    elif what == 4:
        shape = []
    else:
        shape = [int(d) for d in rng.permutation(shape)] if shape else [1] * int(rng.integers(1, 9))
    t.shape = shape
    return f"tensor {i} shape -> {shape[:8]}"


def _mut_type(m: Any, rng: np.random.Generator) -> str:
    i, t = _tensor(m, rng)
    t.type = int(_pick(rng, TENSOR_TYPES + [-1, 60, 127]))
    return f"tensor {i} type -> {t.type}"


def _mut_buffer(m: Any, rng: np.random.Generator) -> str:
    i, t = _tensor(m, rng)
    n = len(m.buffers)
    t.buffer = int(_pick(rng, [n, n + 1, UINT32_MAX, 0, int(rng.integers(n)), (1 << 31)]))
    return f"tensor {i} buffer -> {t.buffer}"


def _mut_name(m: Any, rng: np.random.Generator) -> str:
    what = rng.integers(4)
    name = _pick(rng, BAD_NAMES)
    if what == 0:
        m.description = name
        return f"description -> {name[:16]!r}"
    if what == 1:
        m.subgraphs[0].name = name
        return f"subgraph name -> {name[:16]!r}"
    i, t = _tensor(m, rng)
    t.name = name
    return f"tensor {i} name -> {name[:16]!r}"


def _quant(t: Any) -> Any:
    if t.quantization is None:
        t.quantization = S.QuantizationParametersT()
    return t.quantization


def _mut_scale(m: Any, rng: np.random.Generator) -> str:
    i, t = _tensor(m, rng)
    q = _quant(t)
    scale = [float(s) for s in (q.scale if q.scale is not None else [])]
    what = rng.integers(4)
    if what == 0 and scale:
        k = int(rng.integers(len(scale)))
        scale[k] = float(_pick(rng, INTERESTING_FLOATS)) if rng.random() < 0.8 else -scale[k]
    elif what == 1 and scale:
        scale = scale[:-1]
    elif what == 2:
        scale = scale + [float(_pick(rng, INTERESTING_FLOATS[:12]))]
    else:
        scale = [float(_pick(rng, INTERESTING_FLOATS))] * int(rng.integers(1, 4))
    q.scale = scale
    return f"tensor {i} scale -> {scale[:4]}{'...' if len(scale) > 4 else ''} ({len(scale)})"


def _mut_zero_point(m: Any, rng: np.random.Generator) -> str:
    i, t = _tensor(m, rng)
    q = _quant(t)
    zp = [int(z) for z in (q.zeroPoint if q.zeroPoint is not None else [])]
    what = rng.integers(3)
    if what == 0 and zp:
        zp[int(rng.integers(len(zp)))] = int(_pick(rng, (128, -129, 255, 256, -1000, 1 << 31, -(1 << 31) - 1,
                                                           1 << 62, -(1 << 63), 127, -128)))
    elif what == 1:
        zp = zp[:-1] if zp else [5, 6]
    else:
        zp = zp + [int(_pick(rng, (0, 1, -128, 300)))]
    q.zeroPoint = zp
    return f"tensor {i} zero point -> {zp[:4]} ({len(zp)})"


def _mut_quant_dim(m: Any, rng: np.random.Generator) -> str:
    i, t = _tensor(m, rng)
    q = _quant(t)
    q.quantizedDimension = int(_pick(rng, (-1, 1, 2, 3, 4, 5, 100, (1 << 31) - 1, -(1 << 31))))
    return f"tensor {i} quantized dimension -> {q.quantizedDimension}"


def _mut_quant_remove(m: Any, rng: np.random.Generator) -> str:
    i, t = _tensor(m, rng)
    what = rng.integers(3)
    if what == 0:
        t.quantization = None
        return f"tensor {i} quantization removed"
    q = _quant(t)
    if what == 1:
        q.scale = None
        return f"tensor {i} scale removed"
    q.zeroPoint = None
    return f"tensor {i} zero point removed"


def _op(m: Any, rng: np.random.Generator) -> tuple[int, Any]:
    ops = m.subgraphs[0].operators
    k = int(rng.integers(len(ops)))
    return k, ops[k]


def _mut_op_tensors(m: Any, rng: np.random.Generator) -> str:
    if not m.subgraphs[0].operators:
        return "no op"
    k, op = _op(m, rng)
    side = "inputs" if rng.random() < 0.6 else "outputs"
    idx = [int(x) for x in (getattr(op, side) if getattr(op, side) is not None else [])]
    n = len(m.subgraphs[0].tensors)
    what = rng.integers(5)
    if what <= 2 and idx:
        s = int(rng.integers(len(idx)))
        idx[s] = _int_value(rng, n)
    elif what == 3 and idx:
        del idx[int(rng.integers(len(idx)))]
    else:
        idx = idx + [_int_value(rng, n)] if rng.random() < 0.7 else []
    setattr(op, side, idx)
    return f"op {k} {side} -> {idx}"


def _mut_graph_io(m: Any, rng: np.random.Generator) -> str:
    sg = m.subgraphs[0]
    side = "inputs" if rng.random() < 0.5 else "outputs"
    idx = [int(x) for x in (getattr(sg, side) if getattr(sg, side) is not None else [])]
    n = len(sg.tensors)
    what = rng.integers(4)
    if what <= 1 and idx:
        idx[0] = _int_value(rng, n)
    elif what == 2:
        idx = []
    else:
        idx = idx + [int(_pick(rng, (idx[0] if idx else 0, int(rng.integers(n)), n)))]
    setattr(sg, side, idx)
    return f"subgraph {side} -> {idx}"


def _mut_opcode_index(m: Any, rng: np.random.Generator) -> str:
    if not m.subgraphs[0].operators:
        return "no op"
    k, op = _op(m, rng)
    n = len(m.operatorCodes)
    op.opcodeIndex = int(_pick(rng, (n, n + 1, UINT32_MAX, 1 << 31, int(rng.integers(n)))))
    return f"op {k} opcode index -> {op.opcodeIndex}"


def _mut_builtin_code(m: Any, rng: np.random.Generator) -> str:
    k = int(rng.integers(len(m.operatorCodes)))
    oc = m.operatorCodes[k]
    what = rng.integers(5)
    if what <= 1:
        oc.builtinCode = int(_pick(rng, OPERATORS + [-1, 500, (1 << 31) - 1]))
        return f"opcode {k} builtin code -> {oc.builtinCode}"
    if what == 2:
        oc.deprecatedBuiltinCode = int(_pick(rng, (-1, 0, 32, 127, -128, int(_pick(rng, OPERATORS)) % 128)))
        return f"opcode {k} deprecated builtin code -> {oc.deprecatedBuiltinCode}"
    if what == 3:
        oc.builtinCode = S.BuiltinOperator.CUSTOM
        oc.deprecatedBuiltinCode = S.BuiltinOperator.CUSTOM
        oc.customCode = _pick(rng, BAD_NAMES + (b"TFLite_Detection_PostProcess", None))
        return f"opcode {k} custom {oc.customCode!r:.20}"
    oc.version = int(_pick(rng, (0, -1, 2, 100, (1 << 31) - 1)))
    return f"opcode {k} version -> {oc.version}"


def _mut_options(m: Any, rng: np.random.Generator) -> str:
    if not m.subgraphs[0].operators:
        return "no op"
    k, op = _op(m, rng)
    opts = op.builtinOptions
    what = rng.integers(5)
    if what <= 2 and opts is not None and vars(opts):
        name = _pick(rng, sorted(vars(opts)))
        old = getattr(opts, name)
        if isinstance(old, bool):
            new: Any = not old
        elif isinstance(old, float):
            new = float(_pick(rng, INTERESTING_FLOATS))
        elif isinstance(old, int):
            new = int(_pick(rng, (-1, 0, 2, 3, 4, 5, 7, 100, -128, 127, 1 << 20, (1 << 31) - 1)))
        else:
            return f"op {k} option {name} kept"
        setattr(opts, name, new)
        return f"op {k} option {name} -> {new}"
    if what == 3:
        op.builtinOptionsType = int(_pick(rng, OPTION_TYPES))
        return f"op {k} options type -> {op.builtinOptionsType}"
    op.builtinOptions = None
    return f"op {k} options removed"


def _mut_op_order(m: Any, rng: np.random.Generator) -> str:
    ops = m.subgraphs[0].operators
    n = len(ops)
    what = rng.integers(6)
    if n >= 2 and what == 0:
        a, b = (int(x) for x in rng.choice(n, 2, replace=False))
        ops[a], ops[b] = ops[b], ops[a]
        return f"swap ops {a} and {b}"
    if n >= 2 and what == 1:
        ops.reverse()
        return "reverse op order"
    if n and what == 2:
        k = int(rng.integers(n))
        del ops[k]
        return f"delete op {k}"
    if n and what == 3:
        k = int(rng.integers(n))
        ops.insert(int(rng.integers(n + 1)), copy.deepcopy(ops[k]))
        return f"duplicate op {k}"
    if what == 4:
        m.subgraphs[0].operators = []
        return "delete every op"
    order = [int(x) for x in rng.permutation(n)]
    m.subgraphs[0].operators = [ops[i] for i in order]
    return f"shuffle ops {order}"


def _mut_buffer_data(m: Any, rng: np.random.Generator) -> str:
    with_data = [i for i, b in enumerate(m.buffers) if b.data is not None and len(b.data)]
    if not with_data:
        return "no buffer data"
    k = int(_pick(rng, with_data))
    data = np.asarray(m.buffers[k].data, dtype=np.uint8)
    what = rng.integers(5)
    if what == 0:
        m.buffers[k].data = data[:int(rng.integers(len(data)))].copy()
    elif what == 1:
        m.buffers[k].data = np.concatenate([data, np.zeros(int(_pick(rng, (1, 3, 4, 64))), np.uint8)])
    elif what == 2:
        m.buffers[k].data = None
    elif what == 3:
        j = int(_pick(rng, with_data))
        m.buffers[k].data, m.buffers[j].data = m.buffers[j].data, m.buffers[k].data
        return f"swap buffers {k} and {j}"
    else:
        fill = int(_pick(rng, (0, 0x7F, 0x80, 0xFF)))
        m.buffers[k].data = np.full(len(data), fill, dtype=np.uint8)
        return f"buffer {k} filled with {fill}"
    n = None if m.buffers[k].data is None else len(m.buffers[k].data)
    return f"buffer {k} data length {len(data)} -> {n}"


def _mut_tensor_list(m: Any, rng: np.random.Generator) -> str:
    sg = m.subgraphs[0]
    what = rng.integers(3)
    if what == 0:
        k = int(rng.integers(1, 4))
        sg.tensors = sg.tensors[:-k]
        return f"drop the last {k} tensors"
    if what == 1:
        i, t = _tensor(m, rng)
        sg.tensors.append(copy.deepcopy(t))
        return f"append a copy of tensor {i}"
    n = len(m.buffers)
    m.buffers = m.buffers[:int(rng.integers(n))]
    return f"buffers cut to {len(m.buffers)}"


def _mut_signature(m: Any, rng: np.random.Generator) -> str:
    i, t = _tensor(m, rng)
    t.shapeSignature = [int(_pick(rng, (-1, 0, 1, 5, 1 << 20))) for _ in range(int(rng.integers(0, 5)))]
    return f"tensor {i} shape signature -> {t.shapeSignature}"


def _mut_model(m: Any, rng: np.random.Generator) -> str:
    what = rng.integers(4)
    if what == 0:
        m.subgraphs = []
        return "no subgraph"
    if what == 1:
        m.subgraphs.append(copy.deepcopy(m.subgraphs[0]))
        return "two subgraphs"
    if what == 2:
        m.operatorCodes = []
        return "no operator codes"
    m.version = int(_pick(rng, (0, 1, 2, 4, UINT32_MAX)))
    return f"model version -> {m.version}"


#: (weight, edit): the structure-aware edits and how often each is drawn.
EDITS: tuple[tuple[int, Callable[[Any, np.random.Generator], str]], ...] = (
    (4, _mut_shape), (2, _mut_type), (2, _mut_buffer), (2, _mut_name), (4, _mut_scale), (3, _mut_zero_point),
    (2, _mut_quant_dim), (2, _mut_quant_remove), (4, _mut_op_tensors), (2, _mut_graph_io), (2, _mut_opcode_index),
    (2, _mut_builtin_code), (4, _mut_options), (2, _mut_op_order), (3, _mut_buffer_data), (1, _mut_tensor_list),
    (1, _mut_signature), (1, _mut_model),
)
_EDIT_P = np.array([w for w, _ in EDITS], dtype=float) / sum(w for w, _ in EDITS)


def _structural(m: Any, rng: np.random.Generator) -> str:
    if not m.subgraphs:
        return "no subgraph left"
    if not m.subgraphs[0].tensors:
        return "no tensor left"
    edit = EDITS[int(rng.choice(len(EDITS), p=_EDIT_P))][1]
    try:
        return edit(m, rng)
    except (ValueError, IndexError, TypeError, AttributeError):  # an earlier edit emptied what this one edits
        return f"{edit.__name__[5:]} skipped"


# ------------------------------------------------------------------------------------ classification
@dataclass
class Outcome:
    """What tinyedge did with one mutant. ``status``: refused | accepted | raw | death | hang."""

    model: str
    index: int
    kind: str
    desc: str
    status: str
    stage: str = ""  # read | inspect | generate (raw/refused: where)
    detail: str = ""  # the error message, exception type or signal
    where: str = ""  # innermost tinyedge frame of a raw exception


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if f"{os.sep}tinyedge{os.sep}" in f.filename]
    f = (mine or frames or [None])[-1]
    if f is None:
        return "?"
    rel = f.filename[f.filename.rfind(f"tinyedge{os.sep}"):] if mine else f.filename
    return f"{rel}:{f.lineno} in {f.name}"


def check_mutant(data: bytes, name: str, board: Any, *, tflm_arena: bool = False,
                 write_dir: Path | None = None) -> tuple[str, str, str, str]:
    """(status, stage, detail, where) of one model through ``read``, ``inspect`` (analyze) and ``generate``.

    ``generate`` is :func:`tinyedge.firmware.generate.project_sources` (in memory) or, with ``write_dir``,
    ``generate_project`` into a fresh folder under it. ``tflm_arena``: include inspect's TFLM arena figure.
    """
    try:
        graph = read_model_bytes(data, name=name)
    except TinyedgeError as exc:
        return "refused", "read", str(exc)[:300], ""
    except Exception as exc:
        return "raw", "read", f"{type(exc).__name__}: {str(exc)[:200]}", _where(exc)
    refused: tuple[str, str] | None = None
    stages: list[tuple[str, Callable[[], Any]]] = [("inspect", lambda: analyze(graph, [board], tflm=tflm_arena))]
    if write_dir is None:
        stages.append(("generate", lambda: project_sources(graph, board)))
    else:
        out = Path(tempfile.mkdtemp(prefix="m-", dir=write_dir)) / "proj"
        stages.append(("generate", lambda: generate_project(graph, board, out)))
    for stage, fn in stages:
        try:
            fn()
        except TinyedgeError as exc:
            refused = refused or (stage, str(exc)[:300])
        except Exception as exc:
            return "raw", stage, f"{type(exc).__name__}: {str(exc)[:200]}", _where(exc)
    if refused:
        return "refused", refused[0], refused[1], ""
    return "accepted", "", "", ""


# ------------------------------------------------------------------------------------ child processes
def _limit_memory(gib: int = 6) -> None:
    """A mutant asking for absurd memory gets MemoryError (a finding) instead of the OOM killer."""
    try:
        resource.setrlimit(resource.RLIMIT_AS, (gib << 30, gib << 30))
    except (ValueError, OSError):
        pass


def _quiet_fd2() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)


def _check_worker(conn: Connection, model: str, label: str, seed: int, indices: list[int], board_id: str,
                  tflm_arena: bool, write_dir: str | None) -> None:
    """Child: classify mutants ``indices`` in order, sending one Outcome per mutant."""
    _limit_memory()
    if tflm_arena:
        _quiet_fd2()
    warnings.simplefilter("ignore")  # numpy overflow warnings on absurd parameters: the outcome is what counts
    mut = Mutator(Path(model).read_bytes())
    board = get_board(board_id)
    for i in indices:
        m = mut.mutant(seed, i)
        status, stage, detail, where = check_mutant(m.data, label, board, tflm_arena=tflm_arena,
                                                    write_dir=Path(write_dir) if write_dir else None)
        conn.send(asdict(Outcome(label, i, m.kind, m.desc, status, stage, detail, where)))


def _tflm_worker(conn: Connection) -> None:
    """Child: run requests ``(index, model bytes, int8 inputs)`` through the tflite_micro interpreter."""
    from tflite_micro import runtime  # noqa: PLC0415  (the native interpreter: only in this child)

    _limit_memory()
    _quiet_fd2()
    while True:
        req = conn.recv()
        if req is None:
            return
        i, data, inputs = req
        try:
            interp = runtime.Interpreter.from_bytes(data, arena_size=4 << 20)
            shape = tuple(interp.get_input_details(0)["shape"])
            outs = []
            for row in inputs:
                interp.set_input(np.asarray(row, dtype=np.int8).reshape(shape), 0)
                interp.invoke()
                outs.append(np.array(interp.get_output(0)).reshape(-1).copy())
                interp.reset()
            conn.send((i, "ok", np.stack(outs)))
        except Exception as exc:  # TFLM refuses the model (or the input shape): not comparable
            conn.send((i, "error", f"{type(exc).__name__}: {str(exc)[:200]}"))


def _ctx() -> Any:
    # spawn: the parent may hold TensorFlow's threads; a fork would copy their locks
    return multiprocessing.get_context("spawn")


def _signal_name(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


def classify(model: Path, label: str, seed: int, indices: Sequence[int], *, board: str = FUZZ_BOARD,
             tflm_arena: bool = False, write_dir: Path | None = None, timeout: float = 120.0,
             say: Callable[[str], None] | None = None) -> list[Outcome]:
    """Classify mutants ``indices`` of ``model`` in a child process; a mutant that kills the child is a
    ``death``, one that takes longer than ``timeout`` seconds a ``hang``; the child restarts after it."""
    ctx = _ctx()
    pending = list(indices)
    results: list[Outcome] = []
    started = time.monotonic()
    last_report = started
    while pending:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_check_worker, daemon=True,
                           args=(child, str(model), label, seed, pending, board, tflm_arena,
                                 str(write_dir) if write_dir else None))
        proc.start()
        child.close()
        first = True
        while pending:
            if not parent.poll(timeout * (3 if first else 1)):
                proc.kill()
                proc.join()
                results.append(Outcome(label, pending[0], *_describe(model, seed, pending[0]), "hang",
                                       detail=f"no answer in {timeout:g} s"))
                pending.pop(0)
                break
            try:
                msg = parent.recv()
            except (EOFError, OSError):
                proc.join()
                results.append(Outcome(label, pending[0], *_describe(model, seed, pending[0]), "death",
                                       detail=_signal_name(proc.exitcode)))
                pending.pop(0)
                break
            first = False
            results.append(Outcome(**msg))
            pending.pop(0)
            if say and time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                say(f"  {label}: {len(results)}/{len(indices)} mutants, {time.monotonic() - started:.0f} s")
        parent.close()
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    return results


def _describe(model: Path, seed: int, index: int) -> tuple[str, str]:
    m = Mutator(Path(model).read_bytes()).mutant(seed, index)
    return m.kind, m.desc


class TflmRunner:
    """The tflite_micro interpreter in a child process: ``run(i, model, inputs)`` -> outputs, or an error
    string (``"crashed (SIGSEGV)"``, ``"timeout"``, the interpreter's own error). Restarts after a crash."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.proc: Any = None
        self.conn: Connection | None = None

    def _start(self) -> None:
        ctx = _ctx()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_tflm_worker, args=(child,), daemon=True)
        self.proc.start()
        child.close()

    def run(self, index: int, data: bytes, inputs: np.ndarray) -> np.ndarray | str:
        if self.proc is None or not self.proc.is_alive():
            self._start()
        assert self.conn is not None
        self.conn.send((index, data, inputs))
        if not self.conn.poll(self.timeout + 30):
            self.close(kill=True)
            return "timeout"
        try:
            _, status, value = self.conn.recv()
        except (EOFError, OSError):
            self.proc.join()
            why = _signal_name(self.proc.exitcode)
            self.close(kill=True)
            return f"crashed ({why})"
        return value if status == "ok" else str(value)

    def close(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if not kill and self.conn is not None:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        if self.conn is not None:
            self.conn.close()
        self.proc = self.conn = None


# ------------------------------------------------------------------------------------ bit-exactness
@dataclass
class ExactCheck:
    """One accepted mutant compared with TFLM. ``status``: exact | mismatch | tflm-refused | tflm-crashed |
    host-failed (the generated C did not build or run) | error (an exception) | skipped (not int8 in and out)."""

    model: str
    index: int
    desc: str
    status: str
    detail: str = ""


def exact_check(data: bytes, label: str, index: int, desc: str, seed: int, tflm: TflmRunner, *,
                board: str = FUZZ_BOARD, samples: int = 3) -> ExactCheck:
    """Compile the generated C for the host (the project ``generate`` writes for ``board``, whose DSP kernels
    fall back to their C models on the host, and the portable program) and compare with TFLM bit for bit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy overflow warnings on absurd parameters
        try:
            return _exact_check(data, label, index, desc, seed, tflm, board, samples)
        except Exception as exc:  # the child accepted it: in this process it must behave the same
            return ExactCheck(label, index, desc, "error", f"{type(exc).__name__}: {str(exc)[:200]} at {_where(exc)}")


def _exact_check(data: bytes, label: str, index: int, desc: str, seed: int, tflm: TflmRunner, board: str,
                 samples: int) -> ExactCheck:
    graph = read_model_bytes(data, name=label)
    x_t, y_t = graph.input, graph.output
    if x_t.dtype != "INT8" or y_t.dtype != "INT8":
        return ExactCheck(label, index, desc, "skipped", f"{x_t.dtype} -> {y_t.dtype}")
    rng = np.random.default_rng([seed, index, 7])
    x = rng.integers(-128, 128, size=(samples, x_t.size), dtype=np.int8)
    want = tflm.run(index, data, x)
    if isinstance(want, str):
        return ExactCheck(label, index, desc, "tflm-crashed" if want.startswith(("crashed", "timeout")) else
                          "tflm-refused", want)
    variants = {"generated": {k: v for k, v in project_sources(graph, get_board(board))[0].items()
                              if isinstance(v, str)},
                "portable": render_model(build_program(graph)).files}
    for name, files in variants.items():
        with tempfile.TemporaryDirectory(prefix="te-fuzz-host-") as d:
            try:
                got = run_host(build_host(files, d), x, y_t.size)
            except TinyedgeError as exc:
                return ExactCheck(label, index, desc, "host-failed", f"{name}: {exc}"[:300])
        if want.shape != got.shape or not np.array_equal(want.reshape(got.shape), got):
            diff = int(np.count_nonzero(want.reshape(-1) != got.reshape(-1))) if want.size == got.size else -1
            return ExactCheck(label, index, desc, "mismatch", f"{name}: {diff} of {got.size} outputs differ")
    return ExactCheck(label, index, desc, "exact")


def pick_sample(outcomes: Sequence[Outcome], limit: int | None, seed: int) -> list[Outcome]:
    """Up to ``limit`` accepted mutants (all with None), round-robin over the structural edit kinds first."""
    accepted = [o for o in outcomes if o.status == "accepted"]
    if limit is None or len(accepted) <= limit:
        return accepted
    rng = np.random.default_rng(seed)
    groups: dict[str, list[Outcome]] = {}
    for o in rng.permutation(len(accepted)):
        a = accepted[int(o)]
        key = a.desc.split(" ->")[0].split(" ")[0] if a.kind == "struct" else "raw"
        groups.setdefault(key, []).append(a)
    out: list[Outcome] = []
    while len(out) < limit:
        for g in list(groups.values()):
            if g and len(out) < limit:
                out.append(g.pop(0))
    return out


# ------------------------------------------------------------------------------------ one run
@dataclass
class FuzzReport:
    """Everything one fuzz run found."""

    seed: int
    outcomes: list[Outcome] = field(default_factory=list)
    checks: list[ExactCheck] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self, model: str | None = None) -> dict[str, int]:
        c = Counter(o.status for o in self.outcomes if model is None or o.model == model)
        return {k: c.get(k, 0) for k in ("refused", "accepted", "raw", "death", "hang")}

    def check_counts(self, model: str | None = None) -> dict[str, int]:
        c = Counter(x.status for x in self.checks if model is None or x.model == model)
        return dict(sorted(c.items()))

    @property
    def bad(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("raw", "death", "hang")]

    @property
    def mismatches(self) -> list[ExactCheck]:
        return [x for x in self.checks if x.status in ("mismatch", "host-failed", "error")]

    def summary(self) -> str:
        lines = []
        for model in sorted({o.model for o in self.outcomes}):
            n = sum(1 for o in self.outcomes if o.model == model)
            c = self.counts(model)
            lines.append(f"{model}: {n} mutants: " + ", ".join(f"{v} {k}" for k, v in c.items())
                         + "; bit-exact checks: "
                         + (", ".join(f"{v} {k}" for k, v in self.check_counts(model).items()) or "none"))
        groups: dict[tuple[str, str, str], list[Outcome]] = {}
        for o in self.bad:
            groups.setdefault((o.status, o.where or o.stage, o.detail.split(":")[0]), []).append(o)
        for (status, where, what), items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            ex = items[0]
            lines.append(f"  {len(items):5d} {status} {what} at {where}: e.g. {ex.model} #{ex.index} "
                         f"({ex.desc[:70]}): {ex.detail[:120]}")
        for x in self.mismatches:
            lines.append(f"  {x.status} {x.model} #{x.index} ({x.desc[:70]}): {x.detail[:120]}")
        lines.append(f"{len(self.outcomes)} mutants in {self.seconds:.0f} s")
        return "\n".join(lines)


def run_fuzz(models: Iterable[tuple[str, Path]], count: int, *, seed: int = 0, check_limit: int | None = 20,
             tflm_arena: bool = False, write_dir: Path | None = None, board: str = FUZZ_BOARD,
             say: Callable[[str], None] | None = None) -> FuzzReport:
    """Classify ``count`` mutants of each (label, path) and check a sample of the accepted ones against TFLM
    (``check_limit`` per model; None: every accepted mutant)."""
    t0 = time.monotonic()
    report = FuzzReport(seed)
    tflm = TflmRunner()
    try:
        for label, path in models:
            outcomes = classify(path, label, seed, range(count), board=board, tflm_arena=tflm_arena,
                                write_dir=write_dir, say=say)
            report.outcomes += outcomes
            if say:
                say(f"{label}: " + ", ".join(f"{v} {k}" for k, v in report.counts(label).items()))
            if check_limit == 0:
                continue
            mut = Mutator(path.read_bytes())
            sample = pick_sample(outcomes, check_limit, seed)
            for k, o in enumerate(sample):
                m = mut.mutant(seed, o.index)
                report.checks.append(exact_check(m.data, label, o.index, m.desc, seed, tflm, board=board))
                if say and (k + 1) % 25 == 0:
                    say(f"  {label}: {k + 1}/{len(sample)} bit-exact checks")
    finally:
        tflm.close()
    report.seconds = time.monotonic() - t0
    return report


def main_args(argv: Sequence[str] | None = None) -> int:
    """Reproduce one mutant: ``python tests/fuzz_tflite.py MODEL SEED INDEX [OUT.tflite]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    m = Mutator(Path(args[0]).read_bytes()).mutant(int(args[1]), int(args[2]))
    print(m.kind, m.desc)
    if len(args) > 3:
        Path(args[3]).write_bytes(m.data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main_args())

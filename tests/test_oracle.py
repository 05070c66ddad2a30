"""The TFLM oracle runs the interpreter in a worker process: a crash or a hang there is one OracleError,
never the death of tinyedge's process, and ``inspect`` still prints its own analysis."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import shared_model
from tinyedge import analysis, oracle
from tinyedge.cli import cli
from tinyedge.errors import OracleError
from tinyedge.model import load_model

pytestmark = pytest.mark.unit

#: A KWS mutant that makes the tflite_micro interpreter die with SIGSEGV (found by checking seeded 4-byte
#: mutations of kws_ref_model.tflite, each in a child process): seed 49 of
#: ``rng = np.random.default_rng(seed); offsets = rng.integers(0, len(model), 4); values = rng.integers(0, 256, 4)``.
#: tinyedge's validator refuses it (tensor 8's buffer index is out of range), so it reaches TFLM only here.
CRASH_SEED = 49
CRASH_OFFSETS = [2292, 19570, 45938, 31995]
CRASH_VALUES = [11, 100, 133, 159]


def crashing_kws() -> bytes:
    """The KWS model with the byte flips of CRASH_SEED, derived from the shared model at test time."""
    base = bytearray(shared_model("kws_ref_model.tflite").read_bytes())
    rng = np.random.default_rng(CRASH_SEED)
    offsets, values = rng.integers(0, len(base), size=4), rng.integers(0, 256, size=4)
    assert offsets.tolist() == CRASH_OFFSETS and values.tolist() == CRASH_VALUES
    for o, v in zip(CRASH_OFFSETS, CRASH_VALUES):
        base[o] = v
    return bytes(base)


def kws_inputs(n: int) -> tuple[bytes, np.ndarray]:
    g = load_model(shared_model("kws_ref_model.tflite"))
    x = np.random.default_rng(0).integers(-128, 128, size=(n, *g.input.shape)).astype(np.int8)
    return g.model_bytes, x


def test_run_tflm_in_the_worker_is_deterministic() -> None:
    model, x = kws_inputs(20)
    a = oracle.run_tflm(model, x)
    assert a.shape == (20, 12) and a.dtype == np.int8
    assert np.array_equal(a, oracle.run_tflm(model, x))
    assert np.array_equal(a[3:5], oracle.run_tflm(model, x[3:5]))


def test_a_crash_is_one_error_and_the_next_call_works() -> None:
    model, x = kws_inputs(3)
    with pytest.raises(OracleError) as info:
        oracle.run_tflm(crashing_kws(), x)
    assert info.value.kind == "crashed"
    assert str(info.value).startswith("the TFLM interpreter crashed on this model (SIGSEGV)")
    assert oracle.run_tflm(model, x).shape == (3, 12)  # a new worker replaced the dead one
    with pytest.raises(OracleError, match=r"crashed on this model \(SIGSEGV\)"):
        oracle.min_arena_bytes(crashing_kws())


def test_a_hung_interpreter_is_a_timeout() -> None:
    model, x = kws_inputs(2)
    oracle.run_tflm(model, x)  # a started worker
    assert oracle._worker is not None
    pid = oracle._worker.process.pid
    os.kill(pid, signal.SIGSTOP)  # frozen as a looping interpreter would be
    with pytest.raises(OracleError, match="did not answer within 0.5 s") as info:
        oracle.run_tflm(model, x, timeout=0.5)
    assert info.value.kind == "timeout"
    assert oracle._worker is None or oracle._worker.process.pid != pid
    assert oracle.run_tflm(model, x).shape == (2, 12)


def test_a_refused_model_is_one_error() -> None:
    with pytest.raises(OracleError, match="the TFLM interpreter refused this model") as info:
        oracle.run_tflm(b"\x10\x00\x00\x00TFL3" + bytes(64), np.zeros((1, 4), np.int8))
    assert info.value.kind == "refused"


def test_inspect_prints_its_analysis_when_tflm_crashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The validator refuses every crashing mutant found so far, so the crash is injected where inspect
    asks TFLM for its arena: the real interpreter, in the worker, on the crashing bytes."""
    path = shared_model("kws_ref_model.tflite")
    bad = crashing_kws()
    monkeypatch.setattr(analysis, "min_arena_bytes", lambda model: oracle.min_arena_bytes(bad))
    r = CliRunner().invoke(cli, ["inspect", str(path)])
    assert r.exit_code == 0, r.output
    assert "CONV_2D" in r.output and "total" in r.output  # tinyedge's own table
    assert "TFLM minimum arena: unavailable" in r.output
    crash_lines = [line for line in r.output.splitlines() if "crashed on this model (SIGSEGV)" in line]
    assert crash_lines == ["TFLM minimum arena unavailable: the TFLM interpreter crashed on this model (SIGSEGV)"]


def test_inspect_json_says_why_the_tflm_arena_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    path = shared_model("kws_ref_model.tflite")
    bad = crashing_kws()
    monkeypatch.setattr(analysis, "min_arena_bytes", lambda model: oracle.min_arena_bytes(bad))
    a = analysis.analyze(load_model(path))
    assert a.tflm_arena_bytes is None and "SIGSEGV" in a.tflm_error
    assert a.layers and a.ram_bytes > 0

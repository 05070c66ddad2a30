"""The golden reference: TensorFlow Lite Micro's own interpreter (``tflite_micro`` on PyPI).

Never ``tf.lite.Interpreter``: it requantizes FULLY_CONNECTED differently by one LSB.

The interpreter is native code that can crash (SIGSEGV, SIGABRT) or loop on a malformed model, so it never
runs in tinyedge's process. A worker process (``python -m tinyedge.oracle``, started through
``tinyedge.proc`` on first use, ~1 s once: it imports numpy and tflite_micro) runs each call: one batch of
inputs, or one whole arena bisection. A worker that dies is replaced on the next call; a crash or a
worker that stops answering becomes one :class:`~tinyedge.errors.OracleError`. The worker sends one
message per inference, so the timeout bounds the time without progress, whatever the batch size.

(Not ``multiprocessing``: its ``spawn``/``forkserver`` children re-import the caller's ``__main__``, which
breaks scripts without a ``__main__`` guard and costs a second per call under some launchers.)
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from . import proc
from .errors import OracleError

#: Seconds the worker may go without a result (one interpreter set-up plus one inference, or one bisection
#: probe) before it is killed. KWS takes ~6 ms per inference on the host: 60 s only catches a hung TFLM.
STALL_TIMEOUT = 60.0
#: Seconds the worker may take to start (importing numpy and tflite_micro), on top of the stall timeout.
START_TIMEOUT = 60.0
_HINT_CRASH = ("the model is probably malformed for TFLM (tinyedge's own checks passed it); re-export it with "
               "the TFLite converter, or report it with the model attached")
_HEADER = struct.Struct("<Q")


def interpreter(model: bytes, arena_size: int) -> Any:  # tflite_micro ships no type information
    """The tflite_micro interpreter IN THIS PROCESS: only for a model already validated and known to run (the
    benchmark times it); everything else goes through :func:`run_tflm`, whose worker a crash cannot take down."""
    from tflite_micro import runtime  # noqa: PLC0415  (loads the interpreter's native library: on first use)

    return runtime.Interpreter.from_bytes(model, arena_size=arena_size)


# ------------------------------------------------------------------ what runs in the worker process

def _rows(model: bytes, inputs: np.ndarray, arena_size: int) -> Iterator[np.ndarray]:
    """Output 0 of each row of ``inputs``, one at a time."""
    interp = interpreter(model, arena_size)
    shape = tuple(interp.get_input_details(0)["shape"])
    dtype = interp.get_input_details(0)["dtype"]
    for row in inputs:
        interp.set_input(np.asarray(row, dtype=dtype).reshape(shape), 0)
        interp.invoke()
        yield np.array(interp.get_output(0)).reshape(-1).copy()
        interp.reset()


def _allocates(model: bytes, arena_size: int) -> bool:
    try:
        interp = interpreter(model, arena_size)
        shape = tuple(interp.get_input_details(0)["shape"])
        interp.set_input(np.zeros(shape, dtype=interp.get_input_details(0)["dtype"]), 0)
        interp.invoke()
        return True
    except Exception:  # the runtime raises RuntimeError (or ValueError) when the arena is too small
        return False


def _bisect(model: bytes, hi: int, step: int) -> Iterator[int]:
    """Each bisection probe (as progress), then the answer as the last item."""
    if not _allocates(model, hi):
        raise RuntimeError(f"TFLM cannot run this model even with a {hi}-byte arena")
    lo = 0
    while hi - lo > step:
        mid = (lo + hi) // 2
        if _allocates(model, mid):
            hi = mid
        else:
            lo = mid
        yield mid
    yield hi


_TASKS: dict[str, Callable[..., Iterator[Any]]] = {"rows": _rows, "bisect": _bisect}


def _write_frame(fd: int, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(f: IO[bytes], n: int) -> bytes | None:
    data = f.read(n)
    return data if data is not None and len(data) == n else None


def serve() -> None:
    """The worker's loop: read (task, args) requests from stdin, answer framed pickles on the original stdout.

    Stdout is moved aside first, so anything TFLM or Python prints cannot corrupt the answers.
    """
    out = os.dup(1)
    os.dup2(2, 1)
    from tflite_micro import runtime  # noqa: F401, PLC0415  (import the native library before the first call)

    stdin = sys.stdin.buffer
    while True:
        head = _read_exact(stdin, _HEADER.size)
        if head is None:
            return  # the parent went away
        body = _read_exact(stdin, _HEADER.unpack(head)[0])
        if body is None:
            return
        task, args = pickle.loads(body)
        try:
            for item in _TASKS[task](*args):
                _write_frame(out, ("item", item))
            _write_frame(out, ("done", None))
        except Exception as exc:  # reported to the parent as one OracleError
            _write_frame(out, ("error", f"{type(exc).__name__}: {exc}"))


# ------------------------------------------------------------------ the parent side

class _Worker:
    """One running ``python -m tinyedge.oracle`` and the file collecting its stderr."""

    def __init__(self) -> None:
        self.stderr: IO[bytes] = tempfile.TemporaryFile(mode="a+b", prefix="tinyedge-tflm-")  # noqa: SIM115
        env = dict(os.environ)
        # The worker imports the same tinyedge as this process, even when it is not installed.
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        self.process = proc.popen([sys.executable, "-m", "tinyedge.oracle"], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.stderr, start_new_session=True)
        self.buffer = b""
        self.started = False

    def send(self, obj: object) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        assert self.process.stdin is not None
        self.process.stdin.write(_HEADER.pack(len(data)) + data)
        self.process.stdin.flush()

    def _fill(self, n: int, deadline: float) -> bool:
        """Read until ``n`` bytes are buffered; False on EOF. Raises TimeoutError past ``deadline``."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while len(self.buffer) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, max(n - len(self.buffer), 1 << 16))
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def receive(self, timeout: float) -> tuple[str, Any] | None:
        """The next message, or None when the worker died. Raises TimeoutError."""
        deadline = time.monotonic() + timeout + (0.0 if self.started else START_TIMEOUT)
        if not self._fill(_HEADER.size, deadline):
            return None
        size = _HEADER.size + _HEADER.unpack(self.buffer[:_HEADER.size])[0]
        if not self._fill(size, deadline):
            return None
        body, self.buffer = self.buffer[_HEADER.size:size], self.buffer[size:]
        self.started = True
        message: tuple[str, Any] = pickle.loads(body)
        return message

    def stderr_tail(self) -> str:
        try:
            self.stderr.seek(0)
            lines = self.stderr.read()[-4000:].decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""

    def close(self) -> int | None:
        """Kill the worker (it runs in its own session: nothing else is in its group); its exit status."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                self.process.kill()
        code = self.process.wait()
        for f in (self.process.stdin, self.process.stdout, self.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        return code


_worker: _Worker | None = None
_lock = threading.Lock()  # one request at a time per worker


def _shutdown() -> None:
    global _worker
    if _worker is not None:
        _worker.close()
        _worker = None


atexit.register(_shutdown)


def _why_dead(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _call(task: str, args: tuple[Any, ...], timeout: float) -> Iterator[Any]:
    """Run ``_TASKS[task](*args)`` in the worker and yield its items as they come."""
    global _worker
    with _lock:
        if _worker is None or _worker.process.poll() is not None:
            if _worker is not None:
                _worker.close()
            _worker = _Worker()
        worker = _worker
        worker.stderr.truncate(0)
        answered = False  # the worker sent its last message for this request
        try:
            worker.send((task, args))
            while True:
                message = worker.receive(timeout)
                if message is None:
                    raise BrokenPipeError
                status, value = message
                if status == "done":
                    answered = True
                    return
                if status == "error":
                    answered = True
                    raise OracleError(f"the TFLM interpreter refused this model ({value})",
                                      "check the model with `tinyedge inspect`; re-export it with the TFLite "
                                      "converter")
                yield value
        except TimeoutError:
            _worker = None
            worker.close()
            raise OracleError(f"the TFLM interpreter did not answer within {timeout:g} s on this model",
                              "the model may make TFLM loop; re-export it with the TFLite converter",
                              kind="timeout") from None
        except OSError:  # the worker died without a word (BrokenPipeError included): a crash in native code
            _worker = None
            try:
                code = worker.process.wait(5)
            except subprocess.TimeoutExpired:
                code = None
            last = worker.stderr_tail()
            worker.close()
            raise OracleError(f"the TFLM interpreter crashed on this model ({_why_dead(code)})"
                              + (f": {last}" if last else ""), _HINT_CRASH, kind="crashed") from None
        finally:
            if not answered and _worker is worker:  # e.g. the caller stopped iterating mid-answer: retire it
                _worker = None
                worker.close()


def run_tflm(model: bytes, inputs: np.ndarray, arena_size: int = 4 << 20,
             timeout: float = STALL_TIMEOUT) -> np.ndarray:
    """Run each row of ``inputs`` (already in the model's input dtype and shape) through TFLM.

    Returns the stacked outputs of output 0, one row per input. Runs in the oracle worker process;
    raises OracleError when TFLM refuses the model, crashes, or gives no output for ``timeout`` seconds.
    """
    outs = list(_call("rows", (bytes(model), np.asarray(inputs), arena_size), timeout))
    return np.stack(outs) if outs else np.zeros((0,), dtype=np.asarray(inputs).dtype)


def min_arena_bytes(model: bytes, hi: int = 8 << 20, step: int = 16, timeout: float = STALL_TIMEOUT) -> int:
    """Smallest ``arena_size`` (to ``step`` bytes) with which TFLM allocates and invokes the model.

    TFLM has no arena-used call in Python, so bisect (the whole bisection in one worker call). The host
    interpreter is 64-bit: pointers and structs make its arena somewhat larger than on a 32-bit MCU.
    Raises OracleError when TFLM cannot run the model, crashes or stops answering.
    """
    last: int | None = None
    for probe in _call("bisect", (bytes(model), hi, step), timeout):
        last = int(probe)
    if last is None:  # _bisect always yields its answer last
        raise OracleError("the TFLM arena bisection gave no answer", "report this as a tinyedge bug")
    return last


if __name__ == "__main__":
    serve()

"""Compile the generated model code for the host and run it: used by the differential tests,
``inspect`` sanity checks and the benchmarks (host time per inference)."""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import ToolError
from ..paths import cache_dir
from ..proc import run, which

log = logging.getLogger("tinyedge.host")

HOST_CFLAGS = ("-std=c99", "-O3", "-funroll-loops", "-Wall", "-Wextra", "-Werror")


_KERNEL_OBJECTS: dict[str, list[Path]] = {}
#: How long a process waits for another one compiling the same kernel source before compiling it itself.
LOCK_WAIT_S = 900.0


@functools.cache
def _cc_identity(cc: str) -> str:
    """The compiler's path and version line: part of every cached object's key."""
    out = run([cc, "--version"], what=f"{cc} --version").stdout
    return f"{shutil.which(cc) or cc}\n{out.splitlines()[0] if out else ''}"


def _object_store() -> Path | None:
    """The folder of compiled kernel objects shared by all processes (``cache_dir("host-objects")``), or None
    where it cannot be written (then every process compiles for itself)."""
    store = cache_dir("host-objects")
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return store if os.access(store, os.W_OK) else None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (so two processes do not compile the same source at once), waiting at
    most LOCK_WAIT_S; without ``fcntl`` (Windows) or after the wait, go on unlocked (the result is the same)."""
    try:
        import fcntl  # noqa: PLC0415  (POSIX only)
    except ImportError:
        yield
        return
    with open(path, "a") as fh:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    log.warning("%s is still locked after %.0f s: compiling without it", path, LOCK_WAIT_S)
                    yield
                    return
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _compile_kernel(cc: str, flags: tuple[str, ...], src: Path, include: Path, obj: Path, store: Path | None) -> None:
    """Compile one kernel source to ``obj``, through the shared store: the key is the compiler, the flags and
    the preprocessed source (so every header and define it sees counts, and a mutated kernel gets its own key)."""
    compile_cmd: list[str | Path] = [cc, *flags, "-I", include, "-c", src, "-o", obj]
    hint = "this is a tinyedge bug: report it with the model"
    if store is None:
        run(compile_cmd, what="host compile of the kernels", hint=hint)
        return
    pre = run([cc, *flags, "-I", include, "-E", "-P", src], what="host preprocessing of the kernels", hint=hint).stdout
    key = hashlib.sha256("\0".join((_cc_identity(cc), *flags, pre)).encode()).hexdigest()
    cached = store / f"{key}.o"
    with _locked(store / f"{key}.lock"):
        if not cached.is_file():
            tmp = store / f"{key}.{os.getpid()}.tmp.o"
            run([*compile_cmd[:-1], tmp], what="host compile of the kernels", hint=hint)
            os.replace(tmp, cached)  # whole or absent, never half-written
    shutil.copyfile(cached, obj)  # a copy: the store may be emptied while this process runs


def _kernel_objects(files: dict[str, str], workdir: Path, cc: str, flags: tuple[str, ...]) -> list[Path]:
    """Object files of the kernel sources: once per process for each distinct source set, and each file
    compiled once per machine (the store), since compiling the kernels is most of a model's build time.
    A mutated kernel source gets its own object; the other kernel files come from the store.
    """
    kernels = {k: v for k, v in files.items() if k.startswith("src/te_kernels")}
    key = hashlib.sha256(repr((sorted(kernels.items()), cc, flags)).encode()).hexdigest()
    if key not in _KERNEL_OBJECTS:
        objdir = Path(tempfile.mkdtemp(prefix="tinyedge-kernels-"))
        atexit.register(shutil.rmtree, objdir, True)
        store = _object_store()
        objs = []
        for rel in sorted(kernels):
            if rel.endswith(".c"):
                obj = objdir / (Path(rel).stem + ".o")
                _compile_kernel(cc, flags, workdir / rel, workdir / "src", obj, store)
                objs.append(obj)
        _KERNEL_OBJECTS[key] = objs
    return _KERNEL_OBJECTS[key]


def build_host(files: dict[str, str], workdir: str | Path, *, cc: str = "gcc",
               extra_flags: tuple[str, ...] = ()) -> Path:
    """Write the model sources (``src/te_*``, ``host/te_host_main.c``) into ``workdir`` and link ``te_host``."""
    which(cc, "install a C compiler (apt-get install gcc)")
    workdir = Path(workdir)
    for rel, text in files.items():
        if rel.startswith("src/te_") or rel.startswith("host/"):
            p = workdir / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
    flags = (*HOST_CFLAGS, *extra_flags)
    objs = _kernel_objects(files, workdir, cc, flags)
    srcs = sorted(str(p) for p in (workdir / "src").glob("te_*.c")
                  if p.name != "te_port.c" and not p.name.startswith("te_kernels"))
    exe = workdir / "te_host"
    run([cc, *flags, "-I", workdir / "src", *srcs, *objs, workdir / "host" / "te_host_main.c", "-o", exe],
        what="host compile of the generated model", hint="this is a tinyedge bug: report it with the model")
    return exe


def run_host(exe: str | Path, inputs: np.ndarray, output_count: int) -> np.ndarray:
    """Feed int8 inputs (one row per sample) through the host harness; return int8 outputs."""
    x = np.ascontiguousarray(inputs, dtype=np.int8)
    proc = run([exe], check=False, capture=True, what="host model run", timeout=600, stdin_bytes=x.tobytes())
    if proc.returncode != 0:
        raise ToolError(f"host model exited with {proc.returncode}", "this is a tinyedge bug: report it with the model")
    out = np.frombuffer(proc.stdout, dtype=np.int8)
    return out.reshape(len(x), output_count)


def bench_host(exe: str | Path, sample: np.ndarray, iterations: int) -> float:
    """Mean host nanoseconds per inference of the generated C on one input."""
    x = np.ascontiguousarray(sample, dtype=np.int8)
    proc = run([exe, "--bench", str(iterations)], capture=True, what="host model benchmark", stdin_bytes=x.tobytes())
    return float(proc.stderr.decode().strip().splitlines()[-1])


def temp_workdir(prefix: str = "tinyedge-host-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("TMPDIR")))

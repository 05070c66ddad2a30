"""Compile the generated model code for the host and run it: used by the differential tests,
``inspect`` sanity checks and the benchmarks (host time per inference)."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ToolError
from ..proc import run, which

HOST_CFLAGS = ("-std=c99", "-O3", "-funroll-loops", "-Wall", "-Wextra", "-Werror")


_KERNEL_OBJECTS: dict[str, Path] = {}


def _kernel_objects(files: dict[str, str], workdir: Path, cc: str, flags: tuple[str, ...]) -> list[Path]:
    """Object files of the kernel sources, compiled once per process for each distinct source set.

    The kernels are the same for every model, and compiling them is most of a model's build time.
    A mutated kernel source hashes differently and gets its own objects.
    """
    kernels = {k: v for k, v in files.items() if k.startswith("src/te_kernels")}
    key = hashlib.sha256(repr((sorted(kernels.items()), cc, flags)).encode()).hexdigest()
    if key not in _KERNEL_OBJECTS:
        objdir = Path(tempfile.mkdtemp(prefix="tinyedge-kernels-"))
        atexit.register(shutil.rmtree, objdir, True)
        for rel in sorted(kernels):
            if rel.endswith(".c"):
                run([cc, *flags, "-I", workdir / "src", "-c", workdir / rel, "-o", objdir / (Path(rel).stem + ".o")],
                    what="host compile of the kernels", hint="this is a tinyedge bug: report it with the model")
        _KERNEL_OBJECTS[key] = objdir
    return sorted(_KERNEL_OBJECTS[key].glob("*.o"))


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

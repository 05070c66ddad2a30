"""Helpers shared by test modules (import them as ``from helpers import ...``; conftest puts tests/ on
sys.path). Test modules do not import from each other."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tflite_builder import ACT, PADDING, ModelBuilder, options, out_size
from tinyedge.codegen.cmodel import render_model
from tinyedge.model import read_model_bytes
from tinyedge.model.program import build_program
from tinyedge.paths import runtime_dir
from tinyedge.proc import run
from tinyedge.render import render
from tinyedge.runners import Deployment, Runner

#: The emulated board the QEMU tests deploy to (Cortex-M4 with DSP).
QEMU_BOARD = "qemu-mps2-an386"


# ------------------------------------------------------------------------------------------ deploy
@contextmanager
def running(dep: Deployment) -> Iterator[Runner]:
    """A fresh boot of ``dep``'s built firmware: its runner restarted (QEMU keeps its TCP port, so a client
    can reconnect) and stopped on exit. For module-scoped deployments that every test boots anew."""
    dep.runner.start(dep.project.path)
    try:
        yield dep.runner
    finally:
        dep.runner.stop()


# ------------------------------------------------------------------------------ random int8 models (kernel diff tests)
ACTS = list(ACT)


def rand_quant(rng: np.random.Generator) -> tuple[float, int]:
    """A random int8 (scale, zero point)."""
    return float(rng.uniform(0.01, 0.1)), int(rng.integers(-128, 128))


def rand_out_scale(rng: np.random.Generator, in_scale: float, f_scale: float, k: int) -> float:
    """An output scale that keeps a k-term int8 dot product mostly in range."""
    return float(130 * np.sqrt(k) * in_scale * f_scale * rng.uniform(0.3, 2.0))


def conv_model(seed: int, depthwise: bool = False) -> tuple[bytes, str]:
    """A random CONV_2D (or DEPTHWISE_CONV_2D) model and its description."""
    rng = np.random.default_rng(seed)
    n = 1 if depthwise or seed % 4 else 2
    h, w = int(rng.integers(3, 12)), int(rng.integers(3, 12))
    c = int(rng.integers(1, 9))
    kh, kw = int(rng.integers(1, min(h, 4) + 1)), int(rng.integers(1, min(w, 4) + 1))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    dil = int(rng.integers(1, 3)) if seed % 3 == 0 else 1
    if (kh - 1) * dil + 1 > h or (kw - 1) * dil + 1 > w:
        dil = 1
    pad = ["SAME", "VALID"][seed % 2]
    act = ACTS[seed % len(ACTS)]
    dm = int(rng.integers(1, 3)) if depthwise else 1
    oc = c * dm if depthwise else int(rng.integers(1, 9))
    oh, ow = out_size(pad, h, kh, sh, dil), out_size(pad, w, kw, sw, dil)
    in_s, in_zp = rand_quant(rng)
    per_channel = seed % 5 != 4
    f_scales = rng.uniform(0.002, 0.02, size=oc if per_channel else 1).astype(np.float32)
    k = kh * kw * (1 if depthwise else c)
    out_s = rand_out_scale(rng, in_s, float(f_scales.mean()), k)
    out_zp = int(rng.integers(-128, 128))
    fshape = (1, kh, kw, oc) if depthwise else (oc, kh, kw, c)
    filt = rng.integers(-127, 128, size=fshape, dtype=np.int8)
    bias_scale = in_s * f_scales.astype(np.float64)
    bias = rng.integers(-3000, 3000, size=oc).astype(np.int32)
    b = ModelBuilder()
    ti = b.tensor((n, h, w, c), scale=in_s, zero_point=in_zp)
    tf = b.tensor(fshape, data=filt, scale=f_scales, zero_point=0, qdim=3 if depthwise else 0)
    # TFLM's depthwise crashes without a bias
    tb = (b.tensor((oc,), "INT32", data=bias, scale=bias_scale if per_channel else bias_scale[:1], zero_point=0)
          if (seed % 7 or depthwise) else -1)
    to = b.tensor((n, oh, ow, oc), scale=out_s, zero_point=out_zp)
    if depthwise:
        opts = options("DepthwiseConv2DOptions", padding=PADDING[pad], strideW=sw, strideH=sh, depthMultiplier=dm,
                       fusedActivationFunction=ACT[act], dilationWFactor=dil, dilationHFactor=dil)
        b.op("DEPTHWISE_CONV_2D", [ti, tf, tb], [to], opts, "DepthwiseConv2DOptions")
    else:
        opts = options("Conv2DOptions", padding=PADDING[pad], strideW=sw, strideH=sh, fusedActivationFunction=ACT[act],
                       dilationWFactor=dil, dilationHFactor=dil)
        b.op("CONV_2D", [ti, tf, tb], [to], opts, "Conv2DOptions")
    desc = (f"{'DEPTHWISE_CONV_2D' if depthwise else 'CONV_2D'} seed={seed} in={n}x{h}x{w}x{c} k={kh}x{kw} "
            f"stride={sh}x{sw} dil={dil} pad={pad} act={act} dm={dm} out_c={oc} per_channel={per_channel}")
    return b.build([ti], [to]), desc


def fc_model(seed: int) -> tuple[bytes, str]:
    """A random FULLY_CONNECTED model and its description."""
    rng = np.random.default_rng(seed)
    batches = int(rng.integers(1, 4))
    depth, units = int(rng.integers(1, 40)), int(rng.integers(1, 20))
    keep = bool(seed % 2) and batches > 1
    in_s, in_zp = rand_quant(rng)
    per_channel = seed % 3 == 0
    f_scales = rng.uniform(0.002, 0.02, size=units if per_channel else 1).astype(np.float32)
    out_s = rand_out_scale(rng, in_s, float(f_scales.mean()), depth)
    out_zp = int(rng.integers(-128, 128))
    act = ACTS[seed % len(ACTS)]
    b = ModelBuilder()
    ishape = (batches, depth) if seed % 4 else (batches, 1, depth)
    ti = b.tensor(ishape, scale=in_s, zero_point=in_zp)
    tw = b.tensor((units, depth), data=rng.integers(-127, 128, size=(units, depth), dtype=np.int8), scale=f_scales,
                  zero_point=0)
    tb = b.tensor((units,), "INT32", data=rng.integers(-5000, 5000, size=units).astype(np.int32),
                  scale=(in_s * f_scales.astype(np.float64)), zero_point=0) if seed % 5 else -1
    oshape = (batches, 1, units) if (keep and len(ishape) == 3) else (batches, units)
    to = b.tensor(oshape, scale=out_s, zero_point=out_zp)
    b.op("FULLY_CONNECTED", [ti, tw, tb], [to],
         options("FullyConnectedOptions", fusedActivationFunction=ACT[act], keepNumDims=keep and len(ishape) == 3),
         "FullyConnectedOptions")
    desc = f"FULLY_CONNECTED seed={seed} in={ishape} units={units} act={act} per_channel={per_channel}"
    return b.build([ti], [to]), desc


def pool_model(seed: int, kind: str) -> tuple[bytes, str]:
    """A random MAX_POOL_2D or AVERAGE_POOL_2D model and its description."""
    rng = np.random.default_rng(seed)
    h, w, c = int(rng.integers(2, 12)), int(rng.integers(2, 12)), int(rng.integers(1, 9))
    kh, kw = int(rng.integers(1, min(h, 4) + 1)), int(rng.integers(1, min(w, 4) + 1))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    pad = ["SAME", "VALID"][seed % 2]
    act = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"][seed % 4]
    s, zp = rand_quant(rng)
    oh, ow = out_size(pad, h, kh, sh), out_size(pad, w, kw, sw)
    b = ModelBuilder()
    ti = b.tensor((1, h, w, c), scale=s, zero_point=zp)
    to = b.tensor((1, oh, ow, c), scale=s, zero_point=zp)
    b.op(kind, [ti], [to], options("Pool2DOptions", padding=PADDING[pad], strideW=sw, strideH=sh, filterWidth=kw,
                                  filterHeight=kh, fusedActivationFunction=ACT[act]), "Pool2DOptions")
    return b.build([ti], [to]), f"{kind} seed={seed} in=1x{h}x{w}x{c} k={kh}x{kw} stride={sh}x{sw} pad={pad} act={act}"


def softmax_model(seed: int) -> tuple[bytes, str]:
    """A random SOFTMAX model and its description."""
    rng = np.random.default_rng(seed)
    outer, depth = int(rng.integers(1, 4)), int(rng.integers(2, 40))
    in_s = float(rng.uniform(0.01, 0.4))
    beta = float(rng.choice([1.0, 0.5, 2.0, 0.25]))
    b = ModelBuilder()
    ti = b.tensor((outer, depth), scale=in_s, zero_point=int(rng.integers(-128, 128)))
    to = b.tensor((outer, depth), scale=1 / 256, zero_point=-128)
    b.op("SOFTMAX", [ti], [to], options("SoftmaxOptions", beta=beta), "SoftmaxOptions")
    return b.build([ti], [to]), f"SOFTMAX seed={seed} shape={outer}x{depth} in_scale={in_s:.4f} beta={beta}"


def reshape_chain_model(seed: int) -> tuple[bytes, str]:
    """RESHAPE (alias, no copy) between a pool and a fully connected layer, as Keras' Flatten produces."""
    rng = np.random.default_rng(seed)
    h, w, c, units = 4, 4, 3, 5
    s, zp = rand_quant(rng)
    b = ModelBuilder()
    ti = b.tensor((1, h, w, c), scale=s, zero_point=zp)
    tp = b.tensor((1, 2, 2, c), scale=s, zero_point=zp)
    b.op("MAX_POOL_2D", [ti], [tp], options("Pool2DOptions", padding=PADDING["VALID"], strideW=2, strideH=2,
                                            filterWidth=2, filterHeight=2), "Pool2DOptions")
    tshape = b.tensor((2,), "INT32", data=np.array([1, 4 * c], dtype=np.int32))
    tr = b.tensor((1, 4 * c), scale=s, zero_point=zp)
    b.op("RESHAPE", [tp, tshape], [tr], options("ReshapeOptions", newShape=[1, 4 * c]), "ReshapeOptions")
    tw = b.tensor((units, 4 * c), data=rng.integers(-127, 128, size=(units, 4 * c), dtype=np.int8), scale=0.01)
    to = b.tensor((1, units), scale=rand_out_scale(rng, s, 0.01, 4 * c), zero_point=3)
    b.op("FULLY_CONNECTED", [tr, tw, -1], [to], options("FullyConnectedOptions"), "FullyConnectedOptions")
    return b.build([ti], [to]), f"MAX_POOL_2D+RESHAPE+FULLY_CONNECTED seed={seed}"


def make(kind: str, seed: int) -> tuple[bytes, str]:
    """The random single-op model ``kind`` (see test_kernels_diff.CASES) for ``seed``: (model, description)."""
    return {
        "conv": lambda: conv_model(seed),
        "dwconv": lambda: conv_model(seed, depthwise=True),
        "fc": lambda: fc_model(seed),
        "maxpool": lambda: pool_model(seed, "MAX_POOL_2D"),
        "avgpool": lambda: pool_model(seed, "AVERAGE_POOL_2D"),
        "softmax": lambda: softmax_model(seed),
        "reshape": lambda: reshape_chain_model(seed),
    }[kind]()


def chain_model(seed: int) -> tuple[bytes, str]:
    """CONV_2D (general) -> DEPTHWISE_CONV_2D (in place) -> CONV_2D 1x1 (in place) -> RESHAPE -> FULLY_CONNECTED."""
    rng = np.random.default_rng(1000 + seed)
    h, w, c = int(rng.integers(4, 12)), int(rng.integers(4, 12)), int(rng.integers(1, 6))
    c1 = 4 * int(rng.integers(1, 5))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    pad = ["SAME", "VALID"][seed % 2]
    if pad == "VALID":
        kh, kw = min(kh, h), min(kw, w)
    h1, w1 = out_size(pad, h, kh, sh), out_size(pad, w, kw, sw)
    c2 = c1 if seed % 3 else max(4, c1 - 4)  # pointwise in place needs out_c <= in_c; sometimes it shrinks
    units = int(rng.integers(2, 12))
    b = ModelBuilder()
    s0, z0 = rand_quant(rng)
    t0 = b.tensor((1, h, w, c), scale=s0, zero_point=z0)

    def conv(tin, in_scale, cin, cout, k, stride, padding, shape, depthwise=False):
        per_channel = bool(rng.integers(0, 2)) or depthwise
        fs = rng.uniform(0.002, 0.02, size=cout if per_channel else 1).astype(np.float32)
        kk = k[0] * k[1] * (1 if depthwise else cin)
        out_s = float(130 * np.sqrt(kk) * in_scale * float(fs.mean()) * rng.uniform(0.3, 2.0))
        out_zp = int(rng.integers(-128, 128)) if rng.integers(0, 2) else -128
        fshape = (1, k[0], k[1], cout) if depthwise else (cout, k[0], k[1], cin)
        tf = b.tensor(fshape, data=rng.integers(-127, 128, size=fshape, dtype=np.int8), scale=fs, zero_point=0,
                      qdim=3 if depthwise else 0)
        tb = b.tensor((cout,), "INT32", data=rng.integers(-3000, 3000, size=cout).astype(np.int32),
                      scale=in_scale * fs.astype(np.float64), zero_point=0)
        to = b.tensor(shape, scale=out_s, zero_point=out_zp)
        act = ACTS[int(rng.integers(0, len(ACTS)))]
        if depthwise:
            b.op("DEPTHWISE_CONV_2D", [tin, tf, tb], [to],
                 options("DepthwiseConv2DOptions", padding=PADDING[padding], strideW=stride[1], strideH=stride[0],
                         depthMultiplier=1, fusedActivationFunction=ACT[act]), "DepthwiseConv2DOptions")
        else:
            b.op("CONV_2D", [tin, tf, tb], [to],
                 options("Conv2DOptions", padding=PADDING[padding], strideW=stride[1], strideH=stride[0],
                         fusedActivationFunction=ACT[act]), "Conv2DOptions")
        return to, out_s

    t1, s1 = conv(t0, s0, c, c1, (kh, kw), (sh, sw), pad, (1, h1, w1, c1))
    t2, s2 = conv(t1, s1, c1, c1, (3, 3), (1, 1), "SAME", (1, h1, w1, c1), depthwise=True)
    t3, s3 = conv(t2, s2, c1, c2, (1, 1), (1, 1), "VALID", (1, h1, w1, c2))
    n = h1 * w1 * c2
    tshape = b.tensor((2,), "INT32", data=np.array([1, n], dtype=np.int32))
    t4 = b.tensor((1, n), scale=s3, zero_point=b_zp(b, t3))
    b.op("RESHAPE", [t3, tshape], [t4], options("ReshapeOptions", newShape=[1, n]), "ReshapeOptions")
    fs = np.float32(rng.uniform(0.002, 0.02))
    tw = b.tensor((units, n), data=rng.integers(-127, 128, size=(units, n), dtype=np.int8), scale=fs, zero_point=0)
    tb = b.tensor((units,), "INT32", data=rng.integers(-5000, 5000, size=units).astype(np.int32), scale=s3 * float(fs),
                  zero_point=0)
    to = b.tensor((1, units), scale=float(130 * np.sqrt(n) * s3 * fs * rng.uniform(0.3, 2.0)),
                  zero_point=int(rng.integers(-128, 128)))
    b.op("FULLY_CONNECTED", [t4, tw, tb], [to], options("FullyConnectedOptions"), "FullyConnectedOptions")
    desc = (f"chain seed={seed} in=1x{h}x{w}x{c} conv k={kh}x{kw} s={sh}x{sw} {pad} -> {h1}x{w1}x{c1} dw3x3 -> "
            f"pw {c2} -> fc {units}")
    return b.build([t0], [to]), desc


def b_zp(b: ModelBuilder, t: int) -> int:
    """Zero point of tensor ``t`` as the builder recorded it."""
    return int(b.tensors[t].quantization.zeroPoint[0])


# ------------------------------------------------------------------------------ host DUT: real main.c, fake model, TCP
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1"]

HOST_PORT_H = r"""
#ifndef TE_PORT_H
#define TE_PORT_H
#include <stdint.h>
#ifndef TE_BOARD_ID
#define TE_BOARD_ID "host"
#endif
#ifndef TE_EMULATED
#define TE_EMULATED 0
#endif
#define TE_CLOCK_HZ 25000000u
void te_port_init(void);
int te_port_getc(void);
int te_port_poll(void);
void te_port_putc(char c);
void te_port_puts(const char *s);
uint64_t te_timer_ticks(void);
uint32_t te_timer_hz(void);
const char *te_timer_source(void);
void te_port_exit(int code);
#endif
"""

# A TCP server on 127.0.0.1 (port printed on stdout), like QEMU's -serial tcp:...,server=on,wait=on.
HOST_PORT_C = r"""
#define _POSIX_C_SOURCE 200809L
#include "te_port.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int g_fd = -1;
static char g_out[8192];
static size_t g_len;

static void flush_out(void) {
    size_t off = 0;
    while (off < g_len) {
        ssize_t n = send(g_fd, g_out + off, g_len - off, 0);
        if (n <= 0) exit(0);
        off += (size_t)n;
    }
    g_len = 0;
}

void te_port_init(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 1) != 0) exit(3);
    getsockname(s, (struct sockaddr *)&a, &al);
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    g_fd = accept(s, NULL, NULL);
    if (g_fd < 0) exit(4);
    close(s);
}

int te_port_getc(void) {
    unsigned char c;
    flush_out();
    if (recv(g_fd, &c, 1, 0) != 1) exit(0);
    return c;
}

int te_port_poll(void) {
    unsigned char c;
    flush_out(); /* what was said before a long command reaches the host while it runs */
    ssize_t n = recv(g_fd, &c, 1, MSG_DONTWAIT);
    if (n == 0) exit(0);
    return n == 1 ? c : -1;
}

void te_port_putc(char c) {
    if (g_len == sizeof g_out) flush_out();
    g_out[g_len++] = c;
}

void te_port_puts(const char *s) { while (*s) te_port_putc(*s++); }

uint64_t te_timer_ticks(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

uint32_t te_timer_hz(void) { return 1000000000u; }
const char *te_timer_source(void) { return "clock_gettime"; }
void te_port_exit(int code) { flush_out(); exit(code); }
"""

FAKE_MODEL_H = r"""
#ifndef TE_MODEL_H
#define TE_MODEL_H
#include <stdint.h>
#define TE_INPUT_BYTES {input_bytes}u
#define TE_OUTPUT_COUNT {output_count}u
#define TE_ARENA_BYTES 4096u
#define TE_NUM_LAYERS 3u
#define TE_MODEL_SHA256 "{sha}"
#define TE_MODEL_NAME "fake"
#define TE_MLPERF_MODEL_ID "kws01"
#define TE_INPUT_SCALE 0.5f
#define TE_INPUT_ZERO_POINT 0
#define TE_OUTPUT_SCALE {out_scale}f
#define TE_OUTPUT_ZERO_POINT {out_zp}
int8_t *te_model_input(void);
const int8_t *te_model_output(void);
void te_model_invoke(void);
void te_model_invoke_profiled(uint64_t (*now)(void), uint32_t *ticks_per_layer);
extern const char *const te_layer_names[TE_NUM_LAYERS];
#endif
"""

FAKE_MODEL_C = r"""
#include "te_model.h"
static int8_t g_in[TE_INPUT_BYTES];
static int8_t g_out[TE_OUTPUT_COUNT];
const char *const te_layer_names[TE_NUM_LAYERS] = {"conv_2d", "weird*na,me", "softmax"};
int8_t *te_model_input(void) { return g_in; }
const int8_t *te_model_output(void) { return g_out; }
void te_model_invoke(void) {
    for (unsigned j = 0; j < TE_OUTPUT_COUNT; j++) {
        int32_t acc = (int32_t)j * 17;
        for (unsigned i = 0; i < TE_INPUT_BYTES; i++) acc += g_in[i] * (int32_t)((i + j) % 5u + 1u);
        acc >>= 4;
        g_out[j] = (int8_t)(acc > 127 ? 127 : acc < -128 ? -128 : acc);
    }
    for (unsigned i = 0; i < TE_INPUT_BYTES; i++) g_in[i] = 0x55; /* the planner reused it */
}
void te_model_invoke_profiled(uint64_t (*now)(void), uint32_t *ticks) {
    uint64_t t0 = now();
    te_model_invoke();
    uint64_t t1 = now();
    ticks[0] = (uint32_t)(t1 - t0);
    ticks[1] = 7u;
    ticks[2] = (uint32_t)(now() - t1);
}
"""


def fake_outputs(x: np.ndarray, output_count: int) -> np.ndarray:
    """Python mirror of the fake model: rows of int8 inputs -> rows of int8 outputs."""
    x = np.asarray(x, dtype=np.int32).reshape(len(x), -1)
    n = x.shape[1]
    outs = np.zeros((len(x), output_count), dtype=np.int8)
    i = np.arange(n)
    for j in range(output_count):
        w = (i + j) % 5 + 1
        acc = (j * 17 + x @ w) >> 4
        outs[:, j] = np.clip(acc, -128, 127)
    return outs


def build_host_dut(
    workdir: Path,
    *,
    input_bytes: int = 40,
    output_count: int = 4,
    sha: str = "ab" * 32,
    out_scale: float = 0.00390625,
    out_zp: int = -128,
    board: str = "host",
    emulated: int = 0,
) -> Path:
    """Render main.c and compile it with the host port and the fake model; return the executable."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("host gcc not available")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "main.c").write_text((runtime_dir() / "main.c").read_text())
    (workdir / "te_version.h").write_text(render("te_version.h.j2", version="9.9.9-test"))
    (workdir / "te_port.h").write_text(HOST_PORT_H)
    (workdir / "te_port.c").write_text(HOST_PORT_C)
    (workdir / "te_model.h").write_text(FAKE_MODEL_H.format(
        input_bytes=input_bytes, output_count=output_count, sha=sha, out_scale=repr(out_scale), out_zp=out_zp))
    (workdir / "te_model.c").write_text(FAKE_MODEL_C)
    exe = workdir / "dut"
    run([gcc, *CFLAGS, "-DTE_HOST", f'-DTE_BOARD_ID="{board}"', f"-DTE_EMULATED={emulated}", "-I", workdir,
         workdir / "main.c", workdir / "te_port.c", workdir / "te_model.c", "-o", exe], what="host build of main.c")
    return exe


def build_model_dut(workdir: Path, model: bytes, *, mlperf_id: str | None = None, opt: str = "-O1",
                    what: str = "host build of main.c with a generated model") -> Path:
    """main.c with ``model``'s generated C and the host port, compiled with -Werror in ``workdir``; the
    executable (serve it with :func:`host_dut`)."""
    if shutil.which("gcc") is None:
        pytest.skip("host gcc not available")
    files = render_model(build_program(read_model_bytes(model, name="m.tflite")), mlperf_id=mlperf_id).files
    src = workdir / "src"
    src.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        if rel.startswith("src/"):
            (workdir / rel).write_text(text)
    (src / "main.c").write_text((runtime_dir() / "main.c").read_text())  # te_version.h comes with the model files
    (src / "te_port.h").write_text(HOST_PORT_H)
    (src / "te_port.c").write_text(HOST_PORT_C)
    exe = workdir / "dut"
    run(["gcc", "-std=c99", opt, "-Wall", "-Wextra", "-Werror", "-DTE_HOST", '-DTE_BOARD_ID="qemu-mps2-an386"',
         "-DTE_EMULATED=1", "-I", src, *sorted(src.glob("*.c")), "-o", exe], what=what)
    return exe


@contextmanager
def host_dut(exe: Path) -> Iterator[str]:
    """Start the host DUT; yield its ``socket://`` URL; stop it afterwards."""
    proc = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"socket://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(5)


def read_until(dut: Any, pred: Callable[[str], bool], timeout: float = 5.0) -> list[str]:
    """A DutClient's reply lines up to and including the first one for which ``pred(text)`` holds."""
    got: list[str] = []
    while True:
        line = dut._next_line(timeout)
        assert line is not None, f"no line within {timeout} s after {got}"
        got.append(line.text)
        if pred(line.text):
            return got

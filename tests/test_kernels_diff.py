"""Every kernel against the tflite_micro interpreter, exact equality, on randomized single-op models."""

from __future__ import annotations

import numpy as np
import pytest

from difftest import compare
from helpers import ACTS, conv_model, make, rand_out_scale, rand_quant
from tflite_builder import ACT, PADDING, ModelBuilder, options

# slow: each host build of generated C links kernels compiled once per process at -O3 (~8 s of CPU, most of
# it te_kernels_dsp.c): too much for the unit tier's minute. tests/test_runtime_c.py is the unit-tier check
# of the kernels' C.
pytestmark = pytest.mark.slow

CASES = (
    [("conv", s) for s in range(16)] + [("dwconv", s) for s in range(12)] + [("fc", s) for s in range(12)]
    + [("maxpool", s) for s in range(6)] + [("avgpool", s) for s in range(6)] + [("softmax", s) for s in range(8)]
    + [("reshape", s) for s in range(2)]
)


@pytest.mark.parametrize("kind,seed", CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_kernel_matches_tflm(kind, seed):
    model, desc = make(kind, seed)
    problem = compare(model, seed=seed, describe=desc)
    assert problem is None, problem


def test_harness_catches_one_lsb_requantization_error():
    """Mutate the requantization rounding (round-half-away -> round-half-up) and see the harness fail."""
    def mutate(files):
        src = files["src/te_kernels.c"]
        needle = "return (x >> exponent) + (remainder > threshold ? 1 : 0);"
        assert needle in src
        wrong = "return (x >> exponent) + (remainder >= threshold ? 1 : 0);"
        return {**files, "src/te_kernels.c": src.replace(needle, wrong)}

    caught = any(compare(conv_model(seed)[0], seed=seed, describe=conv_model(seed)[1], mutate=mutate, samples=8)
                 is not None for seed in range(4))  # stops at the first catch
    assert caught, "a one-LSB rounding change went unnoticed by the differential harness"


@pytest.mark.parametrize("seed", range(3))
def test_pointwise_conv_fast_path_matches_tflm(seed):
    """1x1, stride 1, no padding: the kernel's matrix-product path (as in DS-CNN's pointwise layers)."""
    rng = np.random.default_rng(100 + seed)
    h, w, c, oc = int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 70)), int(rng.integers(1, 20))
    in_s, in_zp = rand_quant(rng)
    f_scales = rng.uniform(0.002, 0.02, size=oc).astype(np.float32)
    b = ModelBuilder()
    ti = b.tensor((1, h, w, c), scale=in_s, zero_point=in_zp)
    tf = b.tensor((oc, 1, 1, c), data=rng.integers(-127, 128, size=(oc, 1, 1, c), dtype=np.int8), scale=f_scales)
    tb = b.tensor((oc,), "INT32", data=rng.integers(-3000, 3000, size=oc).astype(np.int32), scale=in_s * f_scales)
    to = b.tensor((1, h, w, oc), scale=rand_out_scale(rng, in_s, float(f_scales.mean()), c),
                  zero_point=int(rng.integers(-128, 128)))
    b.op("CONV_2D", [ti, tf, tb], [to], options("Conv2DOptions", padding=PADDING["VALID"], strideW=1, strideH=1,
                                                fusedActivationFunction=ACT[ACTS[seed % len(ACTS)]]), "Conv2DOptions")
    problem = compare(b.build([ti], [to]), seed=seed, describe=f"pointwise CONV_2D seed={seed} {h}x{w}x{c}->{oc}")
    assert problem is None, problem

"""gemmlowp / TFLM integer arithmetic, emulated exactly in Python (int32 wrap-around included).

The generated C evaluates most int8 -> int8 element-wise ops (LOGISTIC, TANH, RELU, RELU6,
LEAKY_RELU, HARD_SWISH, int8 requantizing QUANTIZE) as a 256-entry lookup table: each of those
ops is a pure function of the input byte, so tinyedge computes that function ahead of time here,
step by step as TFLM's reference kernel does, and the firmware only indexes the table. Every
function names the TFLM/gemmlowp function it mirrors.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1


def wrap32(x: int) -> int:
    """Two's complement int32 wrap-around (what the C++ code does on the targets)."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def wrap16(x: int) -> int:
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def _tdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero), b > 0."""
    q = abs(a) // b
    return q if a >= 0 else -q


def srdhm(a: int, b: int) -> int:
    """gemmlowp::SaturatingRoundingDoublingHighMul (int32)."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return wrap32(_tdiv(ab + nudge, 1 << 31))


def srdhm16(a: int, b: int) -> int:
    """gemmlowp::SaturatingRoundingDoublingHighMul (int16)."""
    if a == b == INT16_MIN:
        return INT16_MAX
    ab = a * b
    nudge = (1 << 14) if ab >= 0 else 1 - (1 << 14)
    return wrap16(_tdiv(ab + nudge, 1 << 15))


def rdivpot(x: int, exponent: int) -> int:
    """gemmlowp::RoundingDivideByPOT: round half away from zero."""
    if exponent == 0:
        return x
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def sat_rounding_mul_pot(x: int, exponent: int) -> int:
    """gemmlowp::SaturatingRoundingMultiplyByPOT (int32)."""
    if exponent == 0:
        return x
    if exponent < 0:
        return rdivpot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return x << exponent


def mul_by_qm(x: int, multiplier: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier (int32, double rounding: TFLM's default build)."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return rdivpot(srdhm(wrap32(x * (1 << left)), multiplier), right)


def rounding_half_sum(a: int, b: int) -> int:
    s = a + b
    return wrap32(_tdiv(s + (1 if s >= 0 else -1), 2))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    constant_term = 1895147668  # exp(-1/8), Q0.31
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdivpot(x4, 2)
    poly = rdivpot(wrap32(srdhm(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401),
               (4, 242))


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """gemmlowp::exp_on_negative_values: a <= 0 in Q(integer_bits).(31-integer_bits) -> Q0.31."""
    frac = 31 - integer_bits
    one_quarter = 1 << (frac - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = wrap32((a & mask) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        sat_rounding_mul_pot(a_mod_quarter_minus_one_quarter, integer_bits))
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            if remainder & (1 << (frac + exponent)):
                result = srdhm(result, multiplier)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        if a < clamp:
            result = 0
    if a == 0:
        result = INT32_MAX
    return result


def _newton_reciprocal(a: int) -> tuple[int, int]:
    """The Newton-Raphson part shared by the two x-in-[0,1) helpers; returns (x in Q2.29, half_den)."""
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))  # 48/17 - 32/17 * d
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = wrap32((1 << 29) - half_denominator_times_x)
        x = wrap32(x + sat_rounding_mul_pot(srdhm(x, one_minus), 2))
    return x, half_denominator


def one_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    x, _ = _newton_reciprocal(a)
    return sat_rounding_mul_pot(x, 1)  # Rescale<0>(ExactMulByPot<-1>(x))


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    x, _ = _newton_reciprocal(a)
    return sat_rounding_mul_pot(wrap32(x - (1 << 29)), 2)  # Rescale<0>(x - F2::One())


def logistic_q4(a: int) -> int:
    """gemmlowp::logistic for a Q4.27 input; Q0.31 result."""
    if a == 0:
        return 1 << 30
    abs_input = a if a > 0 else wrap32(-a)
    result_if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap32(-abs_input), 4))
    if a > 0:
        return result_if_positive
    return wrap32(INT32_MAX - result_if_positive)


def tanh_q4(a: int) -> int:
    """gemmlowp::tanh for a Q4.27 input; Q0.31 result."""
    if a == 0:
        return 0
    n = a if a < 0 else wrap32(-a)
    # neg_tanh_on_negative_values: ExactMulByPot<1> relabels Q4 as Q5 (same raw value).
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, 5))
    return wrap32(-t) if a < 0 else t


def tflite_round(x: float) -> float:
    """TfLiteRound / std::round: half away from zero."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def frexp_multiplier(real: float) -> tuple[int, int]:
    """The multiplier LOGISTIC/TANH Prepare builds with std::frexp (no renormalisation of 2^31)."""
    q, shift = math.frexp(real)
    return wrap32(int(tflite_round(q * (1 << 31)))), shift


def calculate_input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31) -> int:
    """CalculateInputRadius."""
    max_input_rescaled = (1.0 * ((1 << input_integer_bits) - 1) * float(1 << (total_signed_bits - input_integer_bits))
                          / math.ldexp(1.0, input_left_shift))
    return int(math.floor(max_input_rescaled))


def downscale_int32_to_int16_multiplier(m: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    if m >= INT32_MAX - (1 << 15):
        return INT16_MAX
    return (m + (1 << 15)) >> 16


def sat_left_shift16(value: int, amount: int) -> int:
    """reference_ops::SaturatingLeftShift (hard_swish.h)."""
    return max(INT16_MIN, min(INT16_MAX, value * (1 << amount)))


def sat_doubling_high_mul16(a: int, b: int) -> int:
    """reference_ops::SaturatingDoublingHighMul (hard_swish.h): truncating, like SQDMULH."""
    if a == b == INT16_MIN:
        return INT16_MAX
    return wrap16(_tdiv(a * b, 1 << 15))


def int8_table(fn: Callable[[int], int]) -> np.ndarray:
    """The 256-entry table of an int8 -> int8 function, indexed by ``input + 128``."""
    return np.asarray([fn(v) for v in range(-128, 128)], dtype=np.int8)

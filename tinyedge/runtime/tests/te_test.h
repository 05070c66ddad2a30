/* A tiny test harness for the runtime's C unit tests (no framework), plus reference arithmetic written
 * independently of the kernels under test: TFLM's requantization restated with plain int64 floor
 * division, so a bug in te_srdhm/te_rdivpot/te_mul_by_qm cannot hide in the expected values.
 * Built for the host by tests/test_runtime_c.py: gcc -std=c99 -Wall -Wextra -Werror. */
#ifndef TE_TEST_H
#define TE_TEST_H

#include <stdint.h>
#include <stdio.h>

static int te_checks, te_failures;

#define TE_CHECK(cond)                                                                \
    do {                                                                              \
        ++te_checks;                                                                  \
        if (!(cond)) {                                                                \
            ++te_failures;                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)

#define TE_CHECK_EQ(got, want)                                                                             \
    do {                                                                                                   \
        const long long te_g_ = (long long)(got), te_w_ = (long long)(want);                               \
        ++te_checks;                                                                                       \
        if (te_g_ != te_w_) {                                                                              \
            ++te_failures;                                                                                 \
            fprintf(stderr, "%s:%d: %s is %lld, expected %lld\n", __FILE__, __LINE__, #got, te_g_, te_w_); \
        }                                                                                                  \
    } while (0)

/* Compare n int8 values; report the first difference only. */
#define TE_CHECK_S8(got, want, n) te_check_s8((got), (want), (n), __FILE__, __LINE__, #got)

static inline void te_check_s8(const int8_t *got, const int8_t *want, int n, const char *file, int line, const char *what) {
    ++te_checks;
    for (int i = 0; i < n; ++i) {
        if (got[i] != want[i]) {
            ++te_failures;
            fprintf(stderr, "%s:%d: %s[%d] is %d, expected %d\n", file, line, what, i, got[i], want[i]);
            return;
        }
    }
}

/* Print the tally; the exit status is what the pytest module checks. */
static inline int te_report(const char *name) {
    printf("%s: %d checks, %d failed\n", name, te_checks, te_failures);
    return te_failures ? 1 : 0;
}

/* Deterministic xorshift32. */
static uint32_t te_rng_state = 2463534242u;
static inline uint32_t te_rand(void) {
    te_rng_state ^= te_rng_state << 13;
    te_rng_state ^= te_rng_state >> 17;
    te_rng_state ^= te_rng_state << 5;
    return te_rng_state;
}
/* Uniform in [lo, hi]. */
static inline int32_t te_rand_range(int32_t lo, int32_t hi) {
    return lo + (int32_t)(te_rand() % (uint32_t)(hi - lo + 1));
}
static inline void te_rand_s8(int8_t *p, int n, int lo, int hi) {
    for (int i = 0; i < n; ++i) p[i] = (int8_t)te_rand_range(lo, hi);
}

/* floor(a / 2^e) for any sign, without relying on >> of negative values. */
static inline int64_t ref_floor_pot(int64_t a, int e) {
    const int64_t d = (int64_t)1 << e;
    const int64_t q = a / d;
    return (a % d != 0 && a < 0) ? q - 1 : q;
}

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31) with halves going up (towards +inf),
 * saturated (only INT32_MIN * INT32_MIN overflows). */
static inline int32_t ref_srdhm(int32_t a, int32_t b) {
    const int64_t v = ref_floor_pot((int64_t)a * b + ((int64_t)1 << 30), 31);
    return v > INT32_MAX ? INT32_MAX : (int32_t)v;
}

/* gemmlowp RoundingDivideByPOT: round(x / 2^e) with halves going away from zero. */
static inline int32_t ref_rdivpot(int32_t x, int e) {
    if (e == 0) return x;
    const int64_t half = (int64_t)1 << (e - 1);
    return x >= 0 ? (int32_t)ref_floor_pot((int64_t)x + half, e) : -(int32_t)ref_floor_pot(-(int64_t)x + half, e);
}

/* TFLM MultiplyByQuantizedMultiplier (double rounding). */
static inline int32_t ref_requant(int32_t x, int32_t mult, int shift) {
    const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    return ref_rdivpot(ref_srdhm((int32_t)((uint32_t)x << left), mult), right);
}

static inline int8_t ref_clamp(int32_t v, int32_t lo, int32_t hi) {
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

#endif

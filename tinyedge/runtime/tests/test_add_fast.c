/* Unit tests of the fast int8 ADD inside te_binary_s8 (te_kernels_elementwise.c), built here on the host with
 * TE_ADD_FAST (the exact C models of the DSP instructions): on every byte pair, with TFLM-derived parameters
 * from random and extreme scales, every zero point extreme and every activation clamp, it must equal both
 * the portable per-element arithmetic (te_binary_one) and TFLM's arithmetic restated in te_test.h; parameters
 * outside its proven ranges must take the portable path. */
#define TE_ADD_FAST 1
#include "te_kernels_elementwise.c" /* the static fast path and te_binary_one, side by side */

#include <math.h>
#include <string.h>

#include "te_test.h"

#define GRID 65536 /* every (in1, in2) byte pair */

static int8_t g_a[GRID], g_b[GRID], g_out[GRID], g_want[GRID];

/* TFLM QuantizeMultiplier (frexp, round half away from zero, 2^31 folded back, tiny values to 0). */
static void quantize_multiplier(double d, int32_t *mult, int32_t *shift) {
    int e = 0;
    const double f = frexp(d, &e);
    int64_t q = (int64_t)llround(f * 2147483648.0);
    if (q == ((int64_t)1 << 31)) {
        q /= 2;
        ++e;
    }
    if (e < -31) {
        e = 0;
        q = 0;
    }
    *mult = (int32_t)q;
    *shift = e;
}

/* The parameters tinyedge's lowering gives TFLM's int8 ADD of these scales and zero points. */
static te_binary_params tflm_add(float s1, float s2, float so, int32_t z1, int32_t z2, int32_t zo, int32_t lo,
                                 int32_t hi, int32_t size) {
    te_binary_params p;
    memset(&p, 0, sizeof p);
    p.op = TE_BINARY_ADD;
    p.size = size;
    p.left_shift = 20;
    p.in1_offset = -z1;
    p.in2_offset = -z2;
    p.out_offset = zo;
    const double twice_max = 2.0 * (s1 > s2 ? (double)s1 : (double)s2);
    quantize_multiplier((double)s1 / twice_max, &p.in1_mult, &p.in1_shift);
    quantize_multiplier((double)s2 / twice_max, &p.in2_mult, &p.in2_shift);
    quantize_multiplier(twice_max / ((double)(1 << 20) * (double)so), &p.out_mult, &p.out_shift);
    p.act_min = lo;
    p.act_max = hi;
    return p;
}

/* TFLM's AddFunc (SubFunc for the one SUB case), from te_test.h's independent arithmetic. */
static int8_t ref_add(const te_binary_params *p, int8_t a, int8_t b) {
    const int32_t x = ref_requant((a + p->in1_offset) * (1 << p->left_shift), p->in1_mult, p->in1_shift);
    const int32_t y = ref_requant((b + p->in2_offset) * (1 << p->left_shift), p->in2_mult, p->in2_shift);
    const int32_t r = ref_requant(p->op == TE_BINARY_SUB ? x - y : x + y, p->out_mult, p->out_shift);
    return ref_clamp(r + p->out_offset, p->act_min, p->act_max);
}

static void fill_grid(void) {
    for (int i = 0; i < GRID; ++i) {
        g_a[i] = (int8_t)(i & 255);
        g_b[i] = (int8_t)(i >> 8);
    }
}

/* te_binary_s8 over every byte pair against te_binary_one and the reference; returns whether the fast path
 * took the parameters. */
static int check_grid(te_binary_params p, const char *what) {
    p.size = GRID;
    const int fast = te_add_s8_fast(&p, g_a, g_b, g_out);
    memset(g_out, 0x5a, sizeof g_out);
    te_binary_s8(&p, g_a, g_b, g_out);
    for (int i = 0; i < GRID; ++i) g_want[i] = te_binary_one(&p, g_a[i], g_b[i]);
    ++te_checks;
    for (int i = 0; i < GRID; ++i) {
        const int8_t r = ref_add(&p, g_a[i], g_b[i]);
        if (g_out[i] != g_want[i] || g_out[i] != r) {
            ++te_failures;
            fprintf(stderr, "%s (fast %d): a %d b %d gave %d, portable %d, reference %d; m1 %d s1 %d m2 %d s2 %d mo %d "
                    "so %d off %d %d zo %d clamp [%d, %d]\n", what, fast, g_a[i], g_b[i], g_out[i], g_want[i], r,
                    (int)p.in1_mult, (int)p.in1_shift, (int)p.in2_mult, (int)p.in2_shift, (int)p.out_mult,
                    (int)p.out_shift, (int)p.in1_offset, (int)p.in2_offset, (int)p.out_offset, (int)p.act_min,
                    (int)p.act_max);
            break;
        }
    }
    return fast;
}

static float rand_scale(double lo_log2, double hi_log2) {
    const double u = (double)te_rand() / 4294967296.0;
    return (float)exp2(lo_log2 + u * (hi_log2 - lo_log2));
}

/* The activation ranges TFLM gives ADD (CalculateActivationRangeQuantized): none, RELU, RELU6, RELU_N1_TO_1. */
static void clamp_for(int kind, float so, int32_t zo, int32_t *lo, int32_t *hi) {
    const int32_t six = zo + (int32_t)lround(6.0 / so), one = (int32_t)lround(1.0 / so);
    *lo = -128;
    *hi = 127;
    if (kind == 1 || kind == 2) *lo = zo > -128 ? zo : -128;
    if (kind == 2) *hi = six < 127 ? six : 127;
    if (kind == 3) {
        *lo = zo - one > -128 ? zo - one : -128;
        *hi = zo + one < 127 ? zo + one : 127;
    }
    if (kind == 4) { /* any narrower range */
        *lo = te_rand_range(-128, 127);
        *hi = te_rand_range(*lo, 127);
    }
    if (*lo > *hi) *lo = *hi;
}

/* Random scales within 2^7 of each other (and the output within 2^-3..2^4 of the larger input), random zero
 * points including the extremes, every clamp: all of them must take the fast path. */
static void test_random_tflm(void) {
    static const int32_t zps[] = {-128, 127, 0, -1};
    int fast = 0, total = 0;
    for (int it = 0; it < 150; ++it) {
        const float s1 = rand_scale(-12, 0), s2 = s1 * rand_scale(-7, 7);
        const float smax = s1 > s2 ? s1 : s2, so = smax * rand_scale(-3, 4);
        const int32_t z1 = it % 5 == 0 ? zps[(it / 5) % 4] : te_rand_range(-128, 127);
        const int32_t z2 = it % 7 == 0 ? zps[(it / 7) % 4] : te_rand_range(-128, 127);
        const int32_t zo = it % 3 == 0 ? zps[(it / 3) % 4] : te_rand_range(-128, 127);
        int32_t lo, hi;
        clamp_for(it % 5, so, zo, &lo, &hi);
        const te_binary_params p = tflm_add(s1, s2, so, z1, z2, zo, lo, hi, GRID);
        fast += check_grid(p, "random TFLM scales");
        ++total;
    }
    TE_CHECK_EQ(fast, total);
}

/* The ends of every range the fast path accepts, and just past them (the portable path then). */
static void test_extremes(void) {
    const te_binary_params base = tflm_add(0.5f, 0.25f, 0.75f, 3, -5, 7, -128, 127, GRID);
    static const int32_t mults[] = {1 << 30, (1 << 30) + 1, 1518500250, INT32_MAX - 1, INT32_MAX};
    static const int32_t shifts[] = {0, -1, -2, -13, -29, -30};
    static const int32_t offs[] = {-128, -127, 0, 127, 128};
    for (int m = 0; m < 5; ++m) {
        for (int s = 0; s < 6; ++s) {
            te_binary_params p = base;
            p.in2_mult = mults[m];
            p.in2_shift = shifts[s];
            p.in1_offset = offs[(m + s) % 5];
            p.in2_offset = offs[(m + 2 * s + 1) % 5];
            TE_CHECK(check_grid(p, "other input's multiplier and shift"));
            /* the same with the inputs swapped: in2 is the 0.5 input */
            p.in1_mult = mults[m];
            p.in1_shift = shifts[s];
            p.in2_mult = 1 << 30;
            p.in2_shift = 0;
            TE_CHECK(check_grid(p, "swapped inputs"));
        }
    }
    for (int m = 0; m < 5; ++m) {
        for (int ro = 0; ro <= 22; ++ro) {
            for (int z = 0; z < 2; ++z) {
                te_binary_params p = base;
                p.out_mult = mults[m];
                p.out_shift = -ro;
                p.out_offset = z ? 127 : -128;
                p.in1_offset = z ? 128 : -127;
                p.in2_offset = z ? -127 : 128;
                TE_CHECK(check_grid(p, "output multiplier and shift"));
            }
        }
    }
    /* both inputs 0.5 (equal scales) */
    {
        te_binary_params p = base;
        p.in2_mult = 1 << 30;
        p.in2_shift = 0;
        TE_CHECK(check_grid(p, "equal scales"));
    }
    /* outside the fast path's ranges: still exact, through the portable path */
    const struct {
        int field, value;
    } out_of_range[] = {{0, (1 << 30) - 1}, {1, -31}, {1, 1}, {2, (1 << 30) - 1}, {2, 0}, {3, -23},
                        {4, -129}, {4, 129}, {5, 200}, {6, 19}, {7, 1}};
    for (size_t i = 0; i < sizeof out_of_range / sizeof out_of_range[0]; ++i) {
        te_binary_params p = base;
        const int v = out_of_range[i].value;
        switch (out_of_range[i].field) {
            case 0: p.in2_mult = v; break;
            case 1: p.in2_shift = v; break;
            case 2: p.out_mult = v; break;
            case 3: p.out_shift = v; break;
            case 4: p.in1_offset = v; break;
            case 5: p.in1_mult = (1 << 30) + v; break; /* neither input is 0.5 */
            case 6: p.left_shift = v; break;
            default: p.op = TE_BINARY_SUB; break;
        }
        TE_CHECK(!check_grid(p, "out of range"));
    }
}

/* Short, odd and empty sizes, and the output written over an input (the element is read before it is
 * written, as the portable loop does). */
static void test_sizes_in_place(void) {
    te_binary_params p = tflm_add(0.02f, 0.05f, 0.06f, -128, 12, -128, -128, 127, 0);
    int8_t a[7], b[7], out[7], want[7];
    te_rand_s8(a, 7, -128, 127);
    te_rand_s8(b, 7, -128, 127);
    for (int n = 0; n <= 7; ++n) {
        p.size = n;
        memset(out, 0x33, sizeof out);
        te_binary_s8(&p, a, b, out);
        for (int i = 0; i < n; ++i) want[i] = te_binary_one(&p, a[i], b[i]);
        TE_CHECK_S8(out, want, n);
        TE_CHECK_EQ(out[n < 7 ? n : 6], n < 7 ? 0x33 : want[6]); /* nothing past the end */
    }
    p.size = 7;
    for (int i = 0; i < 7; ++i) want[i] = te_binary_one(&p, a[i], b[i]);
    te_binary_s8(&p, a, b, a);
    TE_CHECK_S8(a, want, 7);
}

int main(void) {
    fill_grid();
    test_random_tflm();
    test_extremes();
    test_sizes_in_place();
    return te_report("test_add_fast");
}

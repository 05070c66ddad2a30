/*
 * main.c - tinyedge command loop. Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged
 * into every generated project; te_version.h (generated) names the tinyedge version.
 *
 * Speaks the MLPerf Tiny DUT serial protocol (mlcommons/tiny benchmark/api) so the official
 * runner can drive this firmware unchanged, plus tinyedge extension commands prefixed "te-".
 * Every "te-" reply line carries "*XXXX": CRC-16/CCITT-FALSE of the line text before the '*'.
 * See docs/protocol.md for the grammar.
 *
 * No printf: numbers are formatted here so libc's formatter (and float printf) stay out of flash.
 *
 * Your code goes between a "USER CODE BEGIN x" and its "USER CODE END x" line (includes, definitions,
 * init, after_inference) or in files you add: `tinyedge generate` carries both over when it regenerates.
 */
#include <stddef.h>
#include <stdint.h>

#include "te_port.h"
#include "te_model.h"
#include "te_version.h"

/* USER CODE BEGIN includes */

/* USER CODE END includes */

/* Cold code is compiled for size (~3.3 KB less flash than -O2): the number formatters of m-results, the
 * te- and the protocol's other commands, the dispatcher and main's loop, between TE_SIZE_BEGIN and
 * TE_SIZE_END (or the end of the file). What runs inside MLPerf's timestamp window (infer_once, the input
 * copy, cmd_infer's loop, the m-lap-us digits) keeps the build's level, as do the model and the kernels
 * (other files). Only in builds that optimise for speed; -D TE_MAIN_NO_OS turns it off. Code you add in
 * the cold part (a USER CODE section after TE_SIZE_BEGIN) is compiled for size too. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE__) && !defined(__OPTIMIZE_SIZE__) && \
    !defined(TE_MAIN_NO_OS)
#define TE_SIZE_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"Os\")")
#define TE_SIZE_END _Pragma("GCC pop_options")
#else
#define TE_SIZE_BEGIN
#define TE_SIZE_END
#endif

#ifndef TE_FW_VERSION
#define TE_FW_VERSION TE_VERSION
#endif

/* The board port may expose the timer as macros (TE_TIMER_HZ/TE_TIMER_SOURCE) or as functions. */
#ifdef TE_TIMER_HZ
#define TE_HZ() ((uint32_t)(TE_TIMER_HZ))
#else
#define TE_HZ() te_timer_hz()
#endif
#ifdef TE_TIMER_SOURCE
#define TE_SRC() (TE_TIMER_SOURCE)
#else
#define TE_SRC() te_timer_source()
#endif

/* MLPerf Tiny timestamp mode, chosen at build time as in the reference firmware (EE_CFG_ENERGY_MODE):
 * 0 performance (`timestamp` prints m-lap-us-<us>), 1 energy (`timestamp` pulses the board's timestamp GPIO
 * through te_port_timestamp_pulse() and prints nothing; the UART runs at the energy baud). Set by
 * `tinyedge generate --energy-mode` (te_port.h) or -D TE_ENERGY_MODE=1 in platformio.ini's build_flags. */
#ifndef TE_ENERGY_MODE
#define TE_ENERGY_MODE 0
#endif
/* 1: m-lap-us is the board-clock estimate instructions / TE_CLOCK_HZ (emulated boards, where the timer
 * counts the emulator's virtual time, one instruction per ns under QEMU -icount shift=0); 0: the timer. */
#ifndef TE_TIMESTAMP_ESTIMATE
#define TE_TIMESTAMP_ESTIMATE (TE_EMULATED)
#endif
#ifndef TE_UART_BAUD
#define TE_UART_BAUD 0u /* a port without a UART (the host build) */
#endif

#define EE_FW_VERSION "ULPMark for tinyML Firmware V0.0.1"
/* Version of the te- extension grammar (docs/protocol.md); hosts check it in te-info. */
#define TE_PROTOCOL_VERSION 2u
#define CMD_MAX 80u  /* EE_CMD_SIZE of the reference API */
#define MAX_TOKENS 6u
/* Most inferences one `infer N W` (N and W each) or `te-stream N` may ask for. The MLPerf runner's
 * performance mode sizes N to fill about 10 s: a million covers a model of 10 us per inference, far
 * faster than any MCU model of the benchmark, while a typo such as `infer 99999999` is refused
 * instead of locking the device for hours. */
#define TE_MAX_ITERATIONS 1000000L
#define TE_MAX_ITERATIONS_TEXT "1000000"
/* Break byte: Ctrl-C (ETX). Received while `infer` or `te-stream` runs, it stops them between two
 * inferences (docs/protocol.md); anywhere else it is ignored. */
#define TE_BREAK_BYTE 0x03
#define TYPEAHEAD 128u /* bytes (not the break) kept when they arrive during a long command */

/* USER CODE BEGIN definitions */

/* USER CODE END definitions */

/* ------------------------------------------------------------------ output with running CRC */

static uint16_t g_crc;

static void crc_update(uint8_t b) {
    uint16_t crc = (uint16_t)(g_crc ^ (uint16_t)((uint16_t)b << 8));
    for (int i = 0; i < 8; i++) {
        crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    g_crc = crc;
}

/* CRC-16/CCITT-FALSE of a buffer (te-load checks and the input CRC in te-results). */
static uint16_t crc16_buf(const uint8_t *p, uint32_t n) {
    uint16_t saved = g_crc;
    g_crc = 0xFFFFu;
    for (uint32_t i = 0; i < n; i++) {
        crc_update(p[i]);
    }
    uint16_t crc = g_crc;
    g_crc = saved;
    return crc;
}

/* Every character of a reply goes through here so te- lines can be checksummed on the fly,
 * without buffering lines whose length depends on the model (te-results of a 640-output model). */
static void out_c(char c) {
    crc_update((uint8_t)c);
    te_port_putc(c);
}

static void out_s(const char *s) {
    while (*s) {
        out_c(*s++);
    }
}

static void out_u64(uint64_t v) {
    char buf[21];
    int n = 0;
    do {
        buf[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        out_c(buf[--n]);
    }
}

#if !TE_OUTPUT_IS_FLOAT /* int outputs only (te-results, te-stream); an undefined macro counts as 0 */
static void out_i32(int32_t v) {
    if (v < 0) {
        out_c('-');
        out_u64((uint64_t)(-(int64_t)v));
    } else {
        out_u64((uint64_t)v);
    }
}
#endif

static void out_hex16(uint16_t v) {
    static const char digits[] = "0123456789ABCDEF";
    for (int shift = 12; shift >= 0; shift -= 4) {
        out_c(digits[(v >> shift) & 0x0Fu]);
    }
}

static void out_hex8(uint8_t b) {
    static const char digits[] = "0123456789abcdef";
    out_c(digits[b >> 4]);
    out_c(digits[b & 0x0Fu]);
}

/* u64 / u32 by shift and subtract: the only 64-bit divisions in the firmware (timestamps, m-results), and
 * this loop is a few dozen bytes where libgcc's __udivmoddi4 is 700. */
static uint64_t div_u64_u32(uint64_t n, uint32_t d, uint32_t *rem) {
    uint64_t q = 0, r = 0;
    for (int i = 63; i >= 0; --i) {
        r = (r << 1) | ((n >> i) & 1u);
        if (r >= d) {
            r -= d;
            q |= (uint64_t)1 << i;
        }
    }
    *rem = (uint32_t)r;
    return q;
}

/* A float's IEEE-754 bits (a union: well defined in C99, compiled to a plain register move). */
static inline uint32_t f32_bits(float v) {
    union {
        float f;
        uint32_t u;
    } bits;
    bits.f = v;
    return bits.u;
}

TE_SIZE_BEGIN
/* Exactly what the reference's printf("%0.3f", (double)v) prints, for every float: v's exact binary value
 * rounded to three decimals, ties (exact halves such as 0.0625) to even as C libraries do ("0.062"),
 * "-" for every negative value including those that round to zero ("-0.000"), "inf" and "nan". No
 * floating-point arithmetic at all: the float's bits are a 24-bit integer m times 2^e. */
static void out_f3(float v) {
    const uint32_t u = f32_bits(v);
    const uint32_t exp_field = (u >> 23) & 0xFFu;
    const uint32_t mant = u & 0x7FFFFFu;
    if (u >> 31) {
        out_c('-');
    }
    if (exp_field == 0xFFu) {
        out_s(mant ? "nan" : "inf");
        return;
    }
    /* v = m * 2^e exactly (subnormals: no implicit bit, the smallest exponent). */
    const uint32_t m = exp_field ? (mant | 0x800000u) : mant;
    const int e = (exp_field ? (int)exp_field : 1) - 150;
    if (e >= 0) {
        /* An integer (v >= 2^23): the digits of m * 2^e and ".000". Past 64 bits (e > 40), doubled in
         * base-10^9 limbs: 5 limbs hold FLT_MAX (3.4e38). */
        if (e <= 40) {
            out_u64((uint64_t)m << e);
        } else {
            uint32_t limb[5] = {m % 1000000000u, m / 1000000000u, 0u, 0u, 0u};
            for (int i = 0; i < e; i++) {
                uint32_t carry = 0u;
                for (int k = 0; k < 5; k++) {
                    uint32_t d = limb[k] * 2u + carry;
                    carry = d >= 1000000000u;
                    limb[k] = carry ? d - 1000000000u : d;
                }
            }
            int top = 4;
            while (top > 0 && limb[top] == 0u) {
                top--;
            }
            out_u64(limb[top]);
            while (top-- > 0) {
                char digits[9];
                uint32_t x = limb[top];
                for (int k = 8; k >= 0; k--) {
                    digits[k] = (char)('0' + (int)(x % 10u));
                    x /= 10u;
                }
                for (int k = 0; k < 9; k++) {
                    out_c(digits[k]);
                }
            }
        }
        out_s(".000");
        return;
    }
    /* v * 1000 = m * 1000 / 2^k (k = -e >= 1), m * 1000 < 2^34: q its integer part, rest compared with the
     * half. From k = 36 on v * 1000 < 1/2 (never a tie): 0.000. */
    const uint32_t k = (uint32_t)(-e);
    uint64_t q = 0u;
    if (k < 36u) {
        const uint64_t x = (uint64_t)m * 1000u;
        const uint64_t rest = x & (((uint64_t)1 << k) - 1u);
        const uint64_t half = (uint64_t)1 << (k - 1u);
        q = x >> k;
        if (rest > half || (rest == half && (q & 1u))) {
            q++;
        }
    }
    uint32_t frac;
    const uint64_t whole = div_u64_u32(q, 1000u, &frac);
    out_u64(whole);
    out_c('.');
    out_c((char)('0' + frac / 100u));
    out_c((char)('0' + (frac / 10u) % 10u));
    out_c((char)('0' + frac % 10u));
}
TE_SIZE_END

static void line_begin(void) { g_crc = 0xFFFFu; }

static void line_end(void) {
    te_port_putc('\r');
    te_port_putc('\n');
}

/* Close a te- line: "*XXXX\r\n" (upper-case hex of the CRC of everything since line_begin). */
static void line_end_crc(void) {
    static const char digits[] = "0123456789ABCDEF";
    uint16_t crc = g_crc;
    te_port_putc('*');
    for (int shift = 12; shift >= 0; shift -= 4) {
        te_port_putc(digits[(crc >> shift) & 0x0Fu]);
    }
    line_end();
}

static void say(const char *s) {
    line_begin();
    out_s(s);
    line_end();
}

/* ------------------------------------------------------------------ small libc replacements */

static int str_eq(const char *a, const char *b) {
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

/* atoi as the reference uses it: optional sign, leading digits, 0 when there are none. */
static long parse_long(const char *s) {
    long sign = 1;
    long v = 0;
    if (*s == '-' || *s == '+') {
        sign = (*s == '-') ? -1 : 1;
        s++;
    }
    while (*s >= '0' && *s <= '9') {
        if (v < 100000000L) { /* saturate instead of overflowing */
            v = v * 10 + (*s - '0');
        }
        s++;
    }
    return sign * v;
}

static int hex_val(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* ------------------------------------------------------------------ state */

static uint8_t g_db[TE_INPUT_BYTES];       /* the reference's db buffer, sized to the model input */
static uint32_t g_db_size;                 /* N of the last "db load N" */
static uint32_t g_db_pos;                  /* bytes received since */
/* int16 model I/O (int16x8 models converted with int16 input/output): the input needs nothing (te-load and
 * db move raw bytes, two per value, little-endian); outputs are kept as int16, te-results prints them as
 * "out16=[...]" and te-info names the types. A header without the macros is int8: int8 firmware is unchanged. */
#ifndef TE_INPUT_IS_INT16
#define TE_INPUT_IS_INT16 0
#endif
#ifndef TE_OUTPUT_IS_INT16
#define TE_OUTPUT_IS_INT16 0
#endif
/* float32 I/O (a model converted without inference_input/output_type: QUANTIZE first, DEQUANTIZE last): a float
 * input is raw bytes too (four per value); float outputs are kept as floats and te-results prints each one's
 * IEEE bits ("outf=[...]", exact), m-results the float itself. Compiled only under TE_OUTPUT_IS_FLOAT. */
#ifndef TE_INPUT_IS_FLOAT
#define TE_INPUT_IS_FLOAT 0
#endif
#ifndef TE_OUTPUT_IS_FLOAT
#define TE_OUTPUT_IS_FLOAT 0
#endif
#if TE_OUTPUT_IS_FLOAT
typedef float te_out_t;
#elif TE_OUTPUT_IS_INT16
typedef int16_t te_out_t;
#else
typedef int8_t te_out_t;
#endif
static te_out_t g_last_out[TE_OUTPUT_COUNT]; /* outputs of the last inference */
static uint64_t g_last_ticks;              /* timer ticks of the last single inference */
static int g_have_results;
static uint16_t g_db_crc;                  /* CRC-16 of all of g_db, valid when g_db_crc_ok */
static int g_db_crc_ok;
static uint16_t g_last_in_crc;             /* CRC-16 of the input of the last inference */
static uint32_t g_layer_ticks[TE_NUM_LAYERS];
static int g_db_valid = 1;                 /* 0 after a rejected te-load: never infer on its bytes */
static uint8_t g_typeahead[TYPEAHEAD];     /* bytes received during a long command, read first */
static uint32_t g_ta_head, g_ta_len;
/* te_model_selftest() at boot: 0 ok, i + 1 for the first output byte that differs from the tflite_micro
 * interpreter's, negative without golden data (a model header from before the self-test: none). */
static int g_selftest = -2;

/* ------------------------------------------------------------------ input: typeahead and break */

/* The next received byte: typeahead first, then the port (blocking). */
static int next_byte(void) {
    if (g_ta_len) {
        int c = g_typeahead[g_ta_head];
        g_ta_head = (g_ta_head + 1u) % TYPEAHEAD;
        g_ta_len--;
        return c;
    }
    return te_port_getc();
}

/* Between two inferences of a long command: read what has arrived without blocking. Returns 1 when
 * the break byte came; other bytes are kept for the command loop (beyond TYPEAHEAD they are dropped,
 * as a UART without a reader would drop them). */
static int break_requested(void) {
    int brk = 0;
    for (;;) {
        int c = te_port_poll();
        if (c < 0) {
            return brk;
        }
        if (c == TE_BREAK_BYTE) {
            brk = 1;
        } else if (g_ta_len < TYPEAHEAD) {
            g_typeahead[(g_ta_head + g_ta_len) % TYPEAHEAD] = (uint8_t)c;
            g_ta_len++;
        }
    }
}

static void say_interrupted(const char *what, long done, long of) {
    line_begin();
    out_s("e-[");
    out_s(what);
    out_s(" interrupted after ");
    out_u64((uint64_t)done);
    out_s(" of ");
    out_u64((uint64_t)of);
    out_c(']');
    line_end();
}

/* 1 when the buffer holds an input to infer on; else says why not (e- line) and returns 0. */
static int input_valid(void) {
    if (!g_db_valid) {
        say("e-[No valid input: the last te-load was rejected; load the input again]");
    }
    return g_db_valid;
}

#ifndef TE_HOST
extern const char __te_flash_start[], __te_flash_end[], __te_ram_start[], __te_ram_end[];
#endif

static void copy_input(void) {
    /* Reload before every inference: the memory planner may reuse the input tensor's bytes. */
    if (!g_db_crc_ok) {
        g_db_crc = crc16_buf(g_db, TE_INPUT_BYTES);
        g_db_crc_ok = 1;
    }
    g_last_in_crc = g_db_crc;
    int8_t *in = te_model_input();
    for (uint32_t i = 0; i < TE_INPUT_BYTES; i++) {
        in[i] = (int8_t)g_db[i];
    }
}

static void keep_output(void) {
    const te_out_t *out = (const te_out_t *)(const void *)te_model_output();
    /* A block copy said outright: GCC makes one of an element loop only while it can prove the arena
     * and g_last_out apart, which depends on how the cold code uses g_last_out (2.5 K instructions for
     * 640 outputs inside MLPerf's window otherwise). */
    __builtin_memcpy(g_last_out, out, sizeof g_last_out);
    g_have_results = 1;
    /* USER CODE BEGIN after_inference */

    /* USER CODE END after_inference */
}

/* One inference on the loaded input; returns its ticks (the input copy is outside the window). */
static uint64_t infer_once(void) {
    copy_input();
    uint64_t t0 = te_timer_ticks();
    te_model_invoke();
    uint64_t t1 = te_timer_ticks();
    keep_output();
    g_last_ticks = t1 - t0;
    return g_last_ticks;
}

#if !TE_ENERGY_MODE
static uint64_t ticks_to_us(uint64_t ticks) {
    uint32_t hz = TE_HZ();
    if (hz == 0u) {
        return ticks;
    }
    uint32_t rem, unused;
    const uint64_t whole = div_u64_u32(ticks, hz, &rem);
    return whole * 1000000u + div_u64_u32((uint64_t)rem * 1000000u, hz, &unused);
}

/* The board-clock estimate of `ticks` in microseconds: instructions = ticks * 1e9 / timer_hz (one
 * instruction per ns of QEMU's virtual time), then instructions / clock_hz: the figure report.json calls
 * the latency estimate, so the MLPerf runner's throughput equals tinyedge's. Two exact 64/32 steps. */
static uint64_t ticks_to_estimate_us(uint64_t ticks) {
    const uint32_t hz = TE_HZ();
    const uint32_t clock = (uint32_t)(TE_CLOCK_HZ);
    if (hz == 0u || clock == 0u) {
        return ticks_to_us(ticks);
    }
    uint32_t rem, unused;
    uint64_t whole = div_u64_u32(ticks, hz, &rem);
    const uint64_t instructions = whole * 1000000000u + div_u64_u32((uint64_t)rem * 1000000000u, hz, &unused);
    whole = div_u64_u32(instructions, clock, &rem);
    return whole * 1000000u + div_u64_u32((uint64_t)rem * 1000000u, clock, &unused);
}

#endif /* !TE_ENERGY_MODE */

/* ------------------------------------------------------------------ MLPerf Tiny commands */

static void timestamp(void) {
#if TE_ENERGY_MODE
    /* Energy mode: the power monitor's interface board sees the edge; the reference prints nothing. */
    te_port_timestamp_pulse();
#else
    const uint64_t ticks = te_timer_ticks();
    const uint64_t us = (TE_TIMESTAMP_ESTIMATE) ? ticks_to_estimate_us(ticks) : ticks_to_us(ticks);
    line_begin();
    out_s("m-lap-us-");
    out_u64(us);
    line_end();
#endif
}

TE_SIZE_BEGIN
static void print_results(void) {
    line_begin();
    out_s("m-results-[");
    for (uint32_t i = 0; i < TE_OUTPUT_COUNT; i++) {
        if (i) {
            out_c(',');
        }
#if TE_OUTPUT_IS_FLOAT
        out_f3(g_last_out[i]); /* the model's own float: the reference prints its outputs with %0.3f */
#else
        float v = (float)((int32_t)g_last_out[i] - (int32_t)(TE_OUTPUT_ZERO_POINT)) * (float)(TE_OUTPUT_SCALE);
        out_f3(v);
#endif
    }
    out_c(']');
    line_end();
}
TE_SIZE_END

static void cmd_infer(char **tok, uint32_t ntok) {
    long n = 1;
    long w = 10; /* the reference's default warmup */
    if (ntok > 1) {
        n = parse_long(tok[1]);
        if (n <= 0) {
            say("e-[Inference iterations must be >0]");
            return;
        }
        if (n > TE_MAX_ITERATIONS) {
            say("e-[Inference iterations must be <=" TE_MAX_ITERATIONS_TEXT "]");
            return;
        }
        if (ntok > 2) {
            w = parse_long(tok[2]);
            if (w < 0) {
                say("e-[Inference warmup must be >=0]");
                return;
            }
            if (w > TE_MAX_ITERATIONS) {
                say("e-[Inference warmup must be <=" TE_MAX_ITERATIONS_TEXT "]");
                return;
            }
        }
    }
    if (!input_valid()) {
        return;
    }
    line_begin();
    out_s("m-warmup-start-");
    out_u64((uint64_t)w);
    line_end();
    for (long i = 0; i < w; i++) {
        if (i > 0 && break_requested()) {
            say_interrupted("infer warmup", i, w);
            return;
        }
        infer_once();
    }
    say("m-warmup-done");
    line_begin();
    out_s("m-infer-start-");
    out_u64((uint64_t)n);
    line_end();
    timestamp();
    for (long i = 0; i < n; i++) {
        /* one poll per inference: a register read on a board, inside the timed window (negligible) */
        if ((i > 0 || w > 0) && break_requested()) {
            say_interrupted("infer", i, n);
            return;
        }
        infer_once();
    }
    timestamp();
    say("m-infer-done");
    print_results();
}

/* Cold from here on: the other commands, the dispatcher and main's command loop. */
TE_SIZE_BEGIN

static void cmd_db(char **tok, uint32_t ntok) {
    if (ntok < 2) {
        say("e-[Command 'db' requires a subcommand]");
    } else if (str_eq(tok[1], "load")) {
        if (ntok < 3) {
            say("e-[Command 'db load' requires the # of bytes]");
            return;
        }
        long n = parse_long(tok[2]);
        if (n <= 0) {
            say("e-[Command 'db load' must be >0 bytes]");
        } else if (n > (long)TE_INPUT_BYTES) {
            /* The reference prints this without a prefix and overruns its buffer; refuse instead. */
            line_begin();
            out_s("e-[Supplied buffer size ");
            out_u64((uint64_t)n);
            out_s(" exceeds maximum of ");
            out_u64((uint64_t)TE_INPUT_BYTES);
            out_c(']');
            line_end();
        } else {
            g_db_size = (uint32_t)n;
            g_db_pos = 0;
            line_begin();
            out_s("m-[Expecting ");
            out_u64((uint64_t)n);
            out_s(" bytes]");
            line_end();
        }
    } else if (str_eq(tok[1], "print")) {
        for (uint32_t i = 0; i < g_db_size; i++) {
            if (i % 8u == 0u) {
                line_begin();
                out_s("m-buffer-");
            }
            out_hex8(g_db[i]);
            if ((i + 1u) % 8u == 0u || i + 1u == g_db_size) {
                line_end();
            } else {
                out_c('-');
            }
        }
    } else {
        const char *hex = tok[1];
        /* Whole pairs, then whatever is left: a plain strlen loop here becomes a call that links
         * libc's 220-byte strlen. */
        uint32_t len = 0;
        while (hex[len] && hex[len + 1u]) {
            len += 2u;
        }
        if (hex[len]) {
            say("e-[Insufficent number of hex digits]"); /* sic: the reference's spelling */
            return;
        }
        /* Validate first so a bad line changes nothing. */
        for (uint32_t i = 0; i < len; i += 2u) {
            if (hex_val(hex[i]) < 0 || hex_val(hex[i + 1u]) < 0) {
                line_begin();
                out_s("e-[Invalid hex digit '");
                out_c(hex[i]);
                out_c(hex[i + 1u]);
                out_s("']");
                line_end();
                return;
            }
        }
        if (g_db_pos >= g_db_size) {
            say("e-[No bytes expected: send 'db load N' first]");
            return;
        }
        g_db_crc_ok = 0;
        for (uint32_t i = 0; i < len; i += 2u) {
            g_db[g_db_pos++] = (uint8_t)((hex_val(hex[i]) << 4) | hex_val(hex[i + 1u]));
            if (g_db_pos == g_db_size) {
                g_db_valid = 1;
                say("m-load-done");
                return; /* the reference disregards the remaining digits */
            }
        }
    }
}

static void cmd_help(void) {
    say(EE_FW_VERSION);
    say("");
    say("help         : Print this information");
    say("name         : Print the name of the device");
#if TE_ENERGY_MODE
    say("timestamp    : Generate a timestamp (energy mode: a GPIO pulse)");
#else
    say("timestamp    : Generate a timestamp");
#endif
    say("db SUBCMD    : Manipulate a generic byte buffer");
    say("  load N     : Allocate N bytes and set load counter");
    say("  db HH[HH]* : Load 8-bit hex byte(s) until N bytes");
    say("  print      : Print the buffer as hex");
    say("infer N [W=10]: Load input, execute N inferences after W warmup loops");
    say("results      : Return the result fp32 vector");
    say("te-info      : tinyedge: board, timer, model and memory facts (CRC-checked)");
    say("te-load N C  : tinyedge: then a COBS frame of N input bytes whose CRC-16 is C (hex)");
    say("te-infer     : tinyedge: one inference, answered like te-results");
    say("te-results   : tinyedge: int8 outputs and ticks of the last inference");
    say("te-profile   : tinyedge: one inference with per-layer ticks");
    say("te-stream N  : tinyedge: N inferences, one line each");
    say("Ctrl-C (0x03): stop a running infer or te-stream");
}

/* ------------------------------------------------------------------ tinyedge extensions */

/* te-info sends one key per line, so a noisy link loses single facts, not the whole reply: a host
 * re-asks and merges lines until it has every key (the last line says how many there are). */
static void info_str(const char *key, const char *value) {
    line_begin();
    out_s("te-info-");
    out_s(key);
    out_c('=');
    out_s(value);
    line_end_crc();
}

static void info_u64(const char *key, uint64_t value) {
    line_begin();
    out_s("te-info-");
    out_s(key);
    out_c('=');
    out_u64(value);
    line_end_crc();
}

#if TE_INPUT_IS_INT16 || TE_OUTPUT_IS_INT16 || TE_INPUT_IS_FLOAT || TE_OUTPUT_IS_FLOAT
#define TE_INFO_KEYS 22u /* + input_dtype, output_dtype (absent: int8 or float32 as the model file says) */
#else
#define TE_INFO_KEYS 20u
#endif

/* te-info-timestamp: what `timestamp` / m-lap-us report. estimate@<clock_hz>: instructions / clock_hz (an
 * emulated board); timer: the board timer; energy: a GPIO pulse, no text (energy mode). */
static void info_timestamp(void) {
    line_begin();
    out_s("te-info-timestamp=");
#if TE_ENERGY_MODE
    out_s("energy");
#else
    if (TE_TIMESTAMP_ESTIMATE) {
        out_s("estimate@");
        out_u64((uint64_t)(TE_CLOCK_HZ));
    } else {
        out_s("timer");
    }
#endif
    line_end_crc();
}

/* te-info-selftest=ok | fail@<first differing output byte> | none */
static void info_selftest(void) {
    line_begin();
    out_s("te-info-selftest=");
    if (g_selftest == 0) {
        out_s("ok");
    } else if (g_selftest > 0) {
        out_s("fail@");
        out_u64((uint64_t)(g_selftest - 1));
    } else {
        out_s("none");
    }
    line_end_crc();
}

static void cmd_te_info(void) {
    uint64_t flash = 0, ram = 0;
#ifndef TE_HOST
    flash = (uint64_t)(uintptr_t)(__te_flash_end - __te_flash_start);
    ram = (uint64_t)(uintptr_t)(__te_ram_end - __te_ram_start);
#endif
    info_str("board", TE_BOARD_ID);
    info_u64("clock_hz", (uint64_t)(TE_CLOCK_HZ));
    info_str("timer", TE_SRC());
    info_u64("timer_hz", (uint64_t)TE_HZ());
    info_u64("emulated", (TE_EMULATED) ? 1u : 0u);
    info_u64("arena_bytes", (uint64_t)(TE_ARENA_BYTES));
    info_u64("input_bytes", (uint64_t)(TE_INPUT_BYTES));
    info_u64("output_count", (uint64_t)(TE_OUTPUT_COUNT));
    info_u64("layers", (uint64_t)(TE_NUM_LAYERS));
    info_u64("flash_bytes", flash);
    info_u64("ram_bytes", ram);
    info_str("model", TE_MODEL_NAME);
    info_str("mlperf_model", TE_MLPERF_MODEL_ID);
    info_str("model_sha256", TE_MODEL_SHA256);
    info_str("version", TE_FW_VERSION);
    info_u64("protocol", (uint64_t)TE_PROTOCOL_VERSION);
    info_selftest();
    info_timestamp();
    info_u64("baud", (uint64_t)(TE_UART_BAUD));
#if TE_INPUT_IS_INT16 || TE_OUTPUT_IS_INT16 || TE_INPUT_IS_FLOAT || TE_OUTPUT_IS_FLOAT
    info_str("input_dtype", TE_INPUT_DTYPE);
    info_str("output_dtype", TE_OUTPUT_DTYPE);
#endif
    info_u64("keys", (uint64_t)TE_INFO_KEYS);
}

#if TE_OUTPUT_IS_FLOAT
/* A float output exactly: its IEEE-754 bits as 8 upper-case hex digits (3F800000 is 1.0), so the host
 * rebuilds the identical float32 (NaN payloads and -0.0 included) without any decimal conversion. */
static void out_f32_bits(float v) {
    const uint32_t u = f32_bits(v);
    out_hex16((uint16_t)(u >> 16));
    out_hex16((uint16_t)(u & 0xFFFFu));
}
#endif

static void cmd_te_results(void) {
    if (!g_have_results) {
        say("e-[No inference has run yet: send 'infer 1 0' first]");
        return;
    }
    line_begin();
    out_s("te-results-ticks=");
    out_u64(g_last_ticks);
#if TE_OUTPUT_IS_FLOAT
    out_s(",outf=[");
#elif TE_OUTPUT_IS_INT16
    out_s(",out16=[");
#else
    out_s(",out=[");
#endif
    for (uint32_t i = 0; i < TE_OUTPUT_COUNT; i++) {
        if (i) {
            out_c(',');
        }
#if TE_OUTPUT_IS_FLOAT
        out_f32_bits(g_last_out[i]);
#else
        out_i32(g_last_out[i]);
#endif
    }
    out_s("],in_crc=");
    out_hex16(g_last_in_crc);
    line_end_crc();
}

static void cmd_te_infer(void) {
    if (!input_valid()) {
        return;
    }
    infer_once();
    cmd_te_results();
}

/* te-load N C: the N input bytes follow the '%' as one COBS frame ended by a 0x00 byte. The frame is
 * always read up to its 0x00, even when the arguments are wrong, so its bytes are never taken for
 * commands; a host that gets no answer sends 0x00 to end a frame whose terminator was lost. */
static void cmd_te_load(char **tok, uint32_t ntok) {
    long n = ntok > 1 ? parse_long(tok[1]) : 0;
    int32_t want = -1;
    if (ntok > 2) {
        const char *h = tok[2];
        uint32_t k = 0;
        want = 0;
        for (; h[k]; k++) {
            int v = hex_val(h[k]);
            if (v < 0 || k >= 4u) {
                want = -1;
                break;
            }
            want = (want << 4) | v;
        }
        if (k != 4u) {
            want = -1;
        }
    }
    int ok_args = n > 0 && n <= (long)TE_INPUT_BYTES && want >= 0;
    /* Streaming COBS decode straight into the db buffer. */
    uint32_t pos = 0;
    int overflow = 0;
    int zero_pending = 0;
    for (;;) {
        int code = next_byte();
        if (code <= 0) {
            break; /* 0x00 ends the frame */
        }
        if (zero_pending) {
            if (pos < (uint32_t)n && ok_args) {
                g_db[pos] = 0u;
            }
            pos++;
            zero_pending = 0;
        }
        int ended = 0;
        for (int i = 1; i < code; i++) {
            int b = next_byte();
            if (b <= 0) {
                ended = 1;
                break;
            }
            if (ok_args && pos < (uint32_t)n) {
                g_db[pos] = (uint8_t)b;
            } else {
                overflow = 1;
            }
            pos++;
        }
        if (ended) {
            overflow = 1; /* a frame cut inside a block is malformed */
            break;
        }
        zero_pending = code < 0xFF;
    }
    if (!ok_args) {
        /* nothing was stored: the state is unchanged */
        if (n > (long)TE_INPUT_BYTES) {
            line_begin();
            out_s("e-[te-load: ");
            out_u64((uint64_t)n);
            out_s(" bytes exceed the input size ");
            out_u64((uint64_t)TE_INPUT_BYTES);
            out_c(']');
            line_end();
        } else {
            say("e-[te-load needs a byte count >0 and a 4-digit hex CRC, e.g. 'te-load 490 1D0F']");
        }
        return;
    }
    g_db_crc_ok = 0;
    uint16_t got = crc16_buf(g_db, (uint32_t)n);
    if (overflow || pos != (uint32_t)n || got != (uint16_t)want) {
        g_db_size = 0; /* the buffer holds a broken input: send it again */
        g_db_pos = 0;
        g_db_valid = 0;
        line_begin();
        out_s("e-[te-load: frame gave ");
        out_u64((uint64_t)pos);
        out_s(" bytes, CRC ");
        out_hex16(pos == (uint32_t)n ? got : 0u);
        out_s(", expected ");
        out_u64((uint64_t)n);
        out_s(" bytes, CRC ");
        out_hex16((uint16_t)want);
        out_c(']');
        line_end();
        return;
    }
    g_db_size = (uint32_t)n;
    g_db_pos = (uint32_t)n;
    g_db_valid = 1;
    line_begin();
    out_s("te-load-");
    out_u64((uint64_t)n);
    out_c(',');
    out_hex16(got);
    line_end_crc();
}

/* Layer names come from the model file: keep the line grammar intact whatever they contain. */
static void out_name(const char *s) {
    for (; *s; s++) {
        char c = *s;
        out_c((c > ' ' && c < 127 && c != '*' && c != ',' && c != '%') ? c : '_');
    }
}

static void cmd_te_profile(void) {
    if (!input_valid()) {
        return;
    }
    copy_input();
    uint64_t t0 = te_timer_ticks();
    te_model_invoke_profiled(te_timer_ticks, g_layer_ticks);
    uint64_t t1 = te_timer_ticks();
    keep_output();
    g_last_ticks = t1 - t0;
    for (uint32_t i = 0; i < TE_NUM_LAYERS; i++) {
        line_begin();
        out_s("te-profile-");
        out_u64(i);
        out_c('-');
        out_name(te_layer_names[i]);
        out_c('-');
        out_u64(g_layer_ticks[i]);
        line_end_crc();
    }
    line_begin();
    out_s("te-profile-total-");
    out_u64(g_last_ticks);
    line_end_crc();
}

static void cmd_te_stream(char **tok, uint32_t ntok) {
    long n = ntok > 1 ? parse_long(tok[1]) : 0;
    if (n <= 0) {
        say("e-[te-stream needs a count >0, e.g. 'te-stream 10']");
        return;
    }
    if (n > TE_MAX_ITERATIONS) {
        say("e-[te-stream count must be <=" TE_MAX_ITERATIONS_TEXT "]");
        return;
    }
    if (!input_valid()) {
        return;
    }
    for (long seq = 0; seq < n; seq++) {
        if (seq > 0 && break_requested()) {
            say_interrupted("te-stream", seq, n);
            return;
        }
        uint64_t ticks = infer_once();
        uint32_t top = 0;
        for (uint32_t i = 1; i < TE_OUTPUT_COUNT; i++) {
            if (g_last_out[i] > g_last_out[top]) {
                top = i;
            }
        }
        line_begin();
        out_s("te-s-");
        out_u64((uint64_t)seq);
        out_c(',');
        out_u64(ticks);
        out_c(',');
        out_u64(top);
        out_c(',');
#if TE_OUTPUT_IS_FLOAT
        out_c('f'); /* a float score: 'f' and its IEEE bits, as te-results' outf */
        out_f32_bits(g_last_out[top]);
#else
        out_i32(g_last_out[top]);
#endif
        line_end_crc();
    }
}

/* ------------------------------------------------------------------ dispatch */

static void dispatch(char *cmd) {
    char *tok[MAX_TOKENS];
    uint32_t ntok = 0;
    char *p = cmd;
    /* Split on spaces like the reference's strtok(" "): runs of spaces separate tokens. */
    while (*p && ntok < MAX_TOKENS) {
        while (*p == ' ') {
            *p++ = '\0';
        }
        if (!*p) {
            break;
        }
        tok[ntok++] = p;
        while (*p && *p != ' ') {
            p++;
        }
    }
    if (ntok == 0) {
        /* An empty command ("%") only answers m-ready: a cheap way for a host to resynchronise. */
    } else if (str_eq(tok[0], "name")) {
        say("m-name-dut-[tinyedge]");
    } else if (str_eq(tok[0], "timestamp")) {
        timestamp();
    } else if (str_eq(tok[0], "profile")) {
        say("m-profile-[" EE_FW_VERSION "]");
        say("m-model-[" TE_MLPERF_MODEL_ID "]");
    } else if (str_eq(tok[0], "help")) {
        cmd_help();
    } else if (str_eq(tok[0], "db")) {
        cmd_db(tok, ntok);
    } else if (str_eq(tok[0], "infer")) {
        cmd_infer(tok, ntok);
    } else if (str_eq(tok[0], "results")) {
        print_results();
    } else if (str_eq(tok[0], "te-info")) {
        cmd_te_info();
    } else if (str_eq(tok[0], "te-results")) {
        cmd_te_results();
    } else if (str_eq(tok[0], "te-infer")) {
        cmd_te_infer();
    } else if (str_eq(tok[0], "te-load")) {
        cmd_te_load(tok, ntok);
    } else if (str_eq(tok[0], "te-profile")) {
        cmd_te_profile();
    } else if (str_eq(tok[0], "te-stream")) {
        cmd_te_stream(tok, ntok);
    } else {
        line_begin();
        out_s("e-[Unknown command: ");
        for (const char *q = tok[0]; *q; q++) {
            out_c((*q >= ' ' && *q < 127) ? *q : '?');
        }
        out_c(']');
        line_end();
    }
    say("m-ready");
}

int main(void) {
    static char cmd[CMD_MAX + 1];
    uint32_t len = 0;
    int overflow = 0;

    te_port_init();
#if defined(TE_HAS_SELFTEST) && TE_HAS_SELFTEST
    /* The golden input through the model before anything else: a wrong compiler flag, a misplaced arena or a
     * broken port shows in te-info as selftest=fail@<i> before a single real input is trusted. */
    g_selftest = te_model_selftest();
#endif
    /* USER CODE BEGIN init */

    /* USER CODE END init */
#if TE_ENERGY_MODE
    say("m-timestamp-mode-energy");
#else
    say("m-timestamp-mode-performance");
#endif
    say("m-init-done");
    say("m-ready");
    for (;;) {
        int c = next_byte();
        if (c == '%') {
            cmd[len] = '\0';
            if (overflow) {
                say("e-[Command too long: at most 80 characters before '%']");
                say("m-ready");
            } else {
                dispatch(cmd);
            }
            len = 0;
            overflow = 0;
        } else if (c == '\r' || c == '\n' || c <= 0 || c == TE_BREAK_BYTE) {
            /* line endings from terminals are not part of commands; NUL (a host ending a te-load
             * frame whose terminator was lost) and a break with nothing to stop are ignored too */
        } else if (len < CMD_MAX) {
            cmd[len++] = (char)c;
        } else {
            overflow = 1;
        }
    }
    return 0;
}

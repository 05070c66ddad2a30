/* Host harness: the generated inference code (te_model.h/.c) and the same kernels, compiled for the
 * host. Reads inputs (TE_INPUT_BYTES each) from stdin, writes outputs (TE_OUTPUT_BYTES each) to stdout:
 * int8 values, or float32 ones for a model with float I/O (TE_INPUT_IS_FLOAT, TE_OUTPUT_IS_FLOAT).
 *   te_host < inputs.bin > outputs.bin
 *   te_host --bench N < input.bin      (prints mean ns per inference to stderr)
 * Part of tinyedge's C runtime (tinyedge/runtime/); generated projects get it as host/te_host_main.c. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "te_model.h"

static double te_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    long bench = 0;
    if (argc == 3 && strcmp(argv[1], "--bench") == 0) bench = strtol(argv[2], NULL, 10);
    /* The arena reuses the input's bytes once the first layer has read them, so every
     * inference starts from a saved copy (as the firmware's db buffer does). */
    static int8_t saved[TE_INPUT_BYTES];
    int8_t *in = te_model_input();
    if (bench > 0) {
        if (fread(saved, 1, TE_INPUT_BYTES, stdin) != TE_INPUT_BYTES) return 2;
        memcpy(in, saved, TE_INPUT_BYTES);
        te_model_invoke(); /* warm up caches */
        const double t0 = te_now_ns();
        for (long i = 0; i < bench; ++i) {
            memcpy(in, saved, TE_INPUT_BYTES);
            te_model_invoke();
        }
        const double t1 = te_now_ns();
        fprintf(stderr, "%.1f\n", (t1 - t0) / (double)bench);
        fwrite(te_model_output(), 1, TE_OUTPUT_BYTES, stdout);
        return 0;
    }
    while (fread(in, 1, TE_INPUT_BYTES, stdin) == TE_INPUT_BYTES) {
        te_model_invoke();
        fwrite(te_model_output(), 1, TE_OUTPUT_BYTES, stdout);
    }
    return 0;
}

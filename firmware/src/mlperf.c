/*
 * mlperf.c - MLPerf Tiny / EEMBC runner mode: ASCII commands ending in '%', replies as "m-..."
 * lines (the th_ / ee_ API of the MLPerf Tiny reference firmware), each command closed by
 * "m-ready". Commands: name, profile, help, timestamp, db load N, db HEX..., db print,
 * infer N [W], results (docs/protocol.md).
 *
 * m-results carries what the runner scores (it divides the vector by its sum and takes the
 * argmax): the softmax of the dequantized integer outputs in float32, 3 decimals, the top-1 class
 * rounded up and every other class down (docs/semantics.md, "MLPerf runner output"); ad01 prints
 * one number, the mean squared reconstruction error. The framed protocol keeps the integers.
 * Build-time settings (STQ_MLPERF_*) come from stq_board_config.h (`stq build --mlperf-model`).
 * The float code assumes no FMA contraction (-std=c99 sets -ffp-contract=off in gcc).
 */
#include <stdint.h>
#include <string.h>

#include "model.h"
#include "stq_firmware.h"
#include "stq_protocol.h"

#ifndef STQ_MLPERF_MODEL_ID /* a config header without MLPerf settings */
#define STQ_MLPERF_MODEL_ID "ic01"
#define STQ_MLPERF_AD01 0
#define STQ_MLPERF_ENERGY 0
#define STQ_MLPERF_OUTPUT_SCALE 1.0f
#define STQ_MLPERF_OUTPUT_UNSIGNED 0
#define STQ_MLPERF_INPUT_STEP 1.0f
#define STQ_MLPERF_RAW_BYTES 0u
#define STQ_MLPERF_INPUT_LUT {0}
#endif
/* Keep-alive: during infer, a line "m-infer-progress-<i>" after an inference once this many
 * counter microseconds passed without output (the runner gives up after 5 s of wall-time
 * silence). Under QEMU 20 ms of virtual time is about 0.1-0.2 s of wall time; on silicon 2 s
 * (one 20-byte line per 2 s, < 0.1 % of the timed window at 115200 baud). 0 = never. */
#ifndef STQ_MLPERF_KEEPALIVE_US
#define STQ_MLPERF_KEEPALIVE_US (STQ_BOARD_EMULATED ? 20000u : 2000000u)
#endif

#if STQ_MLPERF_ENERGY
#define STQ_MLPERF_MODE "energy"
#else
#define STQ_MLPERF_MODE "performance"
#endif

#define STQ_MLPERF_LINE_MAX 1024u

static char stq_line[STQ_MLPERF_LINE_MAX + 1u];
static uint32_t stq_line_len;
static int stq_line_overflow;
static uint32_t stq_db_expected; /* bytes announced by "db load N" */
static uint32_t stq_db_loaded;
static int stq_db_convert; /* the bytes are uint8 pixels of a dataset image: map through the LUT */
static int stq_db_high_nibble_pending;
static uint8_t stq_db_high_nibble;
static uint64_t stq_last_line_us;
#if STQ_MLPERF_RAW_BYTES
static const uint8_t stq_mlperf_input_lut[256] = STQ_MLPERF_INPUT_LUT;
#endif

static void stq_m_line(const char *s)
{
    stq_uart_puts(s);
    stq_uart_puts("\r\n");
}

static uint64_t stq_now_us(void)
{
    return stq_counter_ticks() / ((uint64_t)STQ_BOARD_CLOCK_HZ / 1000000u);
}

/* th_timestamp: m-lap-us-<us> in performance builds; a GPIO pulse and no text in energy builds */
static void stq_timestamp(void)
{
#if STQ_MLPERF_ENERGY
    stq_timestamp_pulse();
#else
    stq_uart_puts("m-lap-us-");
    stq_uart_put_u64(stq_now_us());
    stq_uart_puts("\r\n");
#endif
}

/* --- m-results ------------------------------------------------------------------------------ */

static int32_t stq_output_q(uint32_t i)
{
    const uint8_t *out = (const uint8_t *)stq_model_output();
    if (STQ_OUTPUT_ELEM_BYTES == 4u) {
        return (int32_t)((uint32_t)out[4u * i] | ((uint32_t)out[4u * i + 1u] << 8) |
                         ((uint32_t)out[4u * i + 2u] << 16) | ((uint32_t)out[4u * i + 3u] << 24));
    }
    return STQ_MLPERF_OUTPUT_UNSIGNED ? (int32_t)out[i] : (int32_t)(int8_t)out[i];
}

typedef union {
    float f;
    uint32_t u;
} stq_f32_bits_t;

#if !STQ_MLPERF_AD01
/* exp(t) for t <= 0: 2^k * p(f) with y = t*log2(e), k = floor(y + 1/2), f = y - k, p the
 * degree-6 Taylor polynomial of 2^f (coefficients ln(2)^n/n! as float32), 0 below -80. */
static float stq_exp_neg(float t)
{
    if (t < -80.0f) {
        return 0.0f;
    }
    const float y = t * 0x1.715476p+0f;
    const float h = y + 0.5f;
    int32_t k = (int32_t)h;
    if ((float)k > h) {
        k -= 1;
    }
    const float f = y - (float)k;
    float p = 0x1.430912p-13f;
    p = p * f + 0x1.5d87fep-10f;
    p = p * f + 0x1.3b2ab6p-7f;
    p = p * f + 0x1.c6b08ep-5f;
    p = p * f + 0x1.ebfbe0p-3f;
    p = p * f + 0x1.62e430p-1f;
    p = p * f + 0x1p+0f;
    stq_f32_bits_t two_k;
    two_k.u = (uint32_t)(k + 127) << 23;
    return p * two_k.f;
}
#endif

/* x >= 0 with exactly 3 decimals, from its bits: mode 0 rounds down, 1 up, 2 to nearest (half
 * up). No printf. */
static void stq_put_fixed3(float x, int mode)
{
    stq_f32_bits_t b;
    b.f = x;
    const uint32_t e = (b.u >> 23) & 0xFFu;
    uint64_t m = b.u & 0x7FFFFFu;
    int32_t exp2 = -149;
    uint64_t n;
    if ((b.u >> 31) != 0u || e == 0xFFu) {
        m = 0; /* negative or NaN: not produced here */
    } else if (e != 0u) {
        m |= 0x800000u;
        exp2 = (int32_t)e - 150;
    }
    const uint64_t v = m * 1000u;
    if (exp2 >= 0) {
        n = v << (exp2 > 29 ? 29 : exp2);
    } else if (-exp2 >= 64) {
        n = (mode == 1 && v != 0u) ? 1u : 0u;
    } else {
        const uint32_t sh = (uint32_t)-exp2;
        const uint64_t rem = v & ((1ull << sh) - 1u);
        n = v >> sh;
        if (mode == 1 && rem != 0u) {
            n += 1u;
        } else if (mode == 2 && rem >= (1ull << (sh - 1u))) {
            n += 1u;
        }
    }
    const uint32_t frac = (uint32_t)(n % 1000u);
    stq_uart_put_u64(n / 1000u);
    stq_uart_putc('.');
    stq_uart_putc((uint8_t)('0' + frac / 100u));
    stq_uart_putc((uint8_t)('0' + frac / 10u % 10u));
    stq_uart_putc((uint8_t)('0' + frac % 10u));
}

#if STQ_MLPERF_AD01
/* mean of (output - input)^2, both dequantized, in float32 in index order */
static float stq_reconstruction_mse(void)
{
    float sum = 0.0f;
    const uint32_t n = STQ_OUTPUT_COUNT < STQ_INPUT_BYTES ? STQ_OUTPUT_COUNT : STQ_INPUT_BYTES;
    for (uint32_t i = 0; i < n; ++i) {
        const int32_t qi = STQ_INPUT_SIGNED ? (int32_t)(int8_t)stq_input_copy[i]
                                            : (int32_t)stq_input_copy[i];
        const float d = (float)stq_output_q(i) * STQ_MLPERF_OUTPUT_SCALE -
                        (float)qi * STQ_MLPERF_INPUT_STEP;
        sum = sum + d * d;
    }
    return sum / (float)n;
}
#endif

static void stq_m_results(void)
{
    stq_uart_puts("m-results-[");
#if STQ_MLPERF_AD01
    stq_put_fixed3(stq_reconstruction_mse(), 2);
#else
    static float e[STQ_OUTPUT_COUNT];
    uint32_t top = 0;
    for (uint32_t i = 1; i < (uint32_t)STQ_OUTPUT_COUNT; ++i) {
        if (stq_output_q(i) > stq_output_q(top)) {
            top = i; /* the first largest, as stq_model_argmax */
        }
    }
    const int64_t qmax = stq_output_q(top);
    float sum = 0.0f;
    for (uint32_t i = 0; i < (uint32_t)STQ_OUTPUT_COUNT; ++i) {
        e[i] = stq_exp_neg((float)((int64_t)stq_output_q(i) - qmax) * STQ_MLPERF_OUTPUT_SCALE);
        sum = sum + e[i];
    }
    for (uint32_t i = 0; i < (uint32_t)STQ_OUTPUT_COUNT; ++i) {
        if (i != 0u) {
            stq_uart_putc(',');
        }
        stq_put_fixed3(e[i] / sum, i == top ? 1 : 0);
    }
#endif
    stq_uart_puts("]\r\n");
}

/* --- commands ------------------------------------------------------------------------------- */

/* Parse a decimal number at *p (skipping spaces): -1 when there is none, -2 when the token is
 * not a number or does not fit 32 bits. */
static int64_t stq_parse_u32(const char **p)
{
    while (**p == ' ') {
        ++*p;
    }
    if (**p == '\0') {
        return -1;
    }
    uint64_t v = 0;
    const char *start = *p;
    while (**p >= '0' && **p <= '9') {
        v = v * 10u + (uint64_t)(**p - '0');
        if (v > 0xFFFFFFFFu) {
            return -2;
        }
        ++*p;
    }
    if (*p == start || (**p != ' ' && **p != '\0')) {
        return -2;
    }
    return (int64_t)v;
}

static int stq_hex_value(char c)
{
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

static void stq_db_load(const char *p)
{
    const int64_t n = stq_parse_u32(&p);
    if (n == -1) {
        stq_m_line("e-[Command 'db load' requires the # of bytes]");
        return;
    }
    if (n == 0 || n == -2) {
        stq_m_line("e-[Command 'db load' must be >0 bytes]");
        return;
    }
    if (n > (int64_t)STQ_INPUT_BYTES) {
        stq_uart_puts("e-[Supplied buffer size ");
        stq_uart_put_u64((uint64_t)n);
        stq_uart_puts(" exceeds maximum of ");
        stq_uart_put_u64(STQ_INPUT_BYTES);
        stq_uart_puts("]\r\n");
        return;
    }
    stq_db_expected = (uint32_t)n;
    stq_db_loaded = 0;
    stq_db_convert = STQ_MLPERF_RAW_BYTES != 0u && (uint32_t)n == STQ_MLPERF_RAW_BYTES;
    stq_db_high_nibble_pending = 0;
    stq_uart_puts("m-[Expecting ");
    stq_uart_put_u64((uint64_t)n);
    stq_uart_puts(" bytes]\r\n");
}

/* the loaded buffer (as the model sees it, after the input conversion), 8 bytes a line */
static void stq_db_print(void)
{
    static const char digits[] = "0123456789abcdef";
    for (uint32_t i = 0; i < stq_db_expected; ++i) {
        if (i % 8u == 0u) {
            stq_uart_puts("m-buffer-");
        }
        stq_uart_putc((uint8_t)digits[stq_input_copy[i] >> 4]);
        stq_uart_putc((uint8_t)digits[stq_input_copy[i] & 0xFu]);
        stq_uart_puts((i % 8u == 7u || i + 1u == stq_db_expected) ? "\r\n" : "-");
    }
}

static void stq_cmd_db(const char *args)
{
    if (strncmp(args, "load", 4) == 0 && (args[4] == ' ' || args[4] == '\0')) {
        stq_db_load(args + 4);
        return;
    }
    if (strncmp(args, "print", 5) == 0 && (args[5] == ' ' || args[5] == '\0')) {
        stq_db_print();
        return;
    }
    for (const char *p = args; *p != '\0'; ++p) {
        const int h = stq_hex_value(*p);
        if (h < 0) {
            if (*p == ' ') {
                continue;
            }
            stq_m_line("e-[db: not a hex digit]");
            return;
        }
        if (!stq_db_high_nibble_pending) {
            stq_db_high_nibble = (uint8_t)h;
            stq_db_high_nibble_pending = 1;
            continue;
        }
        stq_db_high_nibble_pending = 0;
        if (stq_db_loaded >= stq_db_expected) {
            stq_m_line("e-[db: more bytes than announced]");
            return;
        }
        uint8_t byte = (uint8_t)((stq_db_high_nibble << 4) | h);
#if STQ_MLPERF_RAW_BYTES
        if (stq_db_convert) {
            byte = stq_mlperf_input_lut[byte];
        }
#endif
        stq_input_copy[stq_db_loaded++] = byte;
        if (stq_db_loaded == stq_db_expected) {
            stq_m_line("m-load-done");
        }
    }
}

static void stq_keepalive(uint64_t i)
{
    if (STQ_MLPERF_KEEPALIVE_US == 0u) {
        return;
    }
    const uint64_t now = stq_now_us();
    if (now - stq_last_line_us >= STQ_MLPERF_KEEPALIVE_US) {
        stq_uart_puts("m-infer-progress-");
        stq_uart_put_u64(i);
        stq_uart_puts("\r\n");
        stq_last_line_us = now;
    }
}

static void stq_cmd_infer(const char *args)
{
    const char *p = args;
    int64_t n = stq_parse_u32(&p);
    int64_t warmup = stq_parse_u32(&p);
    n = n == -1 ? 1 : n; /* the reference's defaults: 1 inference after 10 warm-ups */
    warmup = warmup == -1 ? 10 : warmup;
    if (n <= 0) {
        stq_m_line("e-[Inference iterations must be >0]");
        return;
    }
    if (warmup < 0) {
        stq_m_line("e-[Inference warmup must be >=0]");
        return;
    }
    stq_run_result_t r;
    stq_uart_puts("m-warmup-start-");
    stq_uart_put_u64((uint64_t)warmup);
    stq_uart_puts("\r\n");
    stq_last_line_us = stq_now_us();
    for (int64_t i = 0; i < warmup; ++i) {
        stq_run_input(stq_input_copy, 0, 0, &r);
        stq_keepalive((uint64_t)i);
    }
    stq_m_line("m-warmup-done");
    stq_uart_puts("m-infer-start-");
    stq_uart_put_u64((uint64_t)n);
    stq_uart_puts("\r\n");
    stq_timestamp();
    stq_last_line_us = stq_now_us();
    for (int64_t i = 0; i < n; ++i) {
        stq_run_input(stq_input_copy, 0, 0, &r);
        if (i + 1 < n) {
            stq_keepalive((uint64_t)i);
        }
    }
    stq_timestamp();
    stq_m_line("m-infer-done");
    stq_m_results();
}

static void stq_cmd_help(void)
{
    stq_m_line("ULPMark for tinyML Firmware V0.0.1");
    stq_m_line("");
    stq_m_line("help         : Print this information");
    stq_m_line("name         : Print the name of the device");
    stq_m_line("timestsamp   : Generate a timetsamp");
    stq_m_line("db SUBCMD    : Manipulate a generic byte buffer");
    stq_m_line("  load N     : Allocate N bytes and set load counter");
    stq_m_line("  db HH[HH]* : Load 8-bit hex byte(s) until N bytes");
    stq_m_line("  print [N=16] [offset=0]");
    stq_m_line("             : Print N bytes at offset as hex");
    stq_m_line("infer N [W=0]: Load input, execute N inferences after W warmup loops");
    stq_m_line("results      : Return the result fp32 vector");
}

static void stq_mlperf_command(char *line)
{
    if (strcmp(line, "name") == 0) {
        stq_m_line("m-name-dut-[stq " STQ_MODEL_NAME " " STQ_BOARD_NAME "]");
    } else if (strcmp(line, "profile") == 0) {
        stq_m_line("m-profile-[stq " STQ_MODEL_NAME " " STQ_BOARD_NAME " build " STQ_BUILD_ID
                   " ulp-mlperf " STQ_MLPERF_MODE "]");
        stq_m_line("m-model-[" STQ_MLPERF_MODEL_ID "]");
    } else if (strcmp(line, "help") == 0) {
        stq_cmd_help();
    } else if (strcmp(line, "timestamp") == 0) {
        stq_timestamp();
    } else if (strcmp(line, "db") == 0) {
        stq_m_line("e-[Command 'db' requires a subcommand]");
    } else if (strncmp(line, "db ", 3) == 0) {
        stq_cmd_db(line + 3);
    } else if (strncmp(line, "infer", 5) == 0 && (line[5] == ' ' || line[5] == '\0')) {
        stq_cmd_infer(line + 5);
    } else if (strcmp(line, "results") == 0) {
        stq_m_results();
    } else {
        stq_uart_puts("e-[Unknown command: ");
        stq_uart_puts(line);
        stq_uart_puts("]\r\n");
    }
    stq_m_line("m-ready");
}

int stq_mlperf_feed(uint8_t c)
{
    if (c == 0u) { /* a frame delimiter: this was line noise, not a runner command */
        stq_line_len = 0;
        stq_line_overflow = 0;
        return 0;
    }
    if (c != '%') {
        if (c == '\r' || c == '\n') {
            return 1;
        }
        if (stq_line_len < STQ_MLPERF_LINE_MAX && c >= 0x20u && c < 0x7Fu) {
            stq_line[stq_line_len++] = (char)c;
        } else {
            stq_line_overflow = 1;
        }
        return 1;
    }
    stq_line[stq_line_len] = '\0';
    if (stq_line_overflow) {
        stq_m_line("e-[command too long or not ASCII]");
        stq_m_line("m-ready");
    } else {
        stq_mlperf_command(stq_line);
    }
    stq_line_len = 0;
    stq_line_overflow = 0;
    return 0;
}

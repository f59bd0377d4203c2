/*
 * mlperf.c - MLPerf Tiny / EEMBC runner compatibility: ASCII commands ending in '%', replies
 * as "m-..." lines (the th_ / ee_ API of the MLPerf Tiny reference firmware), each command
 * closed by "m-ready". Supported: name, profile, db load N, db HEX..., infer N W, results.
 */
#include <stdint.h>
#include <string.h>

#include "model.h"
#include "stq_firmware.h"
#include "stq_protocol.h"

#define STQ_MLPERF_LINE_MAX 1024u

static char stq_line[STQ_MLPERF_LINE_MAX + 1u];
static uint32_t stq_line_len;
static int stq_line_overflow;
static uint32_t stq_db_expected; /* bytes announced by "db load N" */
static uint32_t stq_db_loaded;
static int stq_db_high_nibble_pending;
static uint8_t stq_db_high_nibble;

static void stq_m_line(const char *s)
{
    stq_uart_puts(s);
    stq_uart_puts("\r\n");
}

static void stq_put_i32(int32_t v)
{
    if (v < 0) {
        stq_uart_putc('-');
        stq_uart_put_u64((uint64_t)(-(int64_t)v));
    } else {
        stq_uart_put_u64((uint64_t)v);
    }
}

static void stq_m_lap(void)
{
    /* microseconds since boot: counter ticks over the counter clock */
    stq_uart_puts("m-lap-us-");
    stq_uart_put_u64(stq_counter_ticks() / ((uint64_t)STQ_BOARD_CLOCK_HZ / 1000000u));
    stq_uart_puts("\r\n");
}

static void stq_m_results(void)
{
    const uint8_t *out = (const uint8_t *)stq_model_output();
    stq_uart_puts("m-results-[");
    for (uint32_t i = 0; i < (uint32_t)STQ_OUTPUT_COUNT; ++i) {
        int32_t v;
        if (STQ_OUTPUT_ELEM_BYTES == 4u) {
            v = (int32_t)((uint32_t)out[4u * i] | ((uint32_t)out[4u * i + 1u] << 8) |
                          ((uint32_t)out[4u * i + 2u] << 16) | ((uint32_t)out[4u * i + 3u] << 24));
        } else {
            v = (int32_t)(int8_t)out[i];
        }
        if (i != 0u) {
            stq_uart_putc(',');
        }
        stq_put_i32(v);
    }
    stq_uart_puts("]\r\n");
}

/* Parse a decimal number at *p (skipping spaces); -1 when there is none or it overflows. */
static int64_t stq_parse_u32(const char **p)
{
    while (**p == ' ') {
        ++*p;
    }
    if (**p < '0' || **p > '9') {
        return -1;
    }
    uint64_t v = 0;
    while (**p >= '0' && **p <= '9') {
        v = v * 10u + (uint64_t)(**p - '0');
        if (v > 0xFFFFFFFFu) {
            return -1;
        }
        ++*p;
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

static void stq_cmd_db(const char *args)
{
    if (strncmp(args, "load", 4) == 0) {
        const char *p = args + 4;
        const int64_t n = stq_parse_u32(&p);
        if (n < 0 || n > (int64_t)STQ_INPUT_BYTES) {
            stq_uart_puts("e-[db load: expected 1..");
            stq_uart_put_u64(STQ_INPUT_BYTES);
            stq_uart_puts(" bytes]\r\n");
            return;
        }
        stq_db_expected = (uint32_t)n;
        stq_db_loaded = 0;
        stq_db_high_nibble_pending = 0;
        stq_uart_puts("m-[Expecting ");
        stq_uart_put_u64((uint64_t)n);
        stq_uart_puts(" bytes]\r\n");
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
        stq_input_copy[stq_db_loaded++] = (uint8_t)((stq_db_high_nibble << 4) | h);
        if (stq_db_loaded == stq_db_expected) {
            stq_m_line("m-load-done");
        }
    }
}

static void stq_cmd_infer(const char *args)
{
    const char *p = args;
    const int64_t n = stq_parse_u32(&p);
    int64_t warmup = stq_parse_u32(&p);
    if (n < 1) {
        stq_m_line("e-[infer: usage infer N [W]]");
        return;
    }
    if (warmup < 0) {
        warmup = 0;
    }
    stq_run_result_t r;
    stq_uart_puts("m-warmup-start-");
    stq_uart_put_u64((uint64_t)warmup);
    stq_uart_puts("\r\n");
    for (int64_t i = 0; i < warmup; ++i) {
        stq_run_input(0, 0, &r);
    }
    stq_m_line("m-warmup-done");
    stq_uart_puts("m-infer-start-");
    stq_uart_put_u64((uint64_t)n);
    stq_uart_puts("\r\n");
    stq_m_lap();
    for (int64_t i = 0; i < n; ++i) {
        stq_run_input(0, 0, &r);
    }
    stq_m_lap();
    stq_m_line("m-infer-done");
    stq_m_results();
}

static void stq_mlperf_command(char *line)
{
    if (strcmp(line, "name") == 0) {
        stq_m_line("m-name-dut-[stq " STQ_MODEL_NAME " " STQ_BOARD_NAME "]");
    } else if (strcmp(line, "profile") == 0) {
        stq_m_line("m-profile-[ulp-mlperf]");
        stq_m_line("m-model-[" STQ_MODEL_NAME "]");
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

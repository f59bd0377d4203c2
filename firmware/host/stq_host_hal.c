/*
 * stq_host_hal.c - the "virtual board": the firmware's board, UART and counter functions for a
 * POSIX host, so firmware/src/{main,protocol,mlperf,protocol_text,link,text}.c and the generated
 * model run unchanged as a host process. The UART is file descriptors 0 (receive) and 1
 * (transmit), a pty in practice; the counter is CLOCK_MONOTONIC in nanoseconds (the generated
 * stq_board_config.h sets STQ_BOARD_CLOCK_HZ to 1e9); instructions are unknown (0).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "stq_firmware.h"

static uint8_t stq_tx_buf[4096];
static size_t stq_tx_len;
static uint8_t stq_rx_buf[4096];
static size_t stq_rx_pos, stq_rx_len;
static uint64_t stq_t0;

static void stq_tx_flush(void)
{
    size_t done = 0;
    while (done < stq_tx_len) {
        const ssize_t n = write(1, stq_tx_buf + done, stq_tx_len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            _exit(4); /* the host side went away */
        }
        done += (size_t)n;
    }
    stq_tx_len = 0;
}

void stq_board_init(void) {}
void stq_uart_init(void) {}
/* The pty buffers more than this; a full buffer blocks the writer, nothing is lost. */
uint32_t stq_uart_rx_capacity(void) { return 4096u; }
uint32_t stq_uart_rx_dropped(void) { return 0u; }

void stq_uart_putc(uint8_t c)
{
    if (stq_tx_len == sizeof stq_tx_buf) {
        stq_tx_flush();
    }
    stq_tx_buf[stq_tx_len++] = c;
}

void stq_uart_write(const void *data, uint32_t bytes)
{
    const uint8_t *p = (const uint8_t *)data;
    for (uint32_t i = 0; i < bytes; ++i) {
        stq_uart_putc(p[i]);
    }
}

uint8_t stq_uart_getc(void)
{
    if (stq_rx_pos == stq_rx_len) {
        stq_tx_flush(); /* everything said so far goes out before waiting */
        for (;;) {
            const ssize_t n = read(0, stq_rx_buf, sizeof stq_rx_buf);
            if (n > 0) {
                stq_rx_len = (size_t)n;
                break;
            }
            if (n < 0 && errno == EINTR) {
                continue;
            }
            _exit(0); /* end of input: the host closed the line */
        }
        stq_rx_pos = 0;
    }
    return stq_rx_buf[stq_rx_pos++];
}

static uint64_t stq_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void stq_counter_init(void)
{
    stq_t0 = stq_now_ns();
}

void stq_counter_restart(void)
{
    stq_t0 = stq_now_ns();
}

uint64_t stq_counter_ticks(void)
{
    return stq_now_ns() - stq_t0;
}

int stq_counter_has_instructions(void)
{
    return 0;
}

uint32_t stq_counter_instructions(void)
{
    return 0u;
}

const char *stq_counter_name(void)
{
    return "clock_gettime";
}

void stq_semihost_exit(uint32_t code)
{
    stq_tx_flush();
    exit((int)code);
}

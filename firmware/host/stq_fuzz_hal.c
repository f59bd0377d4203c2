/*
 * stq_fuzz_hal.c - a silent host HAL for the parser fuzzers (stq_fuzz_main.c, stq_libfuzzer.c):
 * replies are counted and every byte of them is read (so AddressSanitizer checks the bounds),
 * nothing is sent anywhere; the counter is a constant.
 */
#include <stdint.h>
#include <stdlib.h>

#include "stq_firmware.h"

uint64_t stq_fuzz_out_bytes;

void stq_board_init(void) {}
void stq_uart_init(void) {}
void stq_uart_putc(uint8_t c) { (void)c; stq_fuzz_out_bytes++; }
void stq_uart_write(const void *data, uint32_t bytes)
{
    const volatile uint8_t *p = (const volatile uint8_t *)data;
    for (uint32_t i = 0; i < bytes; ++i) {
        (void)p[i]; /* read every byte: ASan checks the bounds */
        stq_fuzz_out_bytes++;
    }
}
uint8_t stq_uart_getc(void) { abort(); }
uint32_t stq_uart_rx_capacity(void) { return 1024u; }
uint32_t stq_uart_rx_dropped(void) { return 0u; }
void stq_counter_init(void) {}
void stq_counter_restart(void) {}
uint64_t stq_counter_ticks(void) { return 12345u; }
int stq_counter_has_instructions(void) { return 0; }
uint32_t stq_counter_instructions(void) { return 0u; }
const char *stq_counter_name(void) { return "fuzz"; }
void stq_semihost_exit(uint32_t code) { exit((int)code); }


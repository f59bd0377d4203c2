/*
 * uart_rx.c - interrupt-driven receive ring and blocking reads that sleep with WFI.
 * NVIC_ISER0 at 0xE000E100 (Armv7-M ARM B3.4.4; the same on Armv8-M).
 */
#include <stdint.h>

#include "stq_firmware.h"
#include "stq_uart_rx.h"

#define STQ_NVIC_ISER0 0xE000E100u
#ifndef STQ_UART_RX_RING
#define STQ_UART_RX_RING 1024u /* power of two; reported in INFO (the host's send window) */
#endif

static volatile uint8_t stq_uart_rx_ring[STQ_UART_RX_RING];
static volatile uint32_t stq_uart_rx_head; /* written by the interrupt */
static volatile uint32_t stq_uart_rx_tail; /* written by stq_uart_getc */
static volatile uint32_t stq_uart_rx_drops; /* bytes lost to a full ring */

void stq_uart_rx_push(uint8_t c)
{
    const uint32_t head = stq_uart_rx_head;
    if (head - stq_uart_rx_tail < STQ_UART_RX_RING) {
        stq_uart_rx_ring[head % STQ_UART_RX_RING] = c;
        stq_uart_rx_head = head + 1u;
    } else {
        stq_uart_rx_drops = stq_uart_rx_drops + 1u;
    }
}

uint32_t stq_uart_rx_capacity(void)
{
    return STQ_UART_RX_RING;
}

uint32_t stq_uart_rx_dropped(void)
{
    return stq_uart_rx_drops;
}

void stq_uart_rx_enable_irq(void)
{
    STQ_REG(STQ_NVIC_ISER0 + 4u * ((uint32_t)STQ_UART_IRQN / 32u)) =
        1u << ((uint32_t)STQ_UART_IRQN % 32u);
}

uint8_t stq_uart_getc(void)
{
    /* PRIMASK set around the check: WFI still wakes on the pending interrupt, so a byte that
     * arrives between the check and the WFI cannot be missed. */
    for (;;) {
        __asm__ volatile("cpsid i" ::: "memory");
        if (stq_uart_rx_head != stq_uart_rx_tail) {
            __asm__ volatile("cpsie i" ::: "memory");
            break;
        }
        __asm__ volatile("wfi\n\tcpsie i\n\tisb" ::: "memory");
    }
    const uint32_t tail = stq_uart_rx_tail;
    const uint8_t c = stq_uart_rx_ring[tail % STQ_UART_RX_RING];
    stq_uart_rx_tail = tail + 1u;
    return c;
}

void stq_uart_write(const void *data, uint32_t bytes)
{
    const uint8_t *p = (const uint8_t *)data;
    for (uint32_t i = 0; i < bytes; ++i) {
        stq_uart_putc(p[i]);
    }
}

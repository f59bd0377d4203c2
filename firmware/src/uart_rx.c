/*
 * uart_rx.c - interrupt-driven receive ring and blocking reads that sleep with WFI.
 * NVIC_ISER0 at 0xE000E100, NVIC_ICER0 at 0xE000E180 (Armv7-M ARM B3.4.4; the same on
 * Armv8-M).
 */
#include <stdint.h>

#include "stq_firmware.h"
#include "stq_uart_rx.h"

#define STQ_NVIC_ISER0 0xE000E100u
#define STQ_NVIC_ICER0 0xE000E180u
#define STQ_UART_IRQ_WORD (4u * ((uint32_t)STQ_UART_IRQN / 32u))
#define STQ_UART_IRQ_BIT (1u << ((uint32_t)STQ_UART_IRQN % 32u))
#ifndef STQ_UART_RX_RING
#define STQ_UART_RX_RING 1024u /* power of two; reported in INFO (the host's send window) */
#endif

static volatile uint8_t stq_uart_rx_ring[STQ_UART_RX_RING];
static volatile uint32_t stq_uart_rx_head; /* written by the interrupt */
static volatile uint32_t stq_uart_rx_tail; /* written by stq_uart_getc */
static volatile uint32_t stq_uart_rx_drops; /* bytes lost to a full ring */
static volatile uint32_t stq_uart_rx_held;  /* the interrupt is disabled: the ring was full */

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

int stq_uart_rx_hold(void)
{
    if (stq_uart_rx_head - stq_uart_rx_tail < STQ_UART_RX_RING) {
        return 0;
    }
    stq_uart_rx_held = 1u;
    STQ_REG(STQ_NVIC_ICER0 + STQ_UART_IRQ_WORD) = STQ_UART_IRQ_BIT;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    return 1;
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
    STQ_REG(STQ_NVIC_ISER0 + STQ_UART_IRQ_WORD) = STQ_UART_IRQ_BIT;
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
    /* the interrupt cannot come while held (it is disabled), so this needs no PRIMASK */
    if (stq_uart_rx_held != 0u && stq_uart_rx_head - (tail + 1u) <= STQ_UART_RX_RING / 2u) {
        stq_uart_rx_held = 0u;
        if (stq_uart_rx_overrun()) {
            stq_uart_rx_drops = stq_uart_rx_drops + 1u; /* at least one */
        }
        stq_uart_rx_enable_irq(); /* the byte left waiting raises it at once */
    }
    return c;
}

void stq_uart_write(const void *data, uint32_t bytes)
{
    const uint8_t *p = (const uint8_t *)data;
    for (uint32_t i = 0; i < bytes; ++i) {
        stq_uart_putc(p[i]);
    }
}

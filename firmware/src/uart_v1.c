/*
 * uart_v1.c - STM32F4 USART (RM0090 30.6, RM0390 25.6): SR 0x00 (TXE bit 7, RXNE bit 5,
 * ORE bit 3), DR 0x04, BRR 0x08 (USARTDIV * 16 with OVER8 = 0), CR1 0x0C (UE bit 13,
 * RXNEIE bit 5, TE bit 3, RE bit 2).
 */
#include <stdint.h>

#include "stq_firmware.h"
#include "stq_uart_rx.h"

#define STQ_USART_SR (STQ_UART_BASE + 0x00u)
#define STQ_USART_DR (STQ_UART_BASE + 0x04u)
#define STQ_USART_BRR (STQ_UART_BASE + 0x08u)
#define STQ_USART_CR1 (STQ_UART_BASE + 0x0Cu)
#define STQ_USART_SR_TXE (1u << 7)
#define STQ_USART_SR_RXNE (1u << 5)
#define STQ_USART_SR_ORE (1u << 3)

void stq_uart_init(void)
{
    STQ_REG(STQ_USART_CR1) = 0u;
    STQ_REG(STQ_USART_BRR) = (STQ_UART_CLOCK_HZ + STQ_UART_BAUD / 2u) / STQ_UART_BAUD;
    STQ_REG(STQ_USART_CR1) = (1u << 13) | (1u << 5) | (1u << 3) | (1u << 2);
    stq_uart_rx_enable_irq();
}

void stq_uart_putc(uint8_t c)
{
    while (!(STQ_REG(STQ_USART_SR) & STQ_USART_SR_TXE)) {
    }
    STQ_REG(STQ_USART_DR) = c;
}

int stq_uart_rx_overrun(void)
{
    return (STQ_REG(STQ_USART_SR) & STQ_USART_SR_ORE) != 0u;
}

void stq_uart_irq_handler(void)
{
    uint32_t sr = STQ_REG(STQ_USART_SR);
    while (sr & (STQ_USART_SR_RXNE | STQ_USART_SR_ORE)) {
        if (stq_uart_rx_hold()) {
            return; /* the ring is full: the byte waits in DR */
        }
        /* Reading DR after SR clears RXNE and ORE (RM0090 30.6.1). */
        const uint8_t c = (uint8_t)STQ_REG(STQ_USART_DR);
        if (sr & STQ_USART_SR_RXNE) {
            stq_uart_rx_push(c);
        }
        sr = STQ_REG(STQ_USART_SR);
    }
}

/*
 * uart_v2.c - STM32L4/H7/U5 USART and LPUART (RM0432 54.7 / 55.7, RM0433 48.7, RM0456 66.8):
 * CR1 0x00 (UE bit 0, RE bit 2, TE bit 3, RXNEIE bit 5), BRR 0x0C, ISR 0x1C (ORE bit 3,
 * RXNE bit 5, TXE bit 7), ICR 0x20 (ORECF bit 3), RDR 0x24, TDR 0x28. FIFOs stay disabled.
 * BRR = fck / baud for a USART with OVER8 = 0, 256 * fck / baud for an LPUART.
 */
#include <stdint.h>

#include "stq_firmware.h"
#include "stq_uart_rx.h"

#define STQ_USART_CR1 (STQ_UART_BASE + 0x00u)
#define STQ_USART_BRR (STQ_UART_BASE + 0x0Cu)
#define STQ_USART_ISR (STQ_UART_BASE + 0x1Cu)
#define STQ_USART_ICR (STQ_UART_BASE + 0x20u)
#define STQ_USART_RDR (STQ_UART_BASE + 0x24u)
#define STQ_USART_TDR (STQ_UART_BASE + 0x28u)
#define STQ_USART_ISR_TXE (1u << 7)
#define STQ_USART_ISR_RXNE (1u << 5)
#define STQ_USART_ISR_ORE (1u << 3)

void stq_uart_init(void)
{
    STQ_REG(STQ_USART_CR1) = 0u;
#if STQ_UART_LPUART
    STQ_REG(STQ_USART_BRR) =
        (uint32_t)(((uint64_t)STQ_UART_CLOCK_HZ * 256u + STQ_UART_BAUD / 2u) / STQ_UART_BAUD);
#else
    STQ_REG(STQ_USART_BRR) = (STQ_UART_CLOCK_HZ + STQ_UART_BAUD / 2u) / STQ_UART_BAUD;
#endif
    STQ_REG(STQ_USART_CR1) = (1u << 5) | (1u << 3) | (1u << 2) | (1u << 0);
    stq_uart_rx_enable_irq();
}

void stq_uart_putc(uint8_t c)
{
    while (!(STQ_REG(STQ_USART_ISR) & STQ_USART_ISR_TXE)) {
    }
    STQ_REG(STQ_USART_TDR) = c;
}

int stq_uart_rx_overrun(void)
{
    return (STQ_REG(STQ_USART_ISR) & STQ_USART_ISR_ORE) != 0u;
}

void stq_uart_irq_handler(void)
{
    uint32_t isr = STQ_REG(STQ_USART_ISR);
    while (isr & (STQ_USART_ISR_RXNE | STQ_USART_ISR_ORE)) {
        if (stq_uart_rx_hold()) {
            return; /* the ring is full: the byte waits in RDR */
        }
        if (isr & STQ_USART_ISR_ORE) {
            STQ_REG(STQ_USART_ICR) = STQ_USART_ISR_ORE; /* ORECF */
        }
        if (isr & STQ_USART_ISR_RXNE) {
            stq_uart_rx_push((uint8_t)STQ_REG(STQ_USART_RDR));
        }
        isr = STQ_REG(STQ_USART_ISR);
    }
}

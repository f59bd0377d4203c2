/* stq_uart_rx.h - private: the receive ring shared by uart_v1.c and uart_v2.c. */
#ifndef STQ_UART_RX_H
#define STQ_UART_RX_H

#include <stdint.h>

/* Called from the UART interrupt with each received byte (drops it when the ring is full). */
void stq_uart_rx_push(uint8_t c);
/* Called from the UART interrupt before it reads a byte: 1 when the ring has no room. The
 * handler then returns and leaves the byte in the UART, with the UART's interrupt disabled in
 * the NVIC; stq_uart_getc enables it again once the ring is half empty. QEMU's UART takes no
 * next byte while one waits unread, so the sender is held off and nothing is lost; on
 * silicon the bytes that arrive meanwhile overrun the UART (counted in the drops). The NVIC,
 * not the UART's RXNEIE: QEMU's UART keeps its interrupt line raised when RXNEIE is cleared,
 * and the handler would be entered again at once, forever. */
int stq_uart_rx_hold(void);
/* The driver's: 1 when the UART lost a byte to an overrun since the last read. */
int stq_uart_rx_overrun(void);
/* Enable the UART interrupt line STQ_UART_IRQN in the NVIC. */
void stq_uart_rx_enable_irq(void);

#endif /* STQ_UART_RX_H */

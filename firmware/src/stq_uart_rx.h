/* stq_uart_rx.h - private: the receive ring shared by uart_v1.c and uart_v2.c. */
#ifndef STQ_UART_RX_H
#define STQ_UART_RX_H

#include <stdint.h>

/* Called from the UART interrupt with each received byte (drops it when the ring is full). */
void stq_uart_rx_push(uint8_t c);
/* Enable the UART interrupt line STQ_UART_IRQN in the NVIC. */
void stq_uart_rx_enable_irq(void);

#endif /* STQ_UART_RX_H */

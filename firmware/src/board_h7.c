/*
 * board_h7.c - STM32H743: run from the reset clock (HSI 64 MHz, all D1/D2/D3 prescalers 1, so
 * rcc_pclk1 = 64 MHz feeds USART3, RM0433 8.5.2 and 8.7.21), enable the GPIO ports and the
 * UART. RCC registers: RM0433 8.7, RCC at 0x58024400 (RM0433 2.3.2).
 */
#include <stdint.h>

#include "stq_firmware.h"

#define STQ_RCC_BASE 0x58024400u
#define STQ_RCC_AHB4ENR (STQ_RCC_BASE + 0x0E0u)  /* RM0433 8.7.43: GPIOxEN = bit x */
#define STQ_RCC_APB1LENR (STQ_RCC_BASE + 0x0E8u) /* RM0433 8.7.44: USART3EN bit 18 */
#define STQ_RCC_APB2ENR (STQ_RCC_BASE + 0x0F0u)  /* RM0433 8.7.46: USART1EN bit 4 */

void stq_board_gpio_clock_enable(uint32_t port)
{
    STQ_REG(STQ_RCC_AHB4ENR) |= (1u << port);
    (void)STQ_REG(STQ_RCC_AHB4ENR);
}

void stq_board_init(void)
{
    stq_uart_pins_init(STQ_UART_RCC_ENR);
}

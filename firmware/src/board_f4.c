/*
 * board_f4.c - STM32F405/F446: run from HSI 16 MHz (the reset clock), enable the UART's GPIO
 * ports and the UART. RCC registers: RM0090 7.3 (F405) and RM0390 6.3 (F446), RCC at
 * 0x40023800 (RM0090 2.3). Under QEMU RCC reads 0 and ignores writes: every wait is bounded.
 */
#include <stdint.h>

#include "stq_firmware.h"

#define STQ_RCC_BASE 0x40023800u
#define STQ_RCC_CR (STQ_RCC_BASE + 0x00u)      /* RM0090 7.3.1: HSION bit 0, HSIRDY bit 1 */
#define STQ_RCC_CFGR (STQ_RCC_BASE + 0x08u)    /* RM0090 7.3.3: SW[1:0], 00 = HSI */
#define STQ_RCC_AHB1ENR (STQ_RCC_BASE + 0x30u) /* RM0090 7.3.10: GPIOxEN = bit x */
#define STQ_RCC_APB1ENR (STQ_RCC_BASE + 0x40u) /* RM0090 7.3.13 */
#define STQ_RCC_APB2ENR (STQ_RCC_BASE + 0x44u) /* RM0090 7.3.14 */

#define STQ_READY_SPINS 100000u

void stq_board_gpio_clock_enable(uint32_t port)
{
    STQ_REG(STQ_RCC_AHB1ENR) |= (1u << port);
    (void)STQ_REG(STQ_RCC_AHB1ENR); /* RM0090 7.3: wait two cycles after enabling a clock */
}

void stq_board_init(void)
{
    STQ_REG(STQ_RCC_CR) |= (1u << 0); /* HSION */
    for (uint32_t i = 0; i < STQ_READY_SPINS && !(STQ_REG(STQ_RCC_CR) & (1u << 1)); ++i) {
    }
    STQ_REG(STQ_RCC_CFGR) &= ~0x3u; /* SW = HSI, AHB/APB prescalers untouched (1) */

    stq_uart_pins_init(STQ_UART_RCC_ENR);
}

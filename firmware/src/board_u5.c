/*
 * board_u5.c - STM32U575: switch SYSCLK from MSIS 4 MHz to HSI16 (flash latency raised
 * first), enable the GPIO ports and the UART. RCC registers: RM0456 11.8, RCC at 0x46020C00
 * (non-secure alias, RM0456 2.3); FLASH_ACR: RM0456 7.9.1, FLASH at 0x40022000.
 */
#include <stdint.h>

#include "stq_firmware.h"

#define STQ_RCC_BASE 0x46020C00u
#define STQ_RCC_CR (STQ_RCC_BASE + 0x000u)       /* RM0456 11.8.1: HSION bit 8, HSIRDY bit 10 */
#define STQ_RCC_CFGR1 (STQ_RCC_BASE + 0x01Cu)    /* RM0456 11.8.7: SW[1:0] 01 = HSI16 */
#define STQ_RCC_AHB2ENR1 (STQ_RCC_BASE + 0x08Cu) /* RM0456 11.8.30: GPIOxEN = bit x */
#define STQ_RCC_APB1ENR1 (STQ_RCC_BASE + 0x09Cu) /* RM0456 11.8.32 */
#define STQ_RCC_APB1ENR2 (STQ_RCC_BASE + 0x0A0u) /* RM0456 11.8.33 */
#define STQ_RCC_APB2ENR (STQ_RCC_BASE + 0x0A4u)  /* RM0456 11.8.34: USART1EN bit 14 */
#define STQ_FLASH_ACR 0x40022000u                /* RM0456 7.9.1: LATENCY[3:0] */

#define STQ_READY_SPINS 100000u

void stq_board_gpio_clock_enable(uint32_t port)
{
    STQ_REG(STQ_RCC_AHB2ENR1) |= (1u << port);
    (void)STQ_REG(STQ_RCC_AHB2ENR1);
}

void stq_board_init(void)
{
    /* Two wait states are enough for 16 MHz in every voltage range (RM0456 7.3.3). */
    STQ_REG(STQ_FLASH_ACR) = (STQ_REG(STQ_FLASH_ACR) & ~0xFu) | 0x2u;
    STQ_REG(STQ_RCC_CR) |= (1u << 8); /* HSION */
    for (uint32_t i = 0; i < STQ_READY_SPINS && !(STQ_REG(STQ_RCC_CR) & (1u << 10)); ++i) {
    }
    STQ_REG(STQ_RCC_CFGR1) = (STQ_REG(STQ_RCC_CFGR1) & ~0x3u) | 0x1u;
    for (uint32_t i = 0; i < STQ_READY_SPINS && (STQ_REG(STQ_RCC_CFGR1) & 0xCu) != 0x4u; ++i) {
    }

    stq_uart_pins_init(STQ_UART_RCC_ENR);
}

/*
 * board_l4.c - STM32L4R5: switch SYSCLK from MSI 4 MHz to HSI16, enable VDDIO2 when the UART
 * sits on port G (LPUART1 on PG7/PG8 on the Nucleo), enable the GPIO ports and the UART.
 * RCC registers: RM0432 6.4, RCC at 0x40021000; PWR: RM0432 5.4, PWR at 0x40007000.
 */
#include <stdint.h>

#include "stq_firmware.h"

#define STQ_RCC_BASE 0x40021000u
#define STQ_RCC_CR (STQ_RCC_BASE + 0x00u)       /* RM0432 6.4.1: HSION bit 8, HSIRDY bit 10 */
#define STQ_RCC_CFGR (STQ_RCC_BASE + 0x08u)     /* RM0432 6.4.3: SW[1:0] 01 = HSI16, SWS[3:2] */
#define STQ_RCC_AHB2ENR (STQ_RCC_BASE + 0x4Cu)  /* RM0432 6.4.17: GPIOxEN = bit x */
#define STQ_RCC_APB1ENR1 (STQ_RCC_BASE + 0x58u) /* RM0432 6.4.19: PWREN bit 28 */
#define STQ_RCC_APB1ENR2 (STQ_RCC_BASE + 0x5Cu) /* RM0432 6.4.20: LPUART1EN bit 0 */
#define STQ_RCC_APB2ENR (STQ_RCC_BASE + 0x60u)  /* RM0432 6.4.21: USART1EN bit 14 */
#define STQ_PWR_CR2 0x40007004u                 /* RM0432 5.4.2: IOSV bit 9 (VDDIO2 valid) */

#define STQ_READY_SPINS 100000u
#define STQ_PORT_G 6u

void stq_board_gpio_clock_enable(uint32_t port)
{
    STQ_REG(STQ_RCC_AHB2ENR) |= (1u << port);
    (void)STQ_REG(STQ_RCC_AHB2ENR);
}

void stq_board_init(void)
{
    STQ_REG(STQ_RCC_CR) |= (1u << 8); /* HSION */
    for (uint32_t i = 0; i < STQ_READY_SPINS && !(STQ_REG(STQ_RCC_CR) & (1u << 10)); ++i) {
    }
    /* 16 MHz in voltage range 1 needs no flash wait state (RM0432 3.3.3). */
    STQ_REG(STQ_RCC_CFGR) = (STQ_REG(STQ_RCC_CFGR) & ~0x3u) | 0x1u;
    for (uint32_t i = 0; i < STQ_READY_SPINS && (STQ_REG(STQ_RCC_CFGR) & 0xCu) != 0x4u; ++i) {
    }

    if (STQ_UART_TX_PORT == STQ_PORT_G || STQ_UART_RX_PORT == STQ_PORT_G) {
        STQ_REG(STQ_RCC_APB1ENR1) |= (1u << 28); /* PWREN */
        (void)STQ_REG(STQ_RCC_APB1ENR1);
        STQ_REG(STQ_PWR_CR2) |= (1u << 9); /* IOSV: PG[15:2] are supplied by VDDIO2 */
    }
    stq_uart_pins_init(STQ_UART_RCC_ENR);
}

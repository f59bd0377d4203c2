/*
 * gpio.c - alternate-function set-up of a pin. The GPIO register layout is the same on the
 * four families (MODER 0x00, OSPEEDR 0x08, PUPDR 0x0C, AFRL 0x20, AFRH 0x24):
 * RM0090 8.4, RM0390 7.4, RM0432 8.5, RM0433 12.4, RM0456 13.4. Only the port bases differ.
 */
#include <stdint.h>

#include "stq_firmware.h"

#if defined(STQ_BOARD_FAMILY_F4)
#define STQ_GPIO_BASE 0x40020000u /* RM0090 2.3 / RM0390 2.2.2: GPIOA on AHB1 */
#elif defined(STQ_BOARD_FAMILY_L4)
#define STQ_GPIO_BASE 0x48000000u /* RM0432 2.2.2: GPIOA on AHB2 */
#elif defined(STQ_BOARD_FAMILY_H7)
#define STQ_GPIO_BASE 0x58020000u /* RM0433 2.3.2: GPIOA on AHB4 (D3) */
#elif defined(STQ_BOARD_FAMILY_U5)
#define STQ_GPIO_BASE 0x42020000u /* RM0456 2.3: GPIOA on AHB2 (non-secure) */
#else
#error "stq_board_config.h must define STQ_BOARD_FAMILY_F4/L4/H7/U5"
#endif
#define STQ_GPIO_PORT_STRIDE 0x400u

#define STQ_GPIO_MODER 0x00u
#define STQ_GPIO_OSPEEDR 0x08u
#define STQ_GPIO_PUPDR 0x0Cu
#define STQ_GPIO_AFRL 0x20u

void stq_gpio_set_af(uint32_t port, uint32_t pin, uint32_t af, int pull_up)
{
    const uint32_t base = STQ_GPIO_BASE + port * STQ_GPIO_PORT_STRIDE;
    const uint32_t afr = base + STQ_GPIO_AFRL + 4u * (pin / 8u);
    const uint32_t afr_shift = 4u * (pin % 8u);
    const uint32_t shift2 = 2u * pin;

    STQ_REG(afr) = (STQ_REG(afr) & ~(0xFu << afr_shift)) | ((af & 0xFu) << afr_shift);
    STQ_REG(base + STQ_GPIO_OSPEEDR) |= (0x2u << shift2); /* high speed */
    STQ_REG(base + STQ_GPIO_PUPDR) =
        (STQ_REG(base + STQ_GPIO_PUPDR) & ~(0x3u << shift2)) | ((pull_up ? 0x1u : 0x0u) << shift2);
    STQ_REG(base + STQ_GPIO_MODER) =
        (STQ_REG(base + STQ_GPIO_MODER) & ~(0x3u << shift2)) | (0x2u << shift2); /* AF mode */
}

void stq_uart_pins_init(uint32_t uart_rcc_enr)
{
    stq_board_gpio_clock_enable(STQ_UART_TX_PORT);
    stq_board_gpio_clock_enable(STQ_UART_RX_PORT);
    STQ_REG(uart_rcc_enr) |= (1u << STQ_UART_RCC_BIT);
    (void)STQ_REG(uart_rcc_enr); /* read back: the clock is on before the first access */
    stq_gpio_set_af(STQ_UART_TX_PORT, STQ_UART_TX_PIN, STQ_UART_AF, 0);
    stq_gpio_set_af(STQ_UART_RX_PORT, STQ_UART_RX_PIN, STQ_UART_AF, 1);
}

#if defined(STQ_MLPERF_ENERGY) && STQ_MLPERF_ENERGY
#define STQ_GPIO_OTYPER 0x04u
#define STQ_GPIO_BSRR 0x18u
#define STQ_TIMESTAMP_BASE (STQ_GPIO_BASE + STQ_TIMESTAMP_PORT * STQ_GPIO_PORT_STRIDE)

void stq_timestamp_init(void)
{
    const uint32_t shift2 = 2u * STQ_TIMESTAMP_PIN;
    stq_board_gpio_clock_enable(STQ_TIMESTAMP_PORT);
    STQ_REG(STQ_TIMESTAMP_BASE + STQ_GPIO_BSRR) = 1u << STQ_TIMESTAMP_PIN; /* released: high */
    STQ_REG(STQ_TIMESTAMP_BASE + STQ_GPIO_OTYPER) |= 1u << STQ_TIMESTAMP_PIN; /* open drain */
    STQ_REG(STQ_TIMESTAMP_BASE + STQ_GPIO_PUPDR) &= ~(0x3u << shift2);     /* no pull */
    STQ_REG(STQ_TIMESTAMP_BASE + STQ_GPIO_MODER) =
        (STQ_REG(STQ_TIMESTAMP_BASE + STQ_GPIO_MODER) & ~(0x3u << shift2)) | (0x1u << shift2);
}

void stq_timestamp_pulse(void)
{
    STQ_REG(STQ_TIMESTAMP_BASE + STQ_GPIO_BSRR) = 1u << (STQ_TIMESTAMP_PIN + 16u); /* low */
    /* hold it low for at least 10 us (>= 1 cycle per iteration at STQ_BOARD_CLOCK_HZ) */
    for (volatile uint32_t i = 0; i < STQ_BOARD_CLOCK_HZ / 100000u; ++i) {
    }
    STQ_REG(STQ_TIMESTAMP_BASE + STQ_GPIO_BSRR) = 1u << STQ_TIMESTAMP_PIN; /* released */
}
#endif

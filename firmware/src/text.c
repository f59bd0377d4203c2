/* text.c - decimal and hexadecimal output without printf. */
#include <stdint.h>

#include "stq_firmware.h"

void stq_uart_puts(const char *s)
{
    while (*s != '\0') {
        stq_uart_putc((uint8_t)*s++);
    }
}

void stq_uart_put_u64(uint64_t value)
{
    char buf[21];
    uint32_t i = sizeof(buf);
    buf[--i] = '\0';
    do {
        buf[--i] = (char)('0' + (uint32_t)(value % 10u));
        value /= 10u;
    } while (value != 0u);
    stq_uart_puts(&buf[i]);
}

void stq_uart_put_hex32(uint32_t value)
{
    static const char digits[] = "0123456789abcdef";
    char buf[11];
    buf[0] = '0';
    buf[1] = 'x';
    for (uint32_t i = 0; i < 8u; ++i) {
        buf[2u + i] = digits[(value >> (28u - 4u * i)) & 0xFu];
    }
    buf[10] = '\0';
    stq_uart_puts(buf);
}

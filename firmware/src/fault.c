/*
 * fault.c - report faults over the UART, then stop.
 *
 * Fault status registers: Armv7-M ARM B3.2.15-B3.2.18 (CFSR 0xE000ED28, HFSR 0xE000ED2C,
 * MMFAR 0xE000ED34, BFAR 0xE000ED38); the same addresses on Armv8-M.
 */
#include <stdint.h>

#include "stq_firmware.h"

#define STQ_SCB_CFSR 0xE000ED28u
#define STQ_SCB_HFSR 0xE000ED2Cu
#define STQ_SCB_MMFAR 0xE000ED34u
#define STQ_SCB_BFAR 0xE000ED38u

/* Pick the stack the exception frame was pushed on (EXC_RETURN bit 2) and hand it over. */
__attribute__((naked)) void stq_fault_handler(void)
{
    __asm__ volatile(
        "tst lr, #4\n\t"
        "ite eq\n\t"
        "mrseq r0, msp\n\t"
        "mrsne r0, psp\n\t"
        "mov r1, lr\n\t"
        "b stq_fault_report\n\t");
}

static const char *stq_fault_name(uint32_t ipsr)
{
    switch (ipsr) {
    case 2u: return "nmi";
    case 3u: return "hardfault";
    case 4u: return "memmanage";
    case 5u: return "busfault";
    case 6u: return "usagefault";
    case 7u: return "securefault";
    default: return "unexpected-exception";
    }
}

static void stq_fault_field(const char *name, uint32_t value)
{
    stq_uart_puts(name);
    stq_uart_put_hex32(value);
}

void stq_fault_report(const uint32_t *frame, uint32_t exc_return)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    stq_uart_puts("\nFAULT ");
    stq_uart_puts(stq_fault_name(ipsr));
    stq_fault_field(" ipsr=", ipsr);
    stq_fault_field(" pc=", frame[6]);
    stq_fault_field(" lr=", frame[5]);
    stq_fault_field(" xpsr=", frame[7]);
    stq_fault_field(" cfsr=", STQ_REG(STQ_SCB_CFSR));
    stq_fault_field(" hfsr=", STQ_REG(STQ_SCB_HFSR));
    stq_fault_field(" mmfar=", STQ_REG(STQ_SCB_MMFAR));
    stq_fault_field(" bfar=", STQ_REG(STQ_SCB_BFAR));
    stq_fault_field(" exc_return=", exc_return);
    stq_uart_puts("\n");
#if STQ_BOARD_EMULATED
    stq_semihost_exit(STQ_FAULT_EXIT_CODE);
#else
    for (;;) {
    }
#endif
}

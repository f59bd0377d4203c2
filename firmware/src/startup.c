/*
 * startup.c - vector table and reset handler for Cortex-M4F/M7/M33.
 *
 * Armv7-M ARM (DDI0403) B1.5.3 / Armv8-M ARM (DDI0553) B3.30: word 0 of the vector table is
 * the initial main stack pointer, word 1 the reset handler, then the system exceptions and
 * the device IRQs up to the UART's. Every device IRQ goes through one dispatcher that reads
 * IPSR, so the table never holds a null entry and only the UART interrupt has a real handler.
 */
#include <stdint.h>

#include "stq_firmware.h"

/* Symbols from the generated linker script. */
extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _estack[];

int main(void);

typedef void (*stq_vector_t)(void);

/* Device vectors up to the highest interrupt the firmware enables (the UART's; nothing else is
 * unmasked in the NVIC, so no other device vector is ever fetched). */
#define STQ_VECTOR_IRQS ((uint32_t)STQ_UART_IRQN + 1u)

/* System Control Block (Armv7-M ARM B3.2.2; the same addresses on Armv8-M). */
#define STQ_SCB_VTOR 0xE000ED08u
#define STQ_SCB_CPACR 0xE000ED88u

void stq_reset_handler(void);
void stq_default_handler(void);
void stq_irq_dispatch(void);

typedef struct {
    uint32_t *initial_sp;
    stq_vector_t handlers[15 + STQ_VECTOR_IRQS];
} stq_vector_table_t;

__attribute__((section(".isr_vector"), used)) const stq_vector_table_t stq_vector_table = {
    _estack,
    {
        stq_reset_handler,   /*  1 Reset */
        stq_fault_handler,   /*  2 NMI */
        stq_fault_handler,   /*  3 HardFault */
        stq_fault_handler,   /*  4 MemManage */
        stq_fault_handler,   /*  5 BusFault */
        stq_fault_handler,   /*  6 UsageFault */
        stq_fault_handler,   /*  7 SecureFault (Armv8-M) / reserved */
        stq_default_handler, /*  8 reserved */
        stq_default_handler, /*  9 reserved */
        stq_default_handler, /* 10 reserved */
        stq_default_handler, /* 11 SVCall */
        stq_default_handler, /* 12 DebugMonitor */
        stq_default_handler, /* 13 reserved */
        stq_default_handler, /* 14 PendSV */
        stq_counter_systick_handler, /* 15 SysTick */
        [15 ... 15 + STQ_VECTOR_IRQS - 1u] = stq_irq_dispatch, /* every device IRQ */
    },
};

void stq_irq_dispatch(void)
{
    const uint32_t t0 = stq_counter_isr_enter();
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    if (ipsr == 16u + (uint32_t)STQ_UART_IRQN) {
        stq_uart_irq_handler();
        stq_counter_isr_leave(t0, STQ_ISR_UART);
    } else {
        stq_default_handler();
    }
}

/* An exception nobody asked for: report it like a fault. */
void stq_default_handler(void)
{
    stq_fault_handler();
}

void stq_reset_handler(void)
{
#if defined(__ARM_FP)
    /* CP10/CP11 full access (Armv7-M ARM B3.2.20), before any FP instruction. */
    STQ_REG(STQ_SCB_CPACR) |= (0xFu << 20);
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    STQ_REG(STQ_SCB_VTOR) = (uint32_t)(uintptr_t)&stq_vector_table;

    const uint32_t *src = _sidata;
    for (uint32_t *dst = _sdata; dst < _edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = _sbss; dst < _ebss;) {
        *dst++ = 0u;
    }
    (void)main();
    for (;;) {
    }
}

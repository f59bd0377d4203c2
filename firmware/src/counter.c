/*
 * counter.c - cycle counter.
 *
 * Silicon: DWT CYCCNT (Armv7-M ARM C1.8.8 / Armv8-M ARM D1.2: DEMCR 0xE000EDFC TRCENA bit 24,
 * DWT_CTRL 0xE0001000 CYCCNTENA bit 0, DWT_CYCCNT 0xE0001004; the Cortex-M7 also needs the
 * DWT lock access register 0xE0001FB0 unlocked), extended to 64 bits on every read.
 *
 * Emulated (QEMU has no DWT): SysTick (Armv7-M ARM B3.3: SYST_CSR 0xE000E010, SYST_RVR
 * 0xE000E014, SYST_CVR 0xE000E018) on the processor clock, reloading every 2^24 ticks, its
 * wraps counted in the SysTick exception. Under `-icount shift=0` it counts exactly and
 * repeatably. TIM2 (RM0090 18.4: CR1 0x00, EGR 0x14, CNT 0x24, PSC 0x28, ARR 0x2C; at
 * 0x40000000, RM0090 2.3) with prescaler 0 then ticks once per executed instruction.
 *
 * Exact instruction counts: interrupts (UART receive while the next input streams in, SysTick
 * wraps) run inside measured windows. Every handler brackets its body with
 * stq_counter_isr_enter()/stq_counter_isr_leave(), which add the TIM2 instructions between them
 * plus a per-handler constant (the prologue before the first read, the epilogue after the last,
 * self-calibrated at boot by pending each interrupt with no data) to stq_isr_instr;
 * stq_counter_instructions() returns TIM2 minus that sum, i.e. the instructions of the
 * interrupted (thread-mode) code only, independent of when bytes arrive.
 */
#include <stdint.h>

#include "stq_firmware.h"

#if STQ_BOARD_EMULATED

#define STQ_SYST_CSR 0xE000E010u
#define STQ_SYST_RVR 0xE000E014u
#define STQ_SYST_CVR 0xE000E018u
#define STQ_SYST_RELOAD 0x00FFFFFFu

#define STQ_TIM2_BASE 0x40000000u
#define STQ_TIM2_CR1 (STQ_TIM2_BASE + 0x00u)
#define STQ_TIM2_EGR (STQ_TIM2_BASE + 0x14u)
#define STQ_TIM2_CNT (STQ_TIM2_BASE + 0x24u)
#define STQ_TIM2_PSC (STQ_TIM2_BASE + 0x28u)
#define STQ_TIM2_ARR (STQ_TIM2_BASE + 0x2Cu)

#define STQ_SCB_ICSR 0xE000ED04u
#define STQ_SCB_ICSR_PENDSTSET (1u << 26)
#define STQ_NVIC_ISPR0 0xE000E200u

static volatile uint32_t stq_systick_wraps;
static volatile uint32_t stq_isr_instr; /* instructions spent in handlers, all included */
static volatile uint32_t stq_isr_count; /* handler invocations (calibration only) */
static uint32_t stq_isr_overhead[STQ_ISR_KINDS];

uint32_t stq_counter_isr_enter(void)
{
    return STQ_REG(STQ_TIM2_CNT);
}

void stq_counter_isr_leave(uint32_t t0, uint32_t kind)
{
    const uint32_t t1 = STQ_REG(STQ_TIM2_CNT);
    stq_isr_instr = stq_isr_instr + (t1 - t0) + stq_isr_overhead[kind];
    stq_isr_count = stq_isr_count + 1u;
}

void stq_counter_systick_handler(void)
{
    const uint32_t t0 = stq_counter_isr_enter();
    stq_systick_wraps = stq_systick_wraps + 1u;
    stq_counter_isr_leave(t0, STQ_ISR_SYSTICK);
}

/* Instructions of one window with interrupts masked, then opened for exactly the `cpsie; isb`
 * (a pending interrupt is taken there), optionally pending one first. Returns (TIM2 difference)
 * minus what the handlers measured themselves; *count gets the number of handler runs. */
static uint32_t stq_calibration_window(uint32_t pend_addr, uint32_t pend_bit, uint32_t *count)
{
    __asm__ volatile("cpsid i" ::: "memory");
    if (pend_addr != 0u) {
        STQ_REG(pend_addr) = pend_bit;
    }
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    const uint32_t a0 = stq_isr_instr;
    const uint32_t n0 = stq_isr_count;
    const uint32_t c0 = STQ_REG(STQ_TIM2_CNT);
    __asm__ volatile("cpsie i\n\tisb\n\tcpsid i" ::: "memory");
    const uint32_t c1 = STQ_REG(STQ_TIM2_CNT);
    const uint32_t a1 = stq_isr_instr;
    *count = stq_isr_count - n0;
    __asm__ volatile("cpsie i" ::: "memory");
    return (c1 - c0) - (a1 - a0);
}

/* Per-handler constant = (window with the handler - window without) - what it measured. The
 * bare window is the minimum of a few (a byte arriving during one would add a handler run). */
static void stq_counter_calibrate(void)
{
    uint32_t n = 0u, base = 0xFFFFFFFFu;
    for (int k = 0; k < 4; ++k) {
        const uint32_t w = stq_calibration_window(0u, 0u, &n);
        if (n == 0u && w < base) {
            base = w;
        }
    }
    const uint32_t irq = (uint32_t)STQ_UART_IRQN;
    const uint32_t w_uart = stq_calibration_window(STQ_NVIC_ISPR0 + 4u * (irq / 32u),
                                                   1u << (irq % 32u), &n);
    stq_isr_overhead[STQ_ISR_UART] = n != 0u ? (w_uart - base) / n : 0u;
    const uint32_t w_tick = stq_calibration_window(STQ_SCB_ICSR, STQ_SCB_ICSR_PENDSTSET, &n);
    stq_isr_overhead[STQ_ISR_SYSTICK] = n != 0u ? (w_tick - base) / n : 0u;
}

/* Writing CVR reloads SysTick now, so the tick phase no longer depends on how long the CPU
 * slept waiting for the host (under -icount, idle time follows the wall clock). */
void stq_counter_restart(void)
{
    STQ_REG(STQ_SYST_CSR) = 0u;
    stq_systick_wraps = 0u;
    STQ_REG(STQ_SYST_RVR) = STQ_SYST_RELOAD;
    STQ_REG(STQ_SYST_CVR) = 0u;
    STQ_REG(STQ_SYST_CSR) = (1u << 2) | (1u << 1) | (1u << 0); /* CLKSOURCE, TICKINT, ENABLE */
}

void stq_counter_init(void)
{
    STQ_REG(STQ_SYST_CSR) = 0u; /* no SysTick while calibrating */
    STQ_REG(STQ_TIM2_CR1) = 0u;
    STQ_REG(STQ_TIM2_PSC) = 0u;
    STQ_REG(STQ_TIM2_ARR) = 0xFFFFFFFFu;
    STQ_REG(STQ_TIM2_EGR) = 1u; /* UG: load the prescaler */
    STQ_REG(STQ_TIM2_CR1) = 1u; /* CEN */
    stq_counter_calibrate();
    stq_counter_restart();
}

uint64_t stq_counter_ticks(void)
{
    uint32_t wraps, value;
    do {
        wraps = stq_systick_wraps;
        value = STQ_REG(STQ_SYST_CVR);
    } while (wraps != stq_systick_wraps);
    return ((uint64_t)wraps << 24) + (uint64_t)(STQ_SYST_RELOAD - value);
}

int stq_counter_has_instructions(void)
{
    return 1;
}

uint32_t stq_counter_instructions(void)
{
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    const uint32_t c = STQ_REG(STQ_TIM2_CNT);
    const uint32_t a = stq_isr_instr;
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
    return c - a;
}

uint32_t stq_counter_isr_overhead(uint32_t kind)
{
    return kind < STQ_ISR_KINDS ? stq_isr_overhead[kind] : 0u;
}

const char *stq_counter_name(void)
{
    return "systick";
}

#else /* silicon */

#define STQ_DEMCR 0xE000EDFCu
#define STQ_DWT_CTRL 0xE0001000u
#define STQ_DWT_CYCCNT 0xE0001004u
#define STQ_DWT_LAR 0xE0001FB0u

static uint32_t stq_cyccnt_last;
static uint32_t stq_cyccnt_high;

void stq_counter_systick_handler(void)
{
}

uint32_t stq_counter_isr_enter(void)
{
    return 0u;
}

void stq_counter_isr_leave(uint32_t t0, uint32_t kind)
{
    (void)t0;
    (void)kind;
}

uint32_t stq_counter_isr_overhead(uint32_t kind)
{
    (void)kind;
    return 0u;
}

void stq_counter_init(void)
{
    STQ_REG(STQ_DEMCR) |= (1u << 24); /* TRCENA */
    STQ_REG(STQ_DWT_LAR) = 0xC5ACCE55u;
    STQ_REG(STQ_DWT_CYCCNT) = 0u;
    STQ_REG(STQ_DWT_CTRL) |= 1u; /* CYCCNTENA */
    stq_counter_restart();
}

void stq_counter_restart(void)
{
    STQ_REG(STQ_DWT_CYCCNT) = 0u;
    stq_cyccnt_last = 0u;
    stq_cyccnt_high = 0u;
}

/* Correct as long as it is called at least once per 2^32 cycles (9 s at 480 MHz). */
uint64_t stq_counter_ticks(void)
{
    const uint32_t now = STQ_REG(STQ_DWT_CYCCNT);
    if (now < stq_cyccnt_last) {
        stq_cyccnt_high += 1u;
    }
    stq_cyccnt_last = now;
    return ((uint64_t)stq_cyccnt_high << 32) | now;
}

int stq_counter_has_instructions(void)
{
    return 0;
}

uint32_t stq_counter_instructions(void)
{
    return 0u;
}

const char *stq_counter_name(void)
{
    return "dwt";
}

#endif

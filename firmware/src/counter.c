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

static volatile uint32_t stq_systick_wraps;

void stq_counter_systick_handler(void)
{
    stq_systick_wraps = stq_systick_wraps + 1u;
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
    stq_counter_restart();

    STQ_REG(STQ_TIM2_CR1) = 0u;
    STQ_REG(STQ_TIM2_PSC) = 0u;
    STQ_REG(STQ_TIM2_ARR) = 0xFFFFFFFFu;
    STQ_REG(STQ_TIM2_EGR) = 1u; /* UG: load the prescaler */
    STQ_REG(STQ_TIM2_CR1) = 1u; /* CEN */
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
    return STQ_REG(STQ_TIM2_CNT);
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

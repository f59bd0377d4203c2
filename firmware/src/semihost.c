/*
 * semihost.c - leave QEMU with an exit code.
 *
 * Arm semihosting v2, SYS_EXIT_EXTENDED (operation 0x20): r1 points to
 * {reason = ADP_Stopped_ApplicationExit (0x20026), exit code}; BKPT 0xAB on M-profile.
 * QEMU (-semihosting-config enable=on,target=native) then exits with that code.
 */
#include <stdint.h>

#include "stq_firmware.h"

#define STQ_SEMIHOST_SYS_EXIT_EXTENDED 0x20u
#define STQ_SEMIHOST_APPLICATION_EXIT 0x20026u

void stq_semihost_exit(uint32_t code)
{
    volatile uint32_t block[2];
    block[0] = STQ_SEMIHOST_APPLICATION_EXIT;
    block[1] = code;
    register uint32_t r0 __asm__("r0") = STQ_SEMIHOST_SYS_EXIT_EXTENDED;
    register volatile uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}

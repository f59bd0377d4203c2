/*
 * stq_firmware.h - the one public header of the stq device runtime.
 *
 * The runtime wraps a generated model (model.h, see docs/c_api.md) with start-up code, clock,
 * GPIO and UART set-up per STM32 family, a cycle counter, a fault handler, semihosting exit and
 * a minimal binary-safe command loop. Board parameters come from the generated header
 * stq_board_config.h (written by `stq build` from boards/<name>.toml).
 *
 * All functions are C99, never allocate, and are safe to call only after stq_board_init().
 */
#ifndef STQ_FIRMWARE_H
#define STQ_FIRMWARE_H

#include <stdint.h>

#include "stq_board_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Memory-mapped register access. */
#define STQ_REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* --- board: clock tree, GPIO and peripheral clock enables (src/board_<family>.c) ---------- */

/* Select the board's system clock and enable the UART and its GPIO ports. Never waits
 * unbounded on a ready bit (QEMU reads RCC as zero). */
void stq_board_init(void);

/* Enable the clock of GPIO port `port` (0 = A, 1 = B, ...). */
void stq_board_gpio_clock_enable(uint32_t port);

/* Put pin `pin` (0..15) of port `port` in alternate function `af` (0..15), high speed;
 * `pull_up` != 0 enables the pull-up (RX lines). Register layout identical on F4/L4/H7/U5. */
void stq_gpio_set_af(uint32_t port, uint32_t pin, uint32_t af, int pull_up);
/* Clocks and alternate functions of the board's UART pins and the UART itself (src/gpio.c),
 * called by each family's stq_board_init() once its clock tree is set, with the address of the
 * RCC enable register of the UART (a family-specific register). */
void stq_uart_pins_init(uint32_t uart_rcc_enr);

/* MLPerf Tiny energy builds only (STQ_MLPERF_ENERGY): the timestamp pin STQ_TIMESTAMP_PORT/PIN
 * as an open-drain output released high, and one low pulse of at least 10 us on it. */
void stq_timestamp_init(void);
void stq_timestamp_pulse(void);

/* --- UART (src/uart_v1.c for F4 SR/DR registers, src/uart_v2.c for ISR/RDR/TDR) --------- */

/* Configure STQ_UART_BASE for STQ_UART_BAUD 8N1 with interrupt-driven receive. */
void stq_uart_init(void);
void stq_uart_putc(uint8_t c);
void stq_uart_write(const void *data, uint32_t bytes);
/* Block (sleeping with WFI) until a byte arrives. */
uint8_t stq_uart_getc(void);
/* The UART's interrupt handler: moves received bytes into the receive ring. */
void stq_uart_irq_handler(void);
/* Size of the receive ring in bytes (what the host may send ahead), and the bytes it dropped
 * because it was full (an overrun: the host sent more than the ring while the device was busy). */
uint32_t stq_uart_rx_capacity(void);
uint32_t stq_uart_rx_dropped(void);

/* Text helpers (src/text.c): no printf. */
void stq_uart_puts(const char *s);
void stq_uart_put_u64(uint64_t value);
void stq_uart_put_hex32(uint32_t value);

/* --- cycle counter (src/counter.c) -------------------------------------------------------- */

/* Start the counter: DWT CYCCNT on silicon; SysTick extended to 64 bits (plus TIM2 counting
 * instructions) when STQ_BOARD_EMULATED, since QEMU has no DWT. */
void stq_counter_init(void);
/* Restart the count from zero (at a reproducible phase under QEMU: SysTick is reloaded). */
void stq_counter_restart(void);
/* Counter ticks since stq_counter_init() or the last stq_counter_restart() (core clock cycles on silicon, SysTick ticks at the
 * core clock under QEMU). */
uint64_t stq_counter_ticks(void);
/* 1 when stq_counter_instructions() is meaningful (QEMU -icount shift=0), else 0. */
int stq_counter_has_instructions(void);
/* Executed instructions of thread-mode code, interrupt handlers excluded (32-bit, wraps; take
 * differences), 0 when unknown. */
uint32_t stq_counter_instructions(void);
/* "dwt" or "systick". */
const char *stq_counter_name(void);
/* SysTick exception handler (counts 24-bit wraps). */
void stq_counter_systick_handler(void);
/* Interrupt accounting (emulated: exact instruction counts, see counter.c): every handler calls
 * t0 = stq_counter_isr_enter() first and stq_counter_isr_leave(t0, kind) last; their
 * instructions (plus a boot-calibrated constant per kind) are left out of
 * stq_counter_instructions(). No-ops on silicon. */
enum { STQ_ISR_UART = 0, STQ_ISR_SYSTICK = 1, STQ_ISR_KINDS = 2 };
uint32_t stq_counter_isr_enter(void);
void stq_counter_isr_leave(uint32_t t0, uint32_t kind);
/* The calibrated constant of one handler kind (0 on silicon). */
uint32_t stq_counter_isr_overhead(uint32_t kind);

/* --- faults and semihosting (src/fault.c, src/semihost.c) -------------------------------- */

/* Exit QEMU with `code` through semihosting SYS_EXIT_EXTENDED. Only call when emulated
 * (on silicon without a debugger BKPT faults). Never returns. */
void stq_semihost_exit(uint32_t code) __attribute__((noreturn));

/* Report a fault over the UART ("FAULT <name> pc=... cfsr=...") and stop: semihosting exit
 * code STQ_FAULT_EXIT_CODE when emulated, else spin. `frame` is the stacked exception frame. */
#define STQ_FAULT_EXIT_CODE 3u
void stq_fault_report(const uint32_t *frame, uint32_t exc_return) __attribute__((noreturn));
/* Exception entry for all faults (picks MSP/PSP, calls stq_fault_report). */
void stq_fault_handler(void);

/* --- the device command loop (src/protocol.c, mlperf.c, protocol_text.c, link.c) --------- */

/* Print the hello line, then serve commands forever; each command's first byte picks the
 * protocol (docs/protocol.md):
 *   0x00       framed protocol: COBS frames with a version, a sequence number and a CRC-32
 *              (INFO, UPLOAD, RUN, QUIT); sticky once seen;
 *   'a'..'z'   MLPerf Tiny / EEMBC runner ASCII commands ending in '%' (name, profile, help,
 *              timestamp, db load N, db HEX, db print, infer N W, results), each answered
 *              "... m-ready\r\n";
 *   'A'..'Z'   the minimal single-byte commands:
 *   'H'            -> "STQ model=... hash=... in=N out=M arena=A layers=L macs=X board=...
 *                      build=... counter=...\n"
 *   'I' + N bytes  -> "OK I N\n"            (N = STQ_INPUT_BYTES raw input bytes)
 *   'R'            -> "OK R rc=0 ticks=T instr=I|na\n"  (one inference, cost measured)
 *   'P'            -> "OK P L\n" + L lines "<i> <name> <ticks> <instr|na>\n" (per layer)
 *   'O'            -> "OK O M\n" + M raw output bytes (M = STQ_OUTPUT_BYTES)
 *   'Q'            -> "OK Q\n" then semihosting exit 0 (emulated only; else "ERR Q\n")
 *   other letters  -> "ERR ? <code>\n"; other bytes between commands are ignored. */
void stq_protocol_loop(void) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* STQ_FIRMWARE_H */

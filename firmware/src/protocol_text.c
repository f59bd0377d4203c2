/*
 * protocol_text.c - the minimal command set: single-byte commands, raw binary payloads of
 * fixed, known sizes, ASCII reply lines (see stq_protocol_loop() in stq_firmware.h). Kept for
 * `stq run` and quick manual use; the framed protocol (protocol.c) is the robust one.
 */
#include <stdint.h>

#include "model.h"
#include "stq_firmware.h"
#include "stq_protocol.h"

static uint32_t stq_text_input_left; /* raw input bytes still expected after 'I' */

static void stq_put_kv(const char *key, uint64_t value)
{
    stq_uart_puts(key);
    stq_uart_put_u64(value);
}

static void stq_put_instr(uint32_t instr)
{
    if (stq_counter_has_instructions()) {
        stq_uart_put_u64(instr);
    } else {
        stq_uart_puts("na");
    }
}

static void stq_cmd_run(int profile)
{
    stq_run_result_t r;
    stq_run_input(stq_input_copy, profile, 1, &r);
    if (!profile) {
        stq_uart_puts("OK R rc=");
        if (r.rc < 0) {
            stq_uart_puts("-");
        }
        stq_uart_put_u64((uint64_t)(r.rc < 0 ? -(int64_t)r.rc : (int64_t)r.rc));
        stq_put_kv(" ticks=", r.ticks);
        stq_uart_puts(" instr=");
        stq_put_instr(r.instr);
        stq_uart_puts("\n");
        return;
    }
    stq_put_kv("OK P ", STQ_NUM_LAYERS);
    stq_uart_puts("\n");
    for (uint32_t l = 0; l < (uint32_t)STQ_NUM_LAYERS; ++l) {
        stq_uart_put_u64(l);
        stq_uart_puts(" ");
        stq_uart_puts(stq_layer_names[l]);
        stq_put_kv(" ", stq_layer_cost_ticks(l));
        stq_uart_puts(" ");
        stq_put_instr(stq_layer_cost_instr(l));
        stq_uart_puts("\n");
    }
}

int stq_text_feed(uint8_t c)
{
    if (stq_text_input_left != 0u) {
        stq_input_copy[(uint32_t)STQ_INPUT_BYTES - stq_text_input_left] = c;
        if (--stq_text_input_left != 0u) {
            return 1;
        }
        stq_put_kv("OK I ", STQ_INPUT_BYTES);
        stq_uart_puts("\n");
        return 0;
    }
    switch (c) {
    case 'H': stq_hello(); break;
    case 'I': stq_text_input_left = STQ_INPUT_BYTES; return 1;
    case 'R': stq_cmd_run(0); break;
    case 'P': stq_cmd_run(1); break;
    case 'O':
        stq_put_kv("OK O ", STQ_OUTPUT_BYTES);
        stq_uart_puts("\n");
        stq_uart_write(stq_model_output(), STQ_OUTPUT_BYTES);
        break;
    case 'Q':
#if STQ_BOARD_EMULATED
        stq_uart_puts("OK Q\n");
        stq_semihost_exit(0u);
#else
        stq_uart_puts("ERR Q\n");
#endif
        break;
#if defined(STQ_FW_FAULT_TEST) && STQ_FW_FAULT_TEST
    case 'F': __asm__ volatile("udf #0"); break; /* tests only: exercise the fault path */
#endif
    default:
        stq_put_kv("ERR ? ", c);
        stq_uart_puts("\n");
        break;
    }
    return 0;
}

/*
 * protocol_min.c - the minimal device command loop: single-byte commands, raw binary payloads
 * of fixed, known sizes, ASCII reply lines. See stq_protocol_min_loop() in stq_firmware.h.
 * A framed protocol (COBS + CRC) will replace this file; nothing else depends on its format.
 */
#include <stdint.h>
#include <string.h>

#include "model.h"
#include "stq_firmware.h"

/* The uploaded input is kept outside the arena: invoke may overwrite its input in place. */
static uint8_t stq_input_copy[STQ_INPUT_BYTES];
static uint64_t stq_layer_ticks[STQ_NUM_LAYERS];
static uint32_t stq_layer_instr[STQ_NUM_LAYERS];

static void stq_layer_probe(uint32_t layer, const void *data, uint32_t bytes)
{
    (void)data;
    (void)bytes;
    if (layer < STQ_NUM_LAYERS) {
        stq_layer_ticks[layer] = stq_counter_ticks();
        stq_layer_instr[layer] = stq_counter_instructions();
    }
}

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

static void stq_cmd_hello(void)
{
    stq_uart_puts("STQ model=" STQ_MODEL_NAME " hash=" STQ_MODEL_HASH);
    stq_put_kv(" in=", STQ_INPUT_BYTES);
    stq_put_kv(" out=", STQ_OUTPUT_BYTES);
    stq_put_kv(" arena=", STQ_ARENA_BYTES);
    stq_put_kv(" layers=", STQ_NUM_LAYERS);
    stq_put_kv(" macs=", (uint64_t)(STQ_MACS));
    stq_uart_puts(" board=" STQ_BOARD_NAME " build=" STQ_BUILD_ID " counter=");
    stq_uart_puts(stq_counter_name());
    stq_uart_puts("\n");
}

static void stq_cmd_input(void)
{
    for (uint32_t i = 0; i < (uint32_t)STQ_INPUT_BYTES; ++i) {
        stq_input_copy[i] = stq_uart_getc();
    }
    stq_put_kv("OK I ", STQ_INPUT_BYTES);
    stq_uart_puts("\n");
}

static void stq_cmd_run(int profile)
{
    memcpy(stq_model_input(), stq_input_copy, STQ_INPUT_BYTES);
    stq_model_set_layer_hook(profile ? stq_layer_probe : (stq_layer_hook_t)0);
    stq_counter_restart();
    const uint32_t i0 = stq_counter_instructions();
    const uint64_t t0 = stq_counter_ticks();
    const int rc = stq_model_invoke();
    const uint64_t t1 = stq_counter_ticks();
    const uint32_t i1 = stq_counter_instructions();
    stq_model_set_layer_hook((stq_layer_hook_t)0);

    if (!profile) {
        stq_uart_puts("OK R rc=");
        if (rc < 0) {
            stq_uart_puts("-");
        }
        stq_uart_put_u64((uint64_t)(rc < 0 ? -(int64_t)rc : (int64_t)rc));
        stq_put_kv(" ticks=", t1 - t0);
        stq_uart_puts(" instr=");
        stq_put_instr(i1 - i0);
        stq_uart_puts("\n");
        return;
    }
    stq_put_kv("OK P ", STQ_NUM_LAYERS);
    stq_uart_puts("\n");
    uint64_t prev_t = t0;
    uint32_t prev_i = i0;
    for (uint32_t l = 0; l < (uint32_t)STQ_NUM_LAYERS; ++l) {
        stq_uart_put_u64(l);
        stq_uart_puts(" ");
        stq_uart_puts(stq_layer_names[l]);
        stq_put_kv(" ", stq_layer_ticks[l] - prev_t);
        stq_uart_puts(" ");
        stq_put_instr(stq_layer_instr[l] - prev_i);
        stq_uart_puts("\n");
        prev_t = stq_layer_ticks[l];
        prev_i = stq_layer_instr[l];
    }
}

static void stq_cmd_output(void)
{
    stq_put_kv("OK O ", STQ_OUTPUT_BYTES);
    stq_uart_puts("\n");
    stq_uart_write(stq_model_output(), STQ_OUTPUT_BYTES);
}

void stq_protocol_min_loop(void)
{
    stq_cmd_hello();
    for (;;) {
        const uint8_t cmd = stq_uart_getc();
        switch (cmd) {
        case 'H': stq_cmd_hello(); break;
        case 'I': stq_cmd_input(); break;
        case 'R': stq_cmd_run(0); break;
        case 'P': stq_cmd_run(1); break;
        case 'O': stq_cmd_output(); break;
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
        case '\r':
        case '\n':
        case ' ': break;
        default:
            stq_put_kv("ERR ? ", cmd);
            stq_uart_puts("\n");
            break;
        }
    }
}

/*
 * protocol.c - the device command loop: picks the protocol from each command's first byte and
 * hands each byte to its protocol (docs/protocol.md):
 *   0x00         a COBS frame follows (frame.c: 0x00-delimited, CRC-32 checked); once a frame
 *                has been seen the link stays framed until reset;
 *   'a'..'z'     an MLPerf Tiny / EEMBC runner command ending in '%' (mlperf.c);
 *   'A'..'Z'     a single-byte command of the minimal protocol (protocol_text.c).
 * A protocol left out of the build (`stq build --protocols`, STQ_PROTOCOL_*) is not compiled
 * in: the bytes that would start it are ignored like line noise.
 * Every handler is fed one byte at a time and never blocks, so the host-side fuzzer drives the
 * same code through stq_protocol_feed().
 */
#include <stdint.h>
#include <string.h>

#include "model.h"
#include "stq_firmware.h"
#include "stq_protocol.h"

#if STQ_HAS_INPUT_COPY
uint8_t stq_input_copy[STQ_INPUT_BYTES];
#endif
static uint64_t stq_layer_ticks[STQ_NUM_LAYERS];
static uint32_t stq_layer_instr[STQ_NUM_LAYERS];
static uint64_t stq_layer_t0;
static uint32_t stq_layer_i0;

/* --- one measured inference (shared by all three protocols) ------------------------------ */

static void stq_layer_probe(uint32_t layer, const void *data, uint32_t bytes)
{
    (void)data;
    (void)bytes;
    if (layer < STQ_NUM_LAYERS) {
        stq_layer_ticks[layer] = stq_counter_ticks();
        stq_layer_instr[layer] = stq_counter_instructions();
    }
}

void stq_run_input(const uint8_t *input, int profile, int restart_counter,
                   stq_run_result_t *result)
{
#if STQ_HAS_INPUT_COPY
    if (input != stq_input_copy) {
        memcpy(stq_input_copy, input, STQ_INPUT_BYTES);
    }
#endif
    memcpy(stq_model_input(), input, STQ_INPUT_BYTES);
    stq_model_set_layer_hook(profile ? stq_layer_probe : (stq_layer_hook_t)0);
    if (restart_counter) {
        stq_counter_restart();
    }
    const uint32_t i0 = stq_counter_instructions();
    const uint64_t t0 = stq_counter_ticks();
    const int rc = stq_model_invoke();
    const uint64_t t1 = stq_counter_ticks();
    const uint32_t i1 = stq_counter_instructions();
    stq_model_set_layer_hook((stq_layer_hook_t)0);
    stq_layer_t0 = t0;
    stq_layer_i0 = i0;
    result->rc = (int32_t)rc;
    result->ticks = t1 - t0;
    result->instr = stq_counter_has_instructions() ? i1 - i0 : 0u;
}

uint64_t stq_layer_cost_ticks(uint32_t layer)
{
    const uint64_t prev = layer == 0u ? stq_layer_t0 : stq_layer_ticks[layer - 1u];
    return layer < STQ_NUM_LAYERS ? stq_layer_ticks[layer] - prev : 0u;
}

uint32_t stq_layer_cost_instr(uint32_t layer)
{
    const uint32_t prev = layer == 0u ? stq_layer_i0 : stq_layer_instr[layer - 1u];
    return layer < STQ_NUM_LAYERS ? stq_layer_instr[layer] - prev : 0u;
}

/* --- the boot banner ---------------------------------------------------------------------- */

static void stq_put_kv(const char *key, uint64_t value)
{
    stq_uart_puts(key);
    stq_uart_put_u64(value);
}

void stq_hello(void)
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

/* --- the dispatcher ------------------------------------------------------------------------ */

enum { STQ_MODE_IDLE, STQ_MODE_FRAME, STQ_MODE_MLPERF, STQ_MODE_TEXT };
static int stq_mode = STQ_MODE_IDLE;

void stq_protocol_feed(uint8_t c)
{
    if (stq_mode == STQ_MODE_IDLE) {
        if (c == 0u && STQ_PROTOCOL_BINARY) {
            stq_mode = STQ_MODE_FRAME;
#if STQ_PROTOCOL_BINARY
            stq_frame_reset();
#endif
            return;
        }
        if (c >= 'a' && c <= 'z' && STQ_PROTOCOL_MLPERF) {
            stq_mode = STQ_MODE_MLPERF;
        } else if (c >= 'A' && c <= 'Z' && STQ_PROTOCOL_TEXT) {
            stq_mode = STQ_MODE_TEXT;
        } else {
            return; /* noise between commands ('\r', '\n', ' ', line garbage) */
        }
    }
    int more = 0;
    switch (stq_mode) {
#if STQ_PROTOCOL_BINARY
    case STQ_MODE_FRAME: more = stq_frame_feed(c); break;
#endif
#if STQ_PROTOCOL_MLPERF
    case STQ_MODE_MLPERF: more = stq_mlperf_feed(c); break;
#endif
#if STQ_PROTOCOL_TEXT
    case STQ_MODE_TEXT: more = stq_text_feed(c); break;
#endif
    default: break;
    }
    if (!more) {
        const int was_mlperf = stq_mode == STQ_MODE_MLPERF;
        stq_mode = STQ_MODE_IDLE;
        if (was_mlperf && c == 0u && STQ_PROTOCOL_BINARY) { /* a 0x00 ended an ASCII line */
            stq_mode = STQ_MODE_FRAME;
#if STQ_PROTOCOL_BINARY
            stq_frame_reset();
#endif
        }
    }
}

void stq_protocol_loop(void)
{
    stq_hello();
    for (;;) {
        stq_protocol_feed(stq_uart_getc());
    }
}

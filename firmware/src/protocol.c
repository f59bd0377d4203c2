/*
 * protocol.c - the device command loop: picks the protocol from each command's first byte and
 * hands each byte to its protocol (docs/protocol.md):
 *   0x00         a COBS frame follows (frame.c: 0x00-delimited, CRC-32 checked); once a frame
 *                has been seen the link stays framed until reset;
 *   'a'..'z'     an MLPerf Tiny / EEMBC runner command ending in '%' (mlperf.c);
 *   'A'..'Z'     a single-byte command of the minimal protocol (protocol_text.c).
 * Every handler is fed one byte at a time and never blocks, so the host-side fuzzer drives the
 * same code through stq_protocol_feed().
 */
#include <stdint.h>
#include <string.h>

#include "model.h"
#include "stq_firmware.h"
#include "stq_protocol.h"

uint8_t stq_input_copy[STQ_INPUT_BYTES];
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

void stq_run_input(int profile, int restart_counter, stq_run_result_t *result)
{
    memcpy(stq_model_input(), stq_input_copy, STQ_INPUT_BYTES);
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

/* --- the dispatcher ------------------------------------------------------------------------ */

enum { STQ_MODE_IDLE, STQ_MODE_FRAME, STQ_MODE_MLPERF, STQ_MODE_TEXT };
static int stq_mode = STQ_MODE_IDLE;

void stq_protocol_feed(uint8_t c)
{
    if (stq_mode == STQ_MODE_IDLE) {
        if (c == 0u) {
            stq_mode = STQ_MODE_FRAME;
            stq_frame_reset();
            return;
        }
        if (c >= 'a' && c <= 'z') {
            stq_mode = STQ_MODE_MLPERF;
        } else if (c >= 'A' && c <= 'Z') {
            stq_mode = STQ_MODE_TEXT;
        } else {
            return; /* noise between commands ('\r', '\n', ' ', line garbage) */
        }
    }
    int more = 0;
    switch (stq_mode) {
    case STQ_MODE_FRAME: more = stq_frame_feed(c); break;
    case STQ_MODE_MLPERF: more = stq_mlperf_feed(c); break;
    default: more = stq_text_feed(c); break;
    }
    if (!more) {
        const int was_mlperf = stq_mode == STQ_MODE_MLPERF;
        stq_mode = STQ_MODE_IDLE;
        if (was_mlperf && c == 0u) { /* a 0x00 ended an ASCII line: it starts a frame */
            stq_mode = STQ_MODE_FRAME;
            stq_frame_reset();
        }
    }
}

void stq_protocol_loop(void)
{
    stq_text_hello();
    for (;;) {
        stq_protocol_feed(stq_uart_getc());
    }
}

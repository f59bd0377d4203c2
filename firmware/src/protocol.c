/*
 * protocol.c - the device command loop: picks the protocol from each command's first byte and
 * serves the framed protocol (docs/protocol.md):
 *   0x00         a COBS frame follows (0x00-delimited, CRC-32 checked); once a frame has been
 *                seen the link stays framed until reset;
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

enum {
    STQ_T_INFO = 0x01,
    STQ_T_UPLOAD = 0x02,
    STQ_T_RUN = 0x03,
    STQ_T_QUIT = 0x04,
    STQ_T_ERROR = 0x7F,
    STQ_T_REPLY = 0x80
};

enum {
    STQ_E_CRC = 1,        /* checksum mismatch */
    STQ_E_OVERSIZE = 2,   /* frame longer than STQ_PROTO_FRAME_MAX */
    STQ_E_TRUNCATED = 3,  /* shorter than header + CRC */
    STQ_E_COBS = 4,       /* malformed COBS */
    STQ_E_VERSION = 5,    /* unsupported protocol version */
    STQ_E_TYPE = 6,       /* unknown request type */
    STQ_E_LENGTH = 7,     /* body length wrong for the type */
    STQ_E_RANGE = 8,      /* UPLOAD outside the input */
    STQ_E_INPUT = 9,      /* RUN: the input's CRC-32 differs (a chunk was lost) */
    STQ_E_UNSUPPORTED = 10 /* QUIT on silicon */
};

#define STQ_NO_SEQ 0xFFFFu

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

/* --- framed protocol ----------------------------------------------------------------------- */

static uint8_t stq_rx[STQ_PROTO_ENCODED_MAX];
static uint32_t stq_rx_len;
static int stq_rx_overflow;
/* Replies: header + the largest body (INFO with its strings, or RUN with the output) + CRC. */
#define STQ_TX_MAX (STQ_PROTO_HEADER + 40u + STQ_OUTPUT_BYTES + 5u * 64u + 80u + STQ_PROTO_CRC)
static uint8_t stq_tx[STQ_TX_MAX];
static uint32_t stq_tx_len;

static void stq_put8(uint32_t v)
{
    if (stq_tx_len < STQ_TX_MAX - STQ_PROTO_CRC) {
        stq_tx[stq_tx_len++] = (uint8_t)v;
    }
}

static void stq_put16(uint32_t v)
{
    stq_put8(v);
    stq_put8(v >> 8);
}

static void stq_put32(uint32_t v)
{
    stq_put16(v);
    stq_put16(v >> 16);
}

static void stq_put64(uint64_t v)
{
    stq_put32((uint32_t)v);
    stq_put32((uint32_t)(v >> 32));
}

static void stq_put_str(const char *s)
{
    const uint32_t n = (uint32_t)strlen(s);
    const uint32_t len = n > 64u ? 64u : n;
    stq_put8(len);
    for (uint32_t i = 0; i < len; ++i) {
        stq_put8((uint8_t)s[i]);
    }
}

static uint32_t stq_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void stq_reply_begin(uint32_t type, uint32_t seq)
{
    stq_tx_len = 0;
    stq_put8(STQ_PROTO_VERSION);
    stq_put8(type);
    stq_put16(seq);
}

static void stq_reply_send(void)
{
    const uint32_t crc = stq_crc32(0u, stq_tx, stq_tx_len);
    stq_tx[stq_tx_len++] = (uint8_t)crc;
    stq_tx[stq_tx_len++] = (uint8_t)(crc >> 8);
    stq_tx[stq_tx_len++] = (uint8_t)(crc >> 16);
    stq_tx[stq_tx_len++] = (uint8_t)(crc >> 24);
    stq_cobs_write_frame(stq_tx, stq_tx_len);
}

static void stq_reply_error(uint32_t seq, uint32_t code, uint32_t detail)
{
    stq_reply_begin(STQ_T_ERROR, seq);
    stq_put8(code);
    stq_put32(detail);
    stq_reply_send();
}

static void stq_do_info(uint32_t seq)
{
    stq_reply_begin(STQ_T_INFO | STQ_T_REPLY, seq);
    stq_put8(0u); /* status */
    stq_put8(STQ_PROTO_VERSION);
    stq_put16(STQ_PROTO_CHUNK_MAX);
    stq_put32(STQ_INPUT_BYTES);
    stq_put8(STQ_INPUT_SIGNED);
    stq_put16(STQ_INPUT_H);
    stq_put16(STQ_INPUT_W);
    stq_put16(STQ_INPUT_C);
    stq_put32(STQ_OUTPUT_COUNT);
    stq_put8(STQ_OUTPUT_ELEM_BYTES);
    stq_put32(STQ_ARENA_BYTES);
    stq_put16(STQ_NUM_LAYERS);
    stq_put64((uint64_t)(STQ_MACS));
    stq_put8((uint32_t)stq_counter_has_instructions());
    stq_put32(STQ_BOARD_CLOCK_HZ);
    stq_put_str(STQ_MODEL_HASH);
    stq_put_str(STQ_MODEL_NAME);
    stq_put_str(STQ_BOARD_NAME);
    stq_put_str(STQ_BUILD_ID);
    stq_put_str(stq_counter_name());
    stq_reply_send();
}

static void stq_do_upload(uint32_t seq, const uint8_t *body, uint32_t len)
{
    if (len < 5u) {
        stq_reply_error(seq, STQ_E_LENGTH, len);
        return;
    }
    const uint32_t flags = body[0];
    const uint32_t offset = stq_get32(&body[1]);
    const uint32_t n = len - 5u;
    if (offset > (uint32_t)STQ_INPUT_BYTES || n > (uint32_t)STQ_INPUT_BYTES - offset) {
        stq_reply_error(seq, STQ_E_RANGE, offset);
        return;
    }
    memcpy(&stq_input_copy[offset], &body[5], n);
    if (flags & 1u) { /* acknowledge */
        stq_reply_begin(STQ_T_UPLOAD | STQ_T_REPLY, seq);
        stq_put8(0u);
        stq_put32(offset);
        stq_put32(n);
        stq_reply_send();
    }
}

static void stq_do_run(uint32_t seq, const uint8_t *body, uint32_t len)
{
    if (len != 5u) {
        stq_reply_error(seq, STQ_E_LENGTH, len);
        return;
    }
    const uint32_t flags = body[0];
    const uint32_t want = stq_get32(&body[1]);
    const uint32_t have = stq_crc32(0u, stq_input_copy, STQ_INPUT_BYTES);
    if (want != have) {
        stq_reply_error(seq, STQ_E_INPUT, have);
        return;
    }
    stq_run_result_t r;
    stq_run_input((int)(flags & 1u), 1, &r);
    stq_reply_begin(STQ_T_RUN | STQ_T_REPLY, seq);
    stq_put8(0u);
    stq_put32((uint32_t)r.rc);
    stq_put32(have);
    stq_put64(r.ticks);
    stq_put32(r.instr);
    for (uint32_t i = 0; i < (uint32_t)STQ_OUTPUT_BYTES; ++i) {
        stq_put8(((const uint8_t *)stq_model_output())[i]);
    }
    if (flags & 1u) { /* per-layer costs follow the output */
        stq_put16(STQ_NUM_LAYERS);
        for (uint32_t l = 0; l < (uint32_t)STQ_NUM_LAYERS; ++l) {
            stq_put32((uint32_t)stq_layer_cost_ticks(l));
            stq_put32(stq_layer_cost_instr(l));
        }
    }
    stq_reply_send();
}

static void stq_frame_handle(void)
{
    if (stq_rx_overflow) {
        stq_reply_error(STQ_NO_SEQ, STQ_E_OVERSIZE, STQ_PROTO_FRAME_MAX);
        return;
    }
    const int32_t n = stq_cobs_decode(stq_rx, stq_rx_len);
    if (n < 0) {
        stq_reply_error(STQ_NO_SEQ, STQ_E_COBS, stq_rx_len);
        return;
    }
    const uint32_t len = (uint32_t)n;
    if (len < STQ_PROTO_HEADER + STQ_PROTO_CRC) {
        stq_reply_error(STQ_NO_SEQ, STQ_E_TRUNCATED, len);
        return;
    }
    if (len > STQ_PROTO_FRAME_MAX) {
        stq_reply_error(STQ_NO_SEQ, STQ_E_OVERSIZE, len);
        return;
    }
    const uint32_t body_len = len - STQ_PROTO_HEADER - STQ_PROTO_CRC;
    if (stq_crc32(0u, stq_rx, len - STQ_PROTO_CRC) != stq_get32(&stq_rx[len - STQ_PROTO_CRC])) {
        stq_reply_error(STQ_NO_SEQ, STQ_E_CRC, len);
        return;
    }
    const uint32_t seq = (uint32_t)stq_rx[2] | ((uint32_t)stq_rx[3] << 8);
    if (stq_rx[0] != STQ_PROTO_VERSION) {
        stq_reply_error(seq, STQ_E_VERSION, stq_rx[0]);
        return;
    }
    const uint8_t *body = &stq_rx[STQ_PROTO_HEADER];
    switch (stq_rx[1]) {
    case STQ_T_INFO: stq_do_info(seq); break;
    case STQ_T_UPLOAD: stq_do_upload(seq, body, body_len); break;
    case STQ_T_RUN: stq_do_run(seq, body, body_len); break;
    case STQ_T_QUIT:
#if STQ_BOARD_EMULATED
        stq_reply_begin(STQ_T_QUIT | STQ_T_REPLY, seq);
        stq_put8(0u);
        stq_reply_send();
        stq_semihost_exit(0u);
#else
        stq_reply_error(seq, STQ_E_UNSUPPORTED, STQ_T_QUIT);
#endif
        break;
    default: stq_reply_error(seq, STQ_E_TYPE, stq_rx[1]); break;
    }
}

int stq_frame_feed(uint8_t c)
{
    if (c != 0u) {
        if (stq_rx_len < sizeof stq_rx) {
            stq_rx[stq_rx_len++] = c;
        } else {
            stq_rx_overflow = 1;
        }
        return 1;
    }
    if (stq_rx_len != 0u || stq_rx_overflow) { /* an empty frame (0x00 0x00) is a no-op */
        stq_frame_handle();
    }
    stq_rx_len = 0;
    stq_rx_overflow = 0;
    return 1; /* framed mode is sticky */
}

/* --- the dispatcher ------------------------------------------------------------------------ */

enum { STQ_MODE_IDLE, STQ_MODE_FRAME, STQ_MODE_MLPERF, STQ_MODE_TEXT };
static int stq_mode = STQ_MODE_IDLE;

void stq_protocol_feed(uint8_t c)
{
    if (stq_mode == STQ_MODE_IDLE) {
        if (c == 0u) {
            stq_mode = STQ_MODE_FRAME;
            stq_rx_len = 0;
            stq_rx_overflow = 0;
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
            stq_rx_len = 0;
            stq_rx_overflow = 0;
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

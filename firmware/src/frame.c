/*
 * frame.c - the framed protocol, version 4 (docs/protocol.md): COBS frames with a version, a
 * sequence number and a CRC-32, built to finish over a noisy line. Inputs go up in small chunks
 * (UPLOAD: input tag = its CRC-32, chunk index, data) into one of STQ_PROTO_SLOTS input slots,
 * each with a bitmap of the chunks it holds (a new input replaces the one that arrived first);
 * RUN names the input by its tag and answers either the result
 * record or which chunks are still missing (so the host re-sends only those); such a RUN stays
 * pending in its slot, and the UPLOAD that completes the input runs it and answers under the
 * RUN's sequence number (no second RUN). Replies are
 * records (INFO, the run result) served in pieces of at most STQ_PROTO_REPLY_CHUNK bytes, and
 * sent 1-4 times as the host asks. A request repeated with the same sequence number (the
 * host's redundant copies) is answered once. RUN of the input that ran last answers the cached
 * record without computing again.
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
    STQ_T_RESULT = 0x05,
    STQ_T_ERROR = 0x7F,
    STQ_T_REPLY = 0x80
};

enum {
    STQ_E_CRC = 1, STQ_E_OVERSIZE = 2, STQ_E_TRUNCATED = 3, STQ_E_COBS = 4, STQ_E_VERSION = 5,
    STQ_E_TYPE = 6, STQ_E_LENGTH = 7, STQ_E_RANGE = 8, STQ_E_INPUT = 9, STQ_E_UNSUPPORTED = 10
};

#define STQ_NO_SEQ 0xFFFFu
#define STQ_PROTO_WHITEN 0x55u /* UPLOAD data bytes are sent XOR this */
#define STQ_CHUNKS ((STQ_INPUT_BYTES + STQ_PROTO_CHUNK - 1u) / STQ_PROTO_CHUNK)
#define STQ_MISSING_MAX 64u /* chunks reported per "missing" reply */

/* --- input slots ---------------------------------------------------------------------------- */

typedef struct {
    uint32_t tag;
    uint32_t stamp; /* when its first chunk arrived: the oldest input is replaced */
    uint32_t have;  /* chunks held */
    int used;
    uint32_t pend; /* a RUN that found chunks missing: 1 << 24 | flags << 16 | seq, or 0 */
    uint8_t bits[(STQ_CHUNKS + 7u) / 8u];
    uint8_t data[STQ_INPUT_BYTES];
} stq_slot_t;

static stq_slot_t stq_slots[STQ_PROTO_SLOTS];
static uint32_t stq_clock;

static stq_slot_t *stq_slot_find(uint32_t tag)
{
    for (uint32_t i = 0; i < STQ_PROTO_SLOTS; ++i) {
        if (stq_slots[i].used && stq_slots[i].tag == tag) {
            return &stq_slots[i];
        }
    }
    return (stq_slot_t *)0;
}

static stq_slot_t *stq_slot_take(uint32_t tag)
{
    stq_slot_t *s = stq_slot_find(tag);
    if (s == (stq_slot_t *)0) {
        s = &stq_slots[0];
        for (uint32_t i = 1; i < STQ_PROTO_SLOTS; ++i) {
            s = stq_slots[i].stamp < s->stamp ? &stq_slots[i] : s;
        }
        s->used = 1;
        s->tag = tag;
        s->have = 0u;
        s->pend = 0u;
        memset(s->bits, 0, sizeof s->bits);
        s->stamp = ++stq_clock;
    }
    return s;
}

/* --- records and replies ------------------------------------------------------------------ */

#define STQ_INFO_MAX (64u + 5u * 65u) /* built on the stack by each INFO request */
#define STQ_RUN_MAX (22u + STQ_OUTPUT_BYTES + 8u * STQ_NUM_LAYERS)
static uint8_t stq_run_rec[STQ_RUN_MAX];
static uint32_t stq_run_len;
static int stq_run_cached;
static uint32_t stq_run_tag, stq_run_flags;

static uint8_t *stq_rec; /* the record being written */
static uint32_t stq_rec_len, stq_rec_cap;

static void stq_put8(uint32_t v)
{
    if (stq_rec_len < stq_rec_cap) {
        stq_rec[stq_rec_len++] = (uint8_t)v;
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

static void stq_rec_begin(uint8_t *buf, uint32_t cap)
{
    stq_rec = buf;
    stq_rec_len = 0u;
    stq_rec_cap = cap;
}

static uint32_t stq_get16(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

static uint32_t stq_get32(const uint8_t *p)
{
    return stq_get16(p) | (stq_get16(&p[2]) << 16);
}

/* One reply frame: header, body, CRC; sent `copies` times. */
#define STQ_TX_MAX (STQ_PROTO_HEADER + 16u + STQ_PROTO_REPLY_CHUNK + STQ_PROTO_CRC)
static uint8_t stq_tx[STQ_TX_MAX];
static uint32_t stq_copies = 1u;

static void stq_reply_begin(uint32_t type, uint32_t seq)
{
    stq_rec_begin(stq_tx, STQ_TX_MAX - STQ_PROTO_CRC);
    stq_put8(STQ_PROTO_VERSION);
    stq_put8(type);
    stq_put16(seq);
}

static void stq_reply_send(void)
{
    uint32_t n = stq_rec_len;
    const uint32_t crc = stq_crc32(0u, stq_tx, n);
    for (uint32_t k = 0; k < 4u; ++k) {
        stq_tx[n++] = (uint8_t)(crc >> (8u * k));
    }
    for (uint32_t c = 0; c < stq_copies; ++c) {
        stq_cobs_write_frame(stq_tx, n);
    }
    stq_copies = 1u; /* only the reply of the RUN that asked goes several times: error frames
                      * for damaged frames after it go once */
}

static void stq_reply_error(uint32_t seq, uint32_t code, uint32_t detail)
{
    stq_reply_begin(STQ_T_ERROR, seq);
    stq_put8(code);
    stq_put32(detail);
    stq_reply_send();
}

/* status 0, total u16, offset u16, then at most STQ_PROTO_REPLY_CHUNK bytes of the record */
static void stq_reply_record(uint32_t type, uint32_t seq, const uint8_t *rec, uint32_t len,
                             uint32_t offset)
{
    if (offset > len) {
        stq_reply_error(seq, STQ_E_RANGE, offset);
        return;
    }
    const uint32_t left = len - offset;
    const uint32_t n = left < STQ_PROTO_REPLY_CHUNK ? left : STQ_PROTO_REPLY_CHUNK;
    stq_reply_begin(type | STQ_T_REPLY, seq);
    stq_put8(0u);
    stq_put16(len);
    stq_put16(offset);
    for (uint32_t i = 0; i < n; ++i) {
        stq_put8(rec[offset + i]);
    }
    stq_reply_send();
}

/* --- requests ------------------------------------------------------------------------------- */

static void stq_do_info(uint32_t seq, const uint8_t *body, uint32_t len)
{
    uint8_t info_rec[STQ_INFO_MAX];
    stq_rec_begin(info_rec, sizeof info_rec);
    stq_put8(STQ_PROTO_VERSION);
    stq_put16(STQ_PROTO_CHUNK);
    stq_put16(STQ_PROTO_REPLY_CHUNK);
    stq_put32(stq_uart_rx_capacity());
    stq_put32(stq_uart_rx_dropped());
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
    stq_put8(STQ_PROTO_SLOTS);
    const uint32_t total = stq_rec_len;
    stq_reply_record(STQ_T_INFO, seq, info_rec, total, len >= 2u ? stq_get16(body) : 0u);
}

static void stq_run_slot(uint32_t seq, stq_slot_t *s, uint32_t flags);

static void stq_do_upload(uint32_t seq, const uint8_t *body, uint32_t len)
{
    if (len < 6u) {
        stq_reply_error(seq, STQ_E_LENGTH, len);
        return;
    }
    const uint32_t index = stq_get16(&body[4]);
    const uint32_t offset = index * STQ_PROTO_CHUNK;
    const uint32_t n = len - 6u;
    const uint32_t want = offset + STQ_PROTO_CHUNK <= STQ_INPUT_BYTES
                              ? STQ_PROTO_CHUNK : STQ_INPUT_BYTES - offset;
    if (index >= STQ_CHUNKS) {
        stq_reply_error(seq, STQ_E_RANGE, index);
        return;
    }
    if (n != want) {
        stq_reply_error(seq, STQ_E_LENGTH, len);
        return;
    }
    stq_slot_t *s = stq_slot_take(stq_get32(body));
    for (uint32_t i = 0; i < n; ++i) { /* whitened on the wire: few zeros, few COBS codes */
        s->data[offset + i] = (uint8_t)(body[6u + i] ^ STQ_PROTO_WHITEN);
    }
    const uint8_t bit = (uint8_t)(1u << (index % 8u));
    if (!(s->bits[index / 8u] & bit)) {
        s->bits[index / 8u] |= bit;
        s->have += 1u;
        if (s->pend != 0u && s->have == STQ_CHUNKS) { /* the chunk a RUN waited for: run it */
            const uint32_t p = s->pend;
            stq_copies = 1u + ((p >> 22) & 3u);
            stq_run_slot(p & 0xFFFFu, s, (p >> 16) & 0xFFu);
        }
    }
}

/* status 1, tag u32, first chunk u16, count u16, then a bitmap of `count` chunks from the
 * first (1 = missing). */
static void stq_reply_missing(uint32_t seq, uint32_t tag, const stq_slot_t *s)
{
    uint32_t first = 0u;
    while (s != (const stq_slot_t *)0 && first < STQ_CHUNKS &&
           (s->bits[first / 8u] & (1u << (first % 8u)))) {
        ++first;
    }
    const uint32_t left = STQ_CHUNKS - first;
    const uint32_t count = left < STQ_MISSING_MAX ? left : STQ_MISSING_MAX;
    stq_reply_begin(STQ_T_RUN | STQ_T_REPLY, seq);
    stq_put8(1u);
    stq_put32(tag);
    stq_put16(first);
    stq_put16(count);
    for (uint32_t b = 0; b < count; b += 8u) {
        uint32_t byte = 0u;
        for (uint32_t k = 0; k < 8u && b + k < count; ++k) {
            const uint32_t i = first + b + k;
            const int held = s != (const stq_slot_t *)0 && (s->bits[i / 8u] & (1u << (i % 8u)));
            byte |= held ? 0u : (1u << k);
        }
        stq_put8(byte);
    }
    stq_reply_send();
}

static void stq_do_run(uint32_t seq, const uint8_t *body, uint32_t len)
{
    if (len != 5u) {
        stq_reply_error(seq, STQ_E_LENGTH, len);
        return;
    }
    const uint32_t tag = stq_get32(body);
    stq_slot_t *s = stq_slot_find(tag);
    if (s == (stq_slot_t *)0) {
        stq_reply_missing(seq, tag, s);
        return;
    }
    stq_run_slot(seq, s, body[4]);
}

/* RUN the input of slot s, or answer which chunks are missing and keep the RUN pending: the
 * UPLOAD that completes the slot runs it and answers with this RUN's sequence number. */
static void stq_run_slot(uint32_t seq, stq_slot_t *s, uint32_t flags_byte)
{
    const uint32_t tag = s->tag;
    const uint32_t flags = flags_byte & 1u;
    s->pend = 0u;
    if (s->have == STQ_CHUNKS && stq_crc32(0u, s->data, STQ_INPUT_BYTES) != tag) {
        s->have = 0u; /* chunks of two inputs mixed */
        memset(s->bits, 0, sizeof s->bits);
    }
    if (s->have != STQ_CHUNKS) {
        s->pend = (1u << 24) | ((flags_byte & 0xC1u) << 16) | seq;
        stq_reply_missing(seq, tag, s);
        return;
    }
    if (!stq_run_cached || stq_run_tag != tag || stq_run_flags != flags) {
        stq_run_result_t r;
        stq_run_input(s->data, (int)flags, 1, &r);
        stq_rec_begin(stq_run_rec, sizeof stq_run_rec);
        stq_put32(tag);
        stq_put32((uint32_t)r.rc);
        stq_put64(r.ticks);
        stq_put32(r.instr);
        for (uint32_t i = 0; i < (uint32_t)STQ_OUTPUT_BYTES; ++i) {
            stq_put8(((const uint8_t *)stq_model_output())[i]);
        }
        if (flags) { /* per-layer costs follow the output */
            stq_put16(STQ_NUM_LAYERS);
            for (uint32_t l = 0; l < (uint32_t)STQ_NUM_LAYERS; ++l) {
                stq_put32((uint32_t)stq_layer_cost_ticks(l));
                stq_put32(stq_layer_cost_instr(l));
            }
        }
        stq_run_len = stq_rec_len;
        stq_run_cached = 1;
        stq_run_tag = tag;
        stq_run_flags = flags;
    }
    stq_reply_record(STQ_T_RUN, seq, stq_run_rec, stq_run_len, 0u);
}

static void stq_do_result(uint32_t seq, const uint8_t *body, uint32_t len)
{
    if (len != 6u) {
        stq_reply_error(seq, STQ_E_LENGTH, len);
        return;
    }
    if (!stq_run_cached || stq_get32(body) != stq_run_tag) {
        stq_reply_error(seq, STQ_E_INPUT, stq_run_cached ? stq_run_tag : 0u);
        return;
    }
    stq_reply_record(STQ_T_RESULT, seq, stq_run_rec, stq_run_len, stq_get16(&body[4]));
}

/* --- frames --------------------------------------------------------------------------------- */

static uint8_t stq_rx[STQ_PROTO_ENCODED_MAX];
static uint8_t stq_pl[STQ_PROTO_ENCODED_MAX + 1u]; /* the decoded payload (or its repair) */
static uint32_t stq_rx_len;
static int stq_rx_overflow;
static uint32_t stq_last_key = 0xFFFFFFFFu; /* type << 16 | seq of the last request served */

/* The payload of the frame in stq_rx, into stq_pl: its length, or 0 after answering the
 * error (when not even stq_frame_repair explains the damage). */
static uint32_t stq_frame_payload(void)
{
    uint32_t code = 0u, detail = 0u;
    for (uint32_t i = 0; i < stq_rx_len; ++i) {
        stq_pl[i] = stq_rx[i];
    }
    const int32_t n = stq_cobs_decode(stq_pl, stq_rx_len);
    if (n < 0) {
        code = STQ_E_COBS, detail = stq_rx_len;
    } else if ((uint32_t)n < STQ_PROTO_HEADER + STQ_PROTO_CRC) {
        code = STQ_E_TRUNCATED, detail = (uint32_t)n;
    } else if ((uint32_t)n > STQ_PROTO_FRAME_MAX) {
        code = STQ_E_OVERSIZE, detail = (uint32_t)n;
    } else if (!stq_crc32_fix_bit(stq_pl, (uint32_t)n)) { /* a single flipped bit */
        code = STQ_E_CRC, detail = (uint32_t)n;
    }
    if (code == 0u) {
        return (uint32_t)n;
    }
    const int32_t r = stq_frame_repair(stq_rx, stq_rx_len, stq_pl, sizeof stq_pl);
    if (r > 0) {
        return (uint32_t)r;
    }
    stq_reply_error(STQ_NO_SEQ, code, detail);
    return 0u;
}

static void stq_frame_handle(void)
{
    if (stq_rx_overflow) {
        stq_reply_error(STQ_NO_SEQ, STQ_E_OVERSIZE, STQ_PROTO_FRAME_MAX);
        return;
    }
    const uint32_t len = stq_frame_payload();
    if (len == 0u) {
        return;
    }
    const uint32_t body_len = len - STQ_PROTO_HEADER - STQ_PROTO_CRC;
    const uint32_t type = stq_pl[1];
    const uint32_t seq = stq_get16(&stq_pl[2]);
    if (stq_pl[0] != STQ_PROTO_VERSION) {
        stq_reply_error(seq, STQ_E_VERSION, stq_pl[0]);
        return;
    }
    const uint32_t key = (type << 16) | seq;
    if (type != STQ_T_UPLOAD && key == stq_last_key) {
        return; /* a redundant copy of the request just answered */
    }
    stq_last_key = type != STQ_T_UPLOAD ? key : stq_last_key;
    const uint8_t *body = &stq_pl[STQ_PROTO_HEADER];
    switch (type) {
    case STQ_T_INFO: stq_do_info(seq, body, body_len); break;
    case STQ_T_UPLOAD: stq_do_upload(seq, body, body_len); break;
    case STQ_T_RUN:
    case STQ_T_RESULT:
        if (body_len == 5u && type == STQ_T_RUN) {
            stq_copies = 1u + ((uint32_t)body[4] >> 6); /* flags bits 6-7: extra copies */
        }
        if (type == STQ_T_RUN) {
            stq_do_run(seq, body, body_len);
        } else {
            stq_do_result(seq, body, body_len);
        }
        break;
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
    default: stq_reply_error(seq, STQ_E_TYPE, type); break;
    }
}

void stq_frame_reset(void)
{
    stq_rx_len = 0u;
    stq_rx_overflow = 0;
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
    stq_frame_reset();
    return 1; /* framed mode is sticky */
}

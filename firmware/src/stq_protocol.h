/* stq_protocol.h - private: the device protocols (framed, MLPerf Tiny ASCII, text single-byte commands)
 * and what they share: the uploaded input, one measured inference, CRC-32 and COBS. */
#ifndef STQ_PROTOCOL_H
#define STQ_PROTOCOL_H

#include <stdint.h>

#include "model.h"
#include "stq_board_config.h"

/* Which device protocols this firmware carries (`stq build --protocols`, written into
 * stq_board_config.h); a build without the settings (the virtual board, the fuzzers) has all
 * three. binary: the framed protocol (frame.c, link.c); text: the single-byte commands
 * (protocol_text.c); mlperf: the MLPerf Tiny runner ASCII (mlperf.c). */
#ifndef STQ_PROTOCOL_BINARY
#define STQ_PROTOCOL_BINARY 1
#endif
#ifndef STQ_PROTOCOL_TEXT
#define STQ_PROTOCOL_TEXT 1
#endif
#ifndef STQ_PROTOCOL_MLPERF
#define STQ_PROTOCOL_MLPERF 1
#endif
/* The text and MLPerf protocols load the input byte by byte into stq_input_copy; the framed one
 * keeps its own input slots and runs from them. */
#define STQ_HAS_INPUT_COPY (STQ_PROTOCOL_TEXT || STQ_PROTOCOL_MLPERF)

/* Framed protocol (docs/protocol.md): version, UPLOAD chunk and reply piece sizes (small, so
 * that most frames survive a noisy line), frame buffer sizes. */
#define STQ_PROTO_VERSION 4u
#ifndef STQ_PROTO_CHUNK
#define STQ_PROTO_CHUNK 32u
#endif
#ifndef STQ_PROTO_REPLY_CHUNK
#define STQ_PROTO_REPLY_CHUNK 40u
#endif
/* Input slots of the framed protocol (reported in INFO; the host keeps at most this many
 * inputs in flight): four for inputs up to 1 KB, else two. */
#ifndef STQ_PROTO_SLOTS
#define STQ_PROTO_SLOTS (STQ_INPUT_BYTES <= 256u ? 8u : STQ_INPUT_BYTES <= 1024u ? 4u : 2u)
#endif
#define STQ_PROTO_HEADER 4u  /* version, type, seq (u16 LE) */
#define STQ_PROTO_CRC 4u
/* Largest decoded request: header + UPLOAD body (tag, chunk index) + chunk + CRC. */
#define STQ_PROTO_FRAME_MAX (STQ_PROTO_HEADER + 6u + STQ_PROTO_CHUNK + STQ_PROTO_CRC)
/* Its COBS encoding: one overhead byte per 254 data bytes, plus one. */
#define STQ_PROTO_ENCODED_MAX (STQ_PROTO_FRAME_MAX + STQ_PROTO_FRAME_MAX / 254u + 2u)

#if STQ_HAS_INPUT_COPY
/* The uploaded input, kept outside the arena (invoke may overwrite its input in place). */
extern uint8_t stq_input_copy[STQ_INPUT_BYTES];
#endif

/* One inference on `input` (STQ_INPUT_BYTES, outside the arena; copied into stq_input_copy
 * too when the build has it): rc, counter ticks and instructions (0 when unknown). */
typedef struct {
    int32_t rc;
    uint64_t ticks;
    uint32_t instr;
} stq_run_result_t;
void stq_run_input(const uint8_t *input, int profile, int restart_counter, stq_run_result_t *result);
/* Per-layer costs of the last stq_run_input(profile=1): ticks and instructions of layer l. */
uint64_t stq_layer_cost_ticks(uint32_t layer);
uint32_t stq_layer_cost_instr(uint32_t layer);

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320, init and final xor 0xFFFFFFFF). Chain calls by
 * passing the previous result as `crc` (start with 0). */
uint32_t stq_crc32(uint32_t crc, const uint8_t *data, uint32_t bytes);

/* `frame` is data followed by its CRC-32 (LE). Returns 1 when the CRC matches, or matches
 * after flipping back the one bit whose flip explains the difference (a single-bit error,
 * corrected in place), else 0. CRC-32 has Hamming distance >= 4 at these lengths, so a single
 * flip is always found; a frame with more errors is corrected into a wrong one with
 * probability about 8 x bytes / 2^32 (RUN re-checks the whole input's CRC before it runs). */
int stq_crc32_fix_bit(uint8_t *frame, uint32_t bytes);

/* COBS-decode `bytes` encoded bytes (no 0x00 inside) in place; returns the decoded length, or
 * -1 when the encoding is malformed (a code byte pointing past the end). */
int32_t stq_cobs_decode(uint8_t *buf, uint32_t bytes);
/* Repair of a frame whose payload failed its CRC-32 (stq_crc32_fix_bit included) or its
 * COBS: `enc` the `len` received bytes between two delimiters. Tries one flipped bit in a COBS
 * code byte, one inserted byte, one dropped byte (a data byte's value solved from the CRC
 * syndrome; a code byte's from the COBS chain); the first payload of this protocol version,
 * a request type and a right CRC-32 goes to `out` (`cap` >= len + 1 bytes). Returns its
 * length, or -1. A frame with more damage is "repaired" into a wrong one with probability about
 * 3 x 10^-6 (the dropped-byte case solves 8 of the 32 check bits): no wrong result can come of
 * it, as RUN checks the input's CRC-32 against its tag before it runs and the host checks the
 * tag in the run record (a wrong RESULT request draws an error that stops the session). */
int32_t stq_frame_repair(const uint8_t *enc, uint32_t len, uint8_t *out, uint32_t cap);
/* Write 0x00, COBS(data), 0x00 to the UART. */
void stq_cobs_write_frame(const uint8_t *data, uint32_t bytes);

/* Per-mode byte handlers. Each returns 1 while its command is still incomplete (the next byte
 * must go to the same handler), 0 once it is done. */
int stq_frame_feed(uint8_t c);   /* frame.c: framed (COBS + CRC-32) */
void stq_frame_reset(void);      /* frame.c: start a new frame */
int stq_mlperf_feed(uint8_t c);  /* mlperf.c: MLPerf Tiny / EEMBC runner ASCII */
int stq_text_feed(uint8_t c);  /* protocol_text.c: single-byte minimal commands */
void stq_hello(void);           /* protocol.c: the "STQ model=..." line (boot banner, 'H') */

/* Feed one received byte to the protocol dispatcher (never blocks). */
void stq_protocol_feed(uint8_t c);

#endif /* STQ_PROTOCOL_H */

/*
 * stq_fuzz_main.c - bounded random-input fuzzer of the device-side parsers (framed, MLPerf
 * ASCII, minimal), built with -fsanitize=address,undefined. It feeds byte streams straight into
 * stq_protocol_feed(): pure noise, valid frames with flipped / dropped / inserted bytes,
 * oversize frames and ASCII command soup. Any sanitizer report aborts the process. Linked with
 * stq_fuzz_hal.c (the silent HAL); stq_libfuzzer.c is the coverage-guided twin.
 *
 *   stq_fuzz SECONDS [SEED]     prints "fuzz: N cases, M bytes" and exits 0
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stq_firmware.h"
#include "stq_protocol.h"

static uint64_t stq_rng_state = 0x9E3779B97F4A7C15u;
extern uint64_t stq_fuzz_out_bytes; /* stq_fuzz_hal.c */

static uint32_t rnd(void)
{
    stq_rng_state ^= stq_rng_state << 13;
    stq_rng_state ^= stq_rng_state >> 7;
    stq_rng_state ^= stq_rng_state << 17;
    return (uint32_t)(stq_rng_state >> 11);
}

/* --- generators --------------------------------------------------------------------------- */
static uint8_t frame[STQ_PROTO_FRAME_MAX + 64u];
static uint8_t enc[2u * STQ_PROTO_ENCODED_MAX];

static uint32_t cobs_encode(const uint8_t *in, uint32_t n, uint8_t *out)
{
    uint32_t o = 1, code_at = 0;
    uint8_t code = 1;
    for (uint32_t i = 0; i < n; ++i) {
        if (in[i] == 0u) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFFu) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    return o;
}

static void feed(const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; ++i) {
        stq_protocol_feed(p[i]);
    }
}

static void one_frame(void)
{
    static const uint8_t types[] = {1, 2, 3, 4, 5, 6, 0x7F, 0x81};
    uint32_t body;
    const uint32_t kind = rnd() % 8u;
    frame[0] = (rnd() % 16u) ? STQ_PROTO_VERSION : (uint8_t)rnd();
    frame[1] = types[rnd() % sizeof types];
    frame[2] = (uint8_t)rnd();
    frame[3] = (uint8_t)rnd();
    if (kind == 0) {
        body = rnd() % (STQ_PROTO_CHUNK + 40u); /* sometimes oversize */
    } else if (frame[1] == 2u) {
        body = 6u + ((rnd() & 1u) ? STQ_PROTO_CHUNK : rnd() % (STQ_PROTO_CHUNK + 8u));
    } else {
        body = rnd() % 12u;
    }
    for (uint32_t i = 0; i < body; ++i) {
        frame[4u + i] = (uint8_t)rnd();
    }
    static const uint32_t tags[] = {0u, 1u, 0xDEADBEEFu};
    if (frame[1] == 2u && body >= 6u && (rnd() & 1u)) { /* plausible tags and chunk indices */
        const uint16_t index = (uint16_t)(rnd() % (STQ_INPUT_BYTES / STQ_PROTO_CHUNK + 2u));
        memcpy(&frame[4], &tags[rnd() % 3u], 4);
        memcpy(&frame[8], &index, 2);
    }
    if ((frame[1] == 3u || frame[1] == 5u) && (rnd() & 1u)) { /* RUN / RESULT of a tag */
        body = frame[1] == 3u ? 5u : 6u;
        memcpy(&frame[4], &tags[rnd() % 3u], 4);
        frame[8] = (uint8_t)rnd();
        frame[9] = (uint8_t)(rnd() % 2u);
    }
    uint32_t n = 4u + body;
    const uint32_t crc = stq_crc32(0u, frame, n);
    memcpy(&frame[n], &crc, 4);
    n += 4u;
    uint32_t e = cobs_encode(frame, n, enc + 1);
    enc[0] = 0u;
    enc[e + 1u] = 0u;
    e += 2u;
    const uint32_t damage = rnd() % 4u; /* 0: intact */
    for (uint32_t d = 0; d < damage; ++d) {
        const uint32_t at = rnd() % e;
        switch (rnd() % 3u) {
        case 0: enc[at] ^= (uint8_t)(1u << (rnd() % 8u)); break;
        case 1: memmove(&enc[at], &enc[at + 1u], e - at - 1u); --e; break;
        default:
            if (e + 1u < sizeof enc) {
                memmove(&enc[at + 1u], &enc[at], e - at);
                enc[at] = (uint8_t)rnd();
                ++e;
            }
            break;
        }
        if (e < 2u) {
            break;
        }
    }
    feed(enc, e);
}

static void ascii_soup(void)
{
    static const char *const words[] = {
        "name%", "profile%", "results%", "db load 64%", "db load 0%", "db load 99999999999%",
        "db 0a1B2c%", "db zz%", "infer 2 1%", "infer 0%", "infer%", "infer 1 4294967296%",
        "unknown%", "%", "H", "I", "R", "P", "O", "Q", "Z", "\r\n",
    };
    const uint32_t n = 1u + rnd() % 6u;
    for (uint32_t i = 0; i < n; ++i) {
        const char *w = words[rnd() % (sizeof words / sizeof words[0])];
        feed((const uint8_t *)w, (uint32_t)strlen(w));
        if (w[0] == 'I' && w[1] == '\0') { /* the minimal upload: its raw bytes */
            for (uint32_t k = 0; k < STQ_INPUT_BYTES; ++k) {
                stq_protocol_feed((uint8_t)rnd());
            }
        }
    }
    if (rnd() % 8u == 0u) { /* a very long line */
        for (uint32_t k = 0; k < 1500u; ++k) {
            stq_protocol_feed((uint8_t)('a' + rnd() % 26u));
        }
        stq_protocol_feed('%');
    }
}

int main(int argc, char **argv)
{
    const double seconds = argc > 1 ? atof(argv[1]) : 5.0;
    if (argc > 2) {
        stq_rng_state = strtoull(argv[2], NULL, 10) | 1u;
    }
    const time_t start = time(NULL);
    uint64_t cases = 0, bytes = 0;
    /* one ASCII phase first (MLPerf and minimal modes), then framed mode (sticky) */
    while (difftime(time(NULL), start) < seconds / 3.0) {
        ascii_soup();
        uint8_t noise[64];
        const uint32_t n = rnd() % sizeof noise;
        for (uint32_t i = 0; i < n; ++i) {
            noise[i] = (uint8_t)(rnd() % 3u ? 0x20u + rnd() % 0x5Fu : rnd());
            if (noise[i] == 0u) {
                noise[i] = 1u; /* keep the ASCII phase out of framed mode */
            }
        }
        feed(noise, n);
        ++cases;
        bytes += n;
    }
    while (difftime(time(NULL), start) < seconds) {
        if (rnd() % 8u == 0u) {
            uint8_t noise[300];
            const uint32_t n = rnd() % sizeof noise;
            for (uint32_t i = 0; i < n; ++i) {
                noise[i] = (uint8_t)rnd();
            }
            feed(noise, n);
            bytes += n;
        } else if (rnd() % 64u == 0u) {
            for (uint32_t k = 0; k < STQ_PROTO_ENCODED_MAX + 100u; ++k) {
                stq_protocol_feed((uint8_t)(1u + rnd() % 255u)); /* oversize, no delimiter */
            }
            stq_protocol_feed(0u);
        } else {
            one_frame();
        }
        ++cases;
    }
    printf("fuzz: %llu cases, %llu bytes out\n", (unsigned long long)cases,
           (unsigned long long)stq_fuzz_out_bytes);
    return 0;
}

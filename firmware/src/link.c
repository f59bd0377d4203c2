/* link.c - CRC-32, COBS (Cheshire & Baker 1999) and repair of damaged frames, no tables in RAM. */
#include <stdint.h>

#include "stq_firmware.h"
#include "stq_protocol.h"

/* CRC-32 four bits at a time: a 16-entry table in flash. */
static const uint32_t stq_crc32_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t stq_crc32(uint32_t crc, const uint8_t *data, uint32_t bytes)
{
    crc = ~crc;
    for (uint32_t i = 0; i < bytes; ++i) {
        crc ^= data[i];
        crc = (crc >> 4) ^ stq_crc32_nibble[crc & 0xFu];
        crc = (crc >> 4) ^ stq_crc32_nibble[crc & 0xFu];
    }
    return ~crc;
}

/* One byte through the raw CRC register (no init, no final xor): linear over GF(2). */
static uint32_t stq_crc32_raw_byte(uint32_t reg, uint32_t byte)
{
    reg ^= byte;
    reg = (reg >> 4) ^ stq_crc32_nibble[reg & 0xFu];
    return (reg >> 4) ^ stq_crc32_nibble[reg & 0xFu];
}

/* A little-endian u32 (the CRC field). */
static uint32_t stq_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

int stq_crc32_fix_bit(uint8_t *frame, uint32_t bytes)
{
    if (bytes < 5u) {
        return 0;
    }
    const uint32_t n = bytes - 4u; /* the data the CRC covers, then the CRC (LE) */
    const uint32_t syndrome = stq_crc32(0u, frame, n) ^ stq_le32(&frame[n]);
    if (syndrome == 0u) {
        return 1;
    }
    if ((syndrome & (syndrome - 1u)) == 0u) {
        return 1; /* one flipped bit in the CRC field itself: the data is intact */
    }
    /* A flip of bit k of data byte j changes the CRC by the raw CRC of that bit followed by
     * n-1-j zero bytes: walk j from the end, advancing eight registers one zero byte a step. */
    uint32_t reg[8];
    for (uint32_t k = 0; k < 8u; ++k) {
        reg[k] = stq_crc32_raw_byte(0u, 1u << k);
    }
    for (uint32_t z = 0; z < n; ++z) {
        for (uint32_t k = 0; k < 8u; ++k) {
            if (reg[k] == syndrome) {
                frame[n - 1u - z] ^= (uint8_t)(1u << k);
                return 1;
            }
            reg[k] = stq_crc32_raw_byte(reg[k], 0u);
        }
    }
    return 0;
}

/* COBS-decode in place; *where: the output index input byte `track` went to (-1: a code
 * byte, or not in the frame). */
static int32_t stq_cobs_decode_track(uint8_t *buf, uint32_t bytes, uint32_t track,
                                     int32_t *where)
{
    uint32_t in = 0, out = 0;
    *where = -1;
    while (in < bytes) {
        const uint32_t code = buf[in++];
        if (code == 0u || in + code - 1u > bytes) {
            return -1;
        }
        for (uint32_t k = 1; k < code; ++k) {
            if (in == track) {
                *where = (int32_t)out;
            }
            buf[out++] = buf[in++];
        }
        if (code != 0xFFu && in < bytes) {
            buf[out++] = 0u;
        }
    }
    return (int32_t)out;
}

int32_t stq_cobs_decode(uint8_t *buf, uint32_t bytes)
{
    int32_t where;
    return stq_cobs_decode_track(buf, bytes, 0xFFFFFFFFu, &where);
}

/* --- repair of a damaged frame (docs/protocol.md, "Repair") -------------------------------- */

/* A request of a frame's length, of this protocol version and a request type, whose CRC-32
 * is right (the repair takes the first such candidate: the header check keeps a frame that
 * more than one payload explains, e.g. a byte rotated into the CRC, from passing). */
static int stq_payload_ok(const uint8_t *p, int32_t n)
{
    if (n < (int32_t)(STQ_PROTO_HEADER + STQ_PROTO_CRC) || n > (int32_t)STQ_PROTO_FRAME_MAX ||
        p[0] != STQ_PROTO_VERSION || p[1] < 0x01u || p[1] > 0x05u) { /* INFO .. RESULT */
        return 0;
    }
    return stq_crc32(0u, p, (uint32_t)n - 4u) == stq_le32(&p[n - 4]);
}

/* enc with byte `skip` left out (skip >= len: none) and byte v put before index `at`
 * (at > len: none), into out; the new length. */
static uint32_t stq_edit(const uint8_t *enc, uint32_t len, uint8_t *out, uint32_t skip,
                         uint32_t at, uint8_t v)
{
    uint32_t o = 0;
    for (uint32_t i = 0; i <= len; ++i) {
        if (i == at) {
            out[o++] = v;
        }
        if (i < len && i != skip) {
            out[o++] = enc[i];
        }
    }
    return o;
}

/* The CRC register run back `bits` steps (the inverse of the reflected CRC-32's shift). */
static uint32_t stq_crc32_back(uint32_t reg, uint32_t bits)
{
    while (bits-- != 0u) {
        reg = (reg & 0x80000000u) != 0u ? ((reg ^ 0xEDB88320u) << 1) | 1u : reg << 1;
    }
    return reg;
}

int32_t stq_frame_repair(const uint8_t *enc, uint32_t len, uint8_t *out, uint32_t cap)
{
    const uint32_t none = 0xFFFFFFFFu;
    int32_t n, where;
    if (len + 1u > cap) {
        return -1;
    }
    /* a flipped bit in a COBS code byte (one in a data byte the caller corrects) */
    for (uint32_t c = 0; c < len; c += enc[c]) {
        for (uint32_t b = 0; b < 8u; ++b) {
            stq_edit(enc, len, out, none, none, 0u);
            out[c] ^= (uint8_t)(1u << b);
            if (out[c] != 0u && stq_payload_ok(out, n = stq_cobs_decode(out, len))) {
                return n;
            }
        }
    }
    /* an inserted byte (the payload is one byte shorter than the COBS bytes) */
    for (uint32_t j = 0; len >= STQ_PROTO_HEADER + STQ_PROTO_CRC + 2u && j < len; ++j) {
        stq_edit(enc, len, out, j, none, 0u);
        if (stq_payload_ok(out, n = stq_cobs_decode(out, len - 1u))) {
            return n;
        }
    }
    /* a dropped data byte: a placeholder there, and the CRC's syndrome names its value */
    for (uint32_t j = 0; len <= STQ_PROTO_FRAME_MAX && j <= len; ++j) {
        stq_edit(enc, len, out, none, j, 1u);
        n = stq_cobs_decode_track(out, len + 1u, j, &where);
        if (where < 0 || n < (int32_t)(STQ_PROTO_HEADER + STQ_PROTO_CRC) ||
            n > (int32_t)STQ_PROTO_FRAME_MAX) {
            continue;
        }
        const uint32_t p = (uint32_t)where, c = (uint32_t)n - 4u;
        out[p] = 0u;
        const uint32_t s = stq_crc32(0u, out, c) ^ stq_le32(&out[c]);
        uint32_t x;
        if (p < c) {
            x = stq_crc32_back(s, 8u * (c - p)); /* the byte whose CRC the syndrome is */
        } else {
            x = s >> (8u * (p - c)); /* a byte of the CRC field itself */
            x = (x << (8u * (p - c))) == s ? x : 0u;
        }
        if (x != 0u && x <= 0xFFu) {
            out[p] = (uint8_t)x;
            if (stq_payload_ok(out, n)) {
                return n;
            }
        }
    }
    /* a dropped code byte: only where the chain of code bytes lands, and only values whose
     * chain ends where the frame does */
    for (uint32_t c = 0; c <= len; c += enc[c]) {
        for (uint32_t v = 1; v <= 0xFFu && c + v <= len + 1u; ++v) {
            uint32_t i = c + v;
            while (i < len + 1u) {
                i += enc[i - 1u];
            }
            if (i != len + 1u) {
                continue;
            }
            stq_edit(enc, len, out, none, c, (uint8_t)v);
            if (stq_payload_ok(out, n = stq_cobs_decode(out, len + 1u))) {
                return n;
            }
        }
        if (c == len) {
            break;
        }
    }
    return -1;
}

void stq_cobs_write_frame(const uint8_t *data, uint32_t bytes)
{
    uint32_t start = 0;
    stq_uart_putc(0u);
    for (;;) {
        uint32_t end = start;
        while (end < bytes && data[end] != 0u && end - start < 254u) {
            ++end;
        }
        stq_uart_putc((uint8_t)(end - start + 1u));
        stq_uart_write(&data[start], end - start);
        if (end >= bytes) {
            if (end - start == 254u) {
                stq_uart_putc(1u); /* a full block ending the data: one empty block follows */
            }
            break;
        }
        start = (data[end] == 0u) ? end + 1u : end;
        if (data[end] == 0u && start == bytes) {
            stq_uart_putc(1u); /* trailing zero: one empty block */
            break;
        }
    }
    stq_uart_putc(0u);
}

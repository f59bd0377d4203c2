/* link.c - CRC-32 and COBS (Cheshire & Baker 1999) for the framed protocol, no tables in RAM. */
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

int stq_crc32_fix_bit(uint8_t *frame, uint32_t bytes)
{
    if (bytes < 5u) {
        return 0;
    }
    const uint32_t n = bytes - 4u; /* the data the CRC covers, then the CRC (LE) */
    const uint32_t got = (uint32_t)frame[n] | ((uint32_t)frame[n + 1u] << 8) |
                         ((uint32_t)frame[n + 2u] << 16) | ((uint32_t)frame[n + 3u] << 24);
    const uint32_t syndrome = stq_crc32(0u, frame, n) ^ got;
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

int32_t stq_cobs_decode(uint8_t *buf, uint32_t bytes)
{
    uint32_t in = 0, out = 0;
    while (in < bytes) {
        const uint32_t code = buf[in++];
        if (code == 0u || in + code - 1u > bytes) {
            return -1;
        }
        for (uint32_t k = 1; k < code; ++k) {
            buf[out++] = buf[in++];
        }
        if (code != 0xFFu && in < bytes) {
            buf[out++] = 0u;
        }
    }
    return (int32_t)out;
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

/*
 * stq_libfuzzer.c - libFuzzer entry point (coverage-guided) for the device-side parsers: every
 * fuzz input is fed byte by byte into stq_protocol_feed(), as the UART would (framed COBS+CRC,
 * MLPerf ASCII and the minimal commands, modes chosen by the bytes themselves). Built by
 * toolchain/virtual_board.py with clang -fsanitize=fuzzer,address,undefined and linked with the
 * silent HAL of stq_fuzz_hal.c. The parser state carries over from one input to the next, like
 * one long byte stream.
 */
#include <stddef.h>
#include <stdint.h>

#include "stq_protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; ++i) {
        stq_protocol_feed(data[i]);
    }
    return 0;
}

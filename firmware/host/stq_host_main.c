/* Host-native runner for generated models (tests and the demo).
 *
 *   stq_host INPUTS.bin OUTPUTS.bin          per input: the output bytes, then the argmax
 *                                            as a little-endian int32
 *   stq_host INPUTS.bin OUTPUTS.bin layers   per input: every layer's output bytes, in order
 *
 * INPUTS.bin holds whole inputs of STQ_INPUT_BYTES each, back to back. Exit 0 on success. */
#include <stdio.h>
#include <string.h>

#include "model.h"

static FILE *stq_out_file;
static int stq_write_failed;

static void stq_write_layer(uint32_t layer, const void *data, uint32_t bytes)
{
    (void)layer;
    if (fwrite(data, 1, bytes, stq_out_file) != bytes) {
        stq_write_failed = 1;
    }
}

int main(int argc, char **argv)
{
    static uint8_t input[STQ_INPUT_BYTES];
    static uint8_t output[STQ_OUTPUT_BYTES];
    FILE *in;
    int layers;
    size_t got;

    if (argc < 3) {
        fprintf(stderr, "usage: %s INPUTS.bin OUTPUTS.bin [layers]\n", argv[0]);
        return 2;
    }
    layers = argc > 3 && strcmp(argv[3], "layers") == 0;
    in = fopen(argv[1], "rb");
    if (in == NULL) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
    stq_out_file = fopen(argv[2], "wb");
    if (stq_out_file == NULL) {
        fprintf(stderr, "cannot open %s\n", argv[2]);
        fclose(in);
        return 2;
    }
    if (layers) {
        stq_model_set_layer_hook(stq_write_layer);
    }
    while ((got = fread(input, 1, sizeof input, in)) == sizeof input) {
        stq_model_run(input, output);
        if (!layers) {
            int32_t top = stq_model_argmax();
            uint8_t le[4];
            le[0] = (uint8_t)top;
            le[1] = (uint8_t)(top >> 8);
            le[2] = (uint8_t)(top >> 16);
            le[3] = (uint8_t)(top >> 24);
            if (fwrite(output, 1, sizeof output, stq_out_file) != sizeof output ||
                fwrite(le, 1, 4, stq_out_file) != 4) {
                stq_write_failed = 1;
            }
        }
    }
    fclose(in);
    if (fclose(stq_out_file) != 0 || stq_write_failed) {
        fprintf(stderr, "cannot write %s\n", argv[2]);
        return 2;
    }
    if (got != 0) {
        fprintf(stderr, "input file ends with a partial input (%lu bytes)\n",
                (unsigned long)got);
        return 3;
    }
    return 0;
}

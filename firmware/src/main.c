/* main.c - bring the board up, then serve the device command loop. */
#include "stq_firmware.h"

int main(void)
{
    stq_board_init();
    stq_uart_init();
    stq_counter_init();
#if defined(STQ_MLPERF_ENERGY) && STQ_MLPERF_ENERGY
    stq_timestamp_init(); /* idle high before the first falling edge (th_timestamp_initialize) */
#endif
    stq_protocol_loop();
}

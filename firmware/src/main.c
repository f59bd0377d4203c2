/* main.c - bring the board up, then serve the device command loop. */
#include "stq_firmware.h"

int main(void)
{
    stq_board_init();
    stq_uart_init();
    stq_counter_init();
    stq_protocol_loop();
}

"""The hand-written firmware C is warning-free under -Wall -Wextra -Werror -std=c99 for the
Cortex-M4F, M7 and M33 (every source file, every family, emulated and silicon variants)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from toolchain.firmware.board_files import board_config_header
from toolchain.firmware.boards import load_board
from toolchain.firmware.cflags import STRICT
from toolchain.resources import firmware_dir

# A declaration-only model header (docs/c_api.md), so this test needs no converter.
MODEL_H = """#ifndef STQ_MODEL_H
#define STQ_MODEL_H
#include <stdint.h>
#define STQ_MODEL_HASH "00"
#define STQ_MODEL_NAME "api"
#define STQ_INPUT_H 8
#define STQ_INPUT_W 8
#define STQ_INPUT_C 1
#define STQ_INPUT_BYTES 64
#define STQ_INPUT_SIGNED 0
#define STQ_OUTPUT_COUNT 10
#define STQ_OUTPUT_ELEM_BYTES 4
#define STQ_OUTPUT_BYTES 40
#define STQ_ARENA_BYTES 256
#define STQ_NUM_LAYERS 3
#define STQ_MACS 1000
extern uint8_t stq_arena[STQ_ARENA_BYTES];
void *stq_model_input(void);
int stq_model_invoke(void);
const void *stq_model_output(void);
int stq_model_run(const void *input, void *output);
typedef void (*stq_layer_hook_t)(uint32_t layer, const void *data, uint32_t bytes);
void stq_model_set_layer_hook(stq_layer_hook_t hook);
extern const char *const stq_layer_names[STQ_NUM_LAYERS];
#endif
"""


@pytest.mark.parametrize(
    ("cpu", "board"),
    [
        ("cortex-m4", "netduinoplus2"),  # F4, USART v1, emulated (SysTick counter, semihosting)
        ("cortex-m4", "nucleo-l4r5zi"),  # L4, LPUART v2, silicon (DWT)
        ("cortex-m7", "nucleo-h743zi2"),
        ("cortex-m33", "nucleo-u575zi-q"),
    ],
)
def test_firmware_c_is_warning_free(tmp_path: Path, cpu: str, board: str) -> None:
    b = load_board(board)
    assert b.cpu == cpu
    (tmp_path / "stq_board_config.h").write_text(board_config_header(b, "test"))
    (tmp_path / "model.h").write_text(MODEL_H)
    # every source, not only this family's: they must all compile for every core
    sources = sorted((firmware_dir() / "src").glob("*.c"))
    sources = [s for s in sources if not s.name.startswith("board_")] + [
        firmware_dir() / "src" / f"board_{b.family}.c"
    ]
    for extra in ([], ["-DSTQ_FW_FAULT_TEST=1"]):
        cmd = [
            "arm-none-eabi-gcc", *b.cflags, *STRICT, "-O2",
            "-I", str(tmp_path),
            "-I", str(firmware_dir() / "include"),
            "-I", str(firmware_dir() / "src"),
            *extra, "-c", *map(str, sources),
        ]  # fmt: skip
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""

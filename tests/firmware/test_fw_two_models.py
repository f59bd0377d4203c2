"""Two models in one firmware (issue: a per-model symbol prefix): the digits model as ``ma_`` and
the residual probe as ``mb_`` link into one ELF; an application main() runs both on inputs
built into it and prints every output byte; both must equal the NumPy reference on QEMU."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
from probes import randomized

from toolchain.codegen import writer
from toolchain.device.qemu import QemuBoard
from toolchain.firmware.boards import load_board
from toolchain.firmware.build import build
from toolchain.frontend.keras import convert_model
from toolchain.reference import model as reference

pytestmark = pytest.mark.slow
N = 4


def _c_bytes(rows: list[bytes]) -> str:
    return ",\n".join("    {" + ", ".join(str(b) for b in r) + "}" for r in rows)


APP = """#include <string.h>
#include "stq_firmware.h"
#include "ma_model.h"
#include "mb_model.h"

static const uint8_t in_a[{n}][MA_INPUT_BYTES] = {{
{a}
}};
static const uint8_t in_b[{n}][MB_INPUT_BYTES] = {{
{b}
}};

static void put_hex(const char *tag, uint32_t i, const void *data, uint32_t bytes)
{{
    const uint8_t *p = (const uint8_t *)data;
    stq_uart_puts(tag);
    stq_uart_put_u64(i);
    stq_uart_puts(" ");
    for (uint32_t k = 0; k < bytes; ++k) {{
        stq_uart_putc((uint8_t)"0123456789abcdef"[p[k] >> 4]);
        stq_uart_putc((uint8_t)"0123456789abcdef"[p[k] & 15u]);
    }}
    stq_uart_puts("\\n");
}}

int main(void)
{{
    stq_board_init();
    stq_uart_init();
    stq_counter_init();
    for (uint32_t i = 0; i < {n}u; ++i) {{
        memcpy(ma_model_input(), in_a[i], MA_INPUT_BYTES);
        ma_model_invoke();
        put_hex("A", i, ma_model_output(), MA_OUTPUT_BYTES);
        memcpy(mb_model_input(), in_b[i], MB_INPUT_BYTES);
        mb_model_invoke();
        put_hex("B", i, mb_model_output(), MB_OUTPUT_BYTES);
    }}
    stq_uart_puts("DONE\\n");
    stq_semihost_exit(0u);
}}
"""


def _inputs(g, rng: np.random.Generator) -> np.ndarray:
    t = g.tensors[g.input]
    dt = reference.NP_DTYPE[t.dtype]
    return rng.integers(t.qmin, t.qmax + 1, size=(N, *t.shape)).astype(dt)


def test_two_prefixed_models_in_one_elf_are_bit_exact_on_qemu(digits_graph, tmp_path: Path
                                                               ) -> None:
    ga = digits_graph
    gb = convert_model(randomized("residual"), name="residual")
    ma = writer.write(ga, tmp_path / "ma", prefix="ma_")
    mb = writer.write(gb, tmp_path / "mb", prefix="mb_")
    assert not ({s for s in ma.symbols()} & {s for s in mb.symbols()})
    rng = np.random.default_rng(5)
    xa, xb = _inputs(ga, rng), _inputs(gb, rng)
    app = APP.format(n=N, a=_c_bytes([x.tobytes() for x in xa]),
                     b=_c_bytes([x.tobytes() for x in xb]))
    result = build(tmp_path / "ma", load_board("netduinoplus2"), tmp_path / "fw",
                   extra_model_dirs=(tmp_path / "mb",), app={"two_models.c": app.encode()})
    want = {"A": reference.predict(ga, xa), "B": reference.predict(gb, xb)}
    for tag, ys in want.items():  # a check on constant outputs would prove nothing
        assert len({y.tobytes() for y in ys}) > 1, f"model {tag} outputs do not vary"
    text = b""
    with QemuBoard(result.elf, "netduinoplus2", timeout=120) as qemu:
        host, port = qemu.port_url.removeprefix("socket://").split(":")
        deadline = time.monotonic() + 90
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.settimeout(1.0)
            while b"DONE\n" not in text and time.monotonic() < deadline:
                try:
                    chunk = s.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                text += chunk
        assert qemu.wait(20) == 0
    lines = dict(line.split(" ", 1) for line in text.decode().splitlines() if " " in line)
    for tag, ys in want.items():
        dtype = ys.dtype.newbyteorder("<")
        for i, y in enumerate(ys):
            got = np.frombuffer(bytes.fromhex(lines[f"{tag}{i}"]), dtype=dtype)
            np.testing.assert_array_equal(got, y.reshape(-1), err_msg=f"model {tag} input {i}")

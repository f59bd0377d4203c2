"""MLPerf Tiny runner mode, host side: the build-time settings of firmware/src/mlperf.c (the
MLPerf model id, the input lookup table, the output scale) and a bit-exact Python mirror of
what the device prints in ``m-results-[...]`` (docs/semantics.md, "MLPerf runner output").

The settings become ``STQ_MLPERF_*`` macros in the generated ``stq_board_config.h``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolchain.errors import StqError
from toolchain.firmware.boards import Board, pin_number, pin_port_index
from toolchain.ir.graph import Graph

MODEL_IDS = ("ic01", "kws01", "vww01", "ad01")
# model id -> the shape of one dataset file the runner sends (uint8 images for ic01/vww01)
IMAGE_SHAPES = {"ic01": (32, 32, 3), "vww01": (96, 96, 3)}
DEFAULT_ID = "ic01"

# exp(t) for t <= 0 as 2^k * p(f): float32 constants, exact as hex (docs/semantics.md)
LOG2E = float.fromhex("0x1.715476p+0")
EXP_CUTOFF = -80.0
# p(f) = sum c_n f^n, c_n = ln(2)^n / n! rounded to float32, n = 0..6, evaluated by Horner
POLY = tuple(float.fromhex(h) for h in (
    "0x1p+0", "0x1.62e430p-1", "0x1.ebfbe0p-3", "0x1.c6b08ep-5", "0x1.3b2ab6p-7",
    "0x1.5d87fep-10", "0x1.430912p-13"))
F32 = np.float32


@dataclass(frozen=True)
class MlperfConfig:
    model_id: str
    energy: bool
    output_scale: float      # real = scale * q of the output tensor
    output_unsigned: bool
    input_step: float        # real = step * q of the input tensor
    raw_bytes: int           # dataset file size converted through the LUT (0: none)
    lut: tuple[int, ...]     # 256 entries: uint8 pixel -> the model's input byte
    notes: tuple[str, ...] = ()


def default_model_id(shape: tuple[int, ...]) -> tuple[str, str | None]:
    """MLPerf id from the model's input shape, and a note when it is only a default."""
    s = tuple(shape) + (1,) * (3 - len(shape))
    if s == (32, 32, 3):
        return "ic01", None
    if s == (96, 96, 3):
        return "vww01", None
    if s[:2] == (49, 10) and s[2] == 1:
        return "kws01", None
    if int(np.prod(s)) == 640:
        return "ad01", None
    return DEFAULT_ID, (f"note: input {'x'.join(map(str, shape))} is not an MLPerf Tiny shape; "
                        f"profile% reports m-model-[{DEFAULT_ID}] (pass --mlperf-model)")


def input_lut(g: Graph) -> tuple[int, ...]:
    """uint8 pixel p -> clamp(round_half_even((p / 255) / step), qmin, qmax), as a byte."""
    f = g.input_format
    q = np.clip(np.round((np.arange(256, dtype=np.float64) / 255.0) / f["step"]), f["qmin"],
                f["qmax"]).astype(np.int64)
    return tuple(int(v) & 0xFF for v in q)


def config_for_graph(g: Graph, model_id: str | None, energy: bool = False) -> MlperfConfig:
    notes: list[str] = []
    tin, tout = g.tensors[g.input], g.tensors[g.output]
    if model_id is None:
        model_id, note = default_model_id(tin.shape)
        if note:
            notes.append(note)
    elif model_id not in MODEL_IDS:
        raise StqError(f"--mlperf-model {model_id!r} is not one of {', '.join(MODEL_IDS)}")
    raw = 0
    shape = IMAGE_SHAPES.get(model_id)
    if shape is not None:
        if tin.itemsize == 1 and tin.size == int(np.prod(shape)):
            raw = tin.size
        else:
            notes.append(f"note: {model_id} images ({'x'.join(map(str, shape))} uint8) do not "
                         f"fit the model input {'x'.join(map(str, tin.shape))}; `db load` takes "
                         "only the model's own input bytes")
    return MlperfConfig(model_id, energy, float(tout.scale), tout.dtype == "uint8",
                        float(g.input_format["step"]), raw, input_lut(g), tuple(notes))


def config_for_model_dir(model_dir: Path, model_id: str | None,
                         energy: bool = False) -> MlperfConfig:
    """From OUTDIR/c (the artifact is OUTDIR/model.stqa); without one: no conversion, scale 1."""
    from toolchain.ir import artifact

    path = Path(model_dir).parent / "model.stqa"
    if path.is_file():
        return config_for_graph(artifact.load(path), model_id, energy)
    if model_id is not None and model_id not in MODEL_IDS:
        raise StqError(f"--mlperf-model {model_id!r} is not one of {', '.join(MODEL_IDS)}")
    return MlperfConfig(model_id or DEFAULT_ID, energy, 1.0, False, 1.0, 0, tuple(range(256)),
                        (f"note: no artifact {path}: m-results use output scale 1.0",))


def _c_float(x: float) -> str:
    return float(F32(x)).hex() + "f"


def header_lines(cfg: MlperfConfig, board: Board | None) -> list[str]:
    """The STQ_MLPERF_* / STQ_TIMESTAMP_* lines of stq_board_config.h."""
    if cfg.energy and (board is None or board.timestamp_pin is None):
        raise StqError(f"--mlperf-energy needs a timestamp pin: add [timestamp] pin = \"PXn\" "
                       f"to {board.path if board else 'the board file'}")
    lut = ", ".join(str(v) for v in cfg.lut)
    lines = [
        "/* MLPerf Tiny runner mode (firmware/src/mlperf.c, docs/protocol.md) */",
        f'#define STQ_MLPERF_MODEL_ID "{cfg.model_id}"',
        f"#define STQ_MLPERF_AD01 {int(cfg.model_id == 'ad01')}",
        f"#define STQ_MLPERF_ENERGY {int(cfg.energy)}",
        f"#define STQ_MLPERF_OUTPUT_SCALE {_c_float(cfg.output_scale)} /* {cfg.output_scale!r} */",
        f"#define STQ_MLPERF_OUTPUT_UNSIGNED {int(cfg.output_unsigned)}",
        f"#define STQ_MLPERF_INPUT_STEP {_c_float(cfg.input_step)} /* {cfg.input_step!r} */",
        f"#define STQ_MLPERF_RAW_BYTES {cfg.raw_bytes}u",
        f"#define STQ_MLPERF_INPUT_LUT {{{lut}}}",
    ]
    if board is not None and board.timestamp_pin is not None:
        pin = board.timestamp_pin
        lines += [f"#define STQ_TIMESTAMP_PORT {pin_port_index(pin)}u /* {pin} */",
                  f"#define STQ_TIMESTAMP_PIN {pin_number(pin)}u"]
    return lines


# --- the device's m-results, mirrored bit for bit (numpy float32 = IEEE single) -----------------


def exp_neg(t: np.float32) -> np.float32:
    """exp(t) for t <= 0 exactly as mlperf.c computes it."""
    if t < F32(EXP_CUTOFF):
        return F32(0.0)
    y = F32(t * F32(LOG2E))
    k = int(np.floor(y + F32(0.5)))  # C: floorf-free, see stq_exp_neg
    f = F32(y - F32(k))
    p = F32(POLY[6])
    for c in reversed(POLY[:6]):
        p = F32(F32(p * f) + F32(c))
    return F32(p * F32(2.0**k))


def softmax_f32(q: np.ndarray, scale: float) -> list[np.float32]:
    qs = [int(v) for v in np.asarray(q).reshape(-1)]
    top = max(qs)
    e = [exp_neg(F32(F32(v - top) * F32(scale))) for v in qs]
    s = F32(0.0)
    for v in e:
        s = F32(s + v)
    return [F32(v / s) for v in e]


def fixed3(x: np.float32, mode: str) -> str:
    """x >= 0 with 3 decimals, rounded exactly ('down', 'up' or 'nearest' = half up)."""
    m, e = np.frexp(np.float64(x))  # float32 value is exact in float64
    num = int(np.ldexp(m, 53)) * 1000
    shift = 53 - int(e)
    if shift <= 0:
        n = num << -shift
    else:
        n, rem = num >> shift, num & ((1 << shift) - 1)
        if mode == "up":
            n += rem != 0
        elif mode == "nearest":
            n += 2 * rem >= (1 << shift)
    return f"{n // 1000}.{n % 1000:03d}"


def results_line(q: np.ndarray, scale: float) -> str:
    """The m-results line the device prints for integer outputs ``q`` (classifiers)."""
    p = softmax_f32(q, scale)
    top = int(np.argmax(np.asarray(q).reshape(-1)))
    vals = [fixed3(v, "up" if i == top else "down") for i, v in enumerate(p)]
    return f"m-results-[{','.join(vals)}]"


def ad01_line(q_out: np.ndarray, q_in: np.ndarray, scale: float, step: float) -> str:
    """ad01's m-results: the float32 mean of (scale*q_out - step*q_in)^2, nearest 0.001."""
    qo = [int(v) for v in np.asarray(q_out).reshape(-1)]
    qi = [int(v) for v in np.asarray(q_in).reshape(-1)]
    n = min(len(qo), len(qi))
    s = F32(0.0)
    for a, b in zip(qo[:n], qi[:n], strict=True):
        d = F32(F32(F32(a) * F32(scale)) - F32(F32(b) * F32(step)))
        s = F32(s + F32(d * d))
    return f"m-results-[{fixed3(F32(s / F32(n)), 'nearest')}]"

"""Which C kernel each layer gets: reference, or an optimized variant (and its scratch size)."""

from __future__ import annotations

from typing import Any

from toolchain.codegen.layers.stq import identity_requant
from toolchain.ir.dwlanes import lane_max
from toolchain.ir.graph import Node

KERNELS = ("optimized", "reference")


# Output pixels the optimized convolutions compute per decoded weight row: the one definition
# (emitted as <PREFIX>FAST_PIXELS into kernels.c, templates/support/scratch.c.j2).
FAST_PIXELS = 4
DWU_MAX_KH = 16  # the largest kernel height of the byte-lane depthwise kernel (scratch.c.j2)
POOL_MAX_TAPS = 256  # window taps of the int16-pair average pooling (sums stay in int16)


def uses_fast_kernel(n: Node, wk: str | None, in_dtype: str, kernels: str) -> bool:
    """Whether layer n gets the optimized kernel (else the reference kernel)."""
    return (kernels == "optimized" and n.op == "conv2d" and wk in ("t2", "t3", "i8")
            and in_dtype in ("int8", "uint8"))


def fast_variant(n: Node, wk: str | None, src: Any, kernels: str,
                 model_input: bool = False) -> str | None:
    """Which optimized kernel layer n gets. Depthwise: "fastu" (ternary weights, inputs in
    0..X with taps * X <= 255: byte lanes) or "fast" (int16 pairs). Conv: "fastu" (ternary
    2-bit weights, input values all in 0..255: byte masks and USADA8), "fastu3" (the same for
    base-3 weights, decoded to 2-bit rows in scratch once per call), "fast4" (int8 weights on
    a 3-channel input: contiguous patches), "fast" (int16 pairs and SMLAD) or None (the
    reference).
    Average pooling: "fast" (int8 input, identity requantization, whole groups of 4 channels,
    at most POOL_MAX_TAPS taps: int16 pairs).
    Dense: "fast" (int8 weights, no residual, on an int8 or uint8 vector or an int32 one whose
    values fit int16, e.g. a pooling's window sums, not the model input: int16 pairs and SMLAD,
    three rows per pass).
    An int8 model input is never trusted to stay in its range (the caller writes it)."""
    if n.op == "dense":
        int16 = (src.dtype == "int32" and src.qmin >= -(1 << 15) and src.qmax < (1 << 15)
                 and not model_input)
        ok = (kernels == "optimized" and wk == "i8" and not n.has_residual
              and (src.dtype in ("int8", "uint8") or int16))
        return "fast" if ok else None
    if n.op == "avgpool":
        kh, kw = (int(v) for v in n.attrs["pool"])
        ok = (kernels == "optimized" and src.dtype == "int8" and identity_requant(n)
              and int(n.attrs["in_shape"][2]) % 4 == 0 and kh * kw <= POOL_MAX_TAPS)
        return "fast" if ok else None
    if (kernels == "optimized" and n.op == "depthwise_conv2d" and wk is not None
            and src.dtype in ("int8", "uint8") and int(n.attrs["in_shape"][2]) % 4 == 0):
        x = lane_max(int(src.qmin), int(src.qmax))  # byte lanes: ternary, inputs 0..X
        kh, kw = (int(v) for v in n.attrs["kernel"])
        if (wk != "i8" and x is not None and kh * kw * x <= 255 and kh <= DWU_MAX_KH
                and not model_input and not n.has_residual):
            return "fastu"  # writer.py falls back to "fast" without proven lane constants
        return "fast"  # 4 channels per SIMD group
    if not uses_fast_kernel(n, wk, src.dtype, kernels):
        return None
    in_range = src.dtype == "uint8" or (src.qmin >= 0 and src.qmax <= 255 and not model_input)
    if wk == "t3":
        return "fastu3" if in_range else None
    if wk == "i8" and int(n.attrs["in_shape"][2]) <= 3 and not n.has_residual:
        return "fast4"  # weight rows padded to whole groups of 4 (writer.py)
    return "fastu" if wk == "t2" and in_range else "fast"


def fast_buffer_bytes(p: dict, variant: str = "fast", op: str = "conv2d") -> int:
    """The scratch bytes of layer p, as the C <prefix>conv2d_fast_get_buffer_size() (im2col
    pairs of FAST_PIXELS pixels plus a 4-byte patch, per group of 4 weights) or, for variant
    "fastu", <prefix>conv2d_fastu_get_buffer_size() (raw bytes of FAST_PIXELS pixels and the
    patch per group, plus 4 bytes per output channel: a last block's outputs; "fastu3" adds the
    decoded 2-bit rows:
    <prefix>conv2d_fastu3_get_buffer_size()) compute it; a test compiles those on
    the host and compares them with this for every layer kind; average pooling needs none."""
    if op == "avgpool":
        return 0
    if op == "dense":  # <prefix>dense_fast_get_buffer_size(): as the TFLite FULLY_CONNECTED's
        return fc_buffer_bytes(int(p["in_c"]))
    if op == "depthwise_conv2d" and variant == "fastu":  # dwconv2d_fastu_get_buffer_size():
        # ring slot tags, k_h padded rows and a zero row of (out_w - 1) * stride_w + k_w pixels
        wp = (int(p["out_w"]) - 1) * int(p["stride_w"]) + int(p["k_w"])
        return 4 * int(p["k_h"]) + (int(p["k_h"]) + 1) * wp * int(p["in_c"])
    if op == "depthwise_conv2d":  # <prefix>dwconv2d_fast_get_buffer_size(): weight pairs
        return 8 * int(p["k_h"]) * int(p["k_w"]) * (int(p["in_c"]) // 4)
    groups = -(-(int(p["k_h"]) * int(p["k_w"]) * int(p["in_c"])) // 4)
    if variant == "fast4":  # <prefix>conv2d_fast4_get_buffer_size(): the pairs of FAST_PIXELS
        # input patches and of every output channel's weights, one byte patch
        # (and the outputs of a last block of fewer pixels)
        return (FAST_PIXELS + int(p["out_c"])) * 8 * groups + 4 * groups + FAST_PIXELS * int(
            p["out_c"])
    if variant in ("fastu", "fastu3"):
        decoded = groups * int(p["out_c"]) if variant == "fastu3" else 0  # 2-bit rows
        return (FAST_PIXELS * 4 + 4) * groups + 4 * int(p["out_c"]) + decoded
    return (FAST_PIXELS * 8 + 4) * groups


def fc_buffer_bytes(in_c: int) -> int:
    """Scratch bytes of the fully connected kernels (stq dense, TFLite FULLY_CONNECTED): the
    input vector as int16 pairs, 2 bytes per value of the whole groups of 4, and a tail of 4
    int16 (templates/support/fc_rows.j2)."""
    return 2 * (in_c & ~3) + 8


def weight_code(node: Node, packing: str) -> str:
    kind = node.attrs["weight_kind"]
    if kind == "int8":
        return "i8"
    return "t3" if packing == "base3" else "t2"


# --- TFLite int8 ops (codegen/layers/tflite.py) ----------------------------------------

TFL_FAST_OPS = ("tfl_conv2d", "tfl_fully_connected", "tfl_add", "tfl_depthwise_conv2d")
TFL_ADD_TABLE_MIN = 512  # elements below which the ADD tables cost more than they save


def tfl_fast_variant(n: Node, kernels: str, elements: int = 0) -> str | None:
    """The optimized kernel of a tfl_* layer ("fast") or None (the reference kernel): CONV_2D
    and FULLY_CONNECTED with int16 columns and SMLAD (CMSIS-NN style), ADD with its two input
    rescalings tabulated (when the output has ``elements`` >= TFL_ADD_TABLE_MIN),
    DEPTHWISE_CONV_2D of depth multiplier 1 with SMLABB/SMLATT (other multipliers: reference)."""
    if kernels != "optimized" or n.op not in TFL_FAST_OPS:
        return None
    if n.op == "tfl_depthwise_conv2d" and n.attrs.get("depth_multiplier", 1) != 1:
        return None
    if n.op == "tfl_add" and elements < TFL_ADD_TABLE_MIN:
        return None
    return "fast"


def tfl_fast_buffer_bytes(p: dict, op: str) -> int:
    """Scratch bytes of the fast tfl kernel of layer p, as its C *_get_buffer_size computes:
    conv, the interleaved int16 im2col groups of two pixels and two tails of 4 int16; FC, the
    int16 input row (groups of 4) and a tail of 4 int16; ADD, two tables of 256 int32;
    depthwise, none."""
    if op == "tfl_depthwise_conv2d":
        return 0
    if op == "tfl_add":
        return 2 * 256 * 4
    if op == "tfl_fully_connected":
        return fc_buffer_bytes(int(p["in_c"]))
    col = int(p["k_h"]) * int(p["k_w"]) * int(p["in_c"])
    return 4 * (col & ~3) + 16

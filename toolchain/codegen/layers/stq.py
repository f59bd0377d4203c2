"""Per-layer pieces of the C export: the parameter record's values, kernel names and
prototypes, and the proven 32-bit requantization constants (toolchain/ir/requant32.py,
toolchain/ir/dwlanes.py)."""

from __future__ import annotations

import numpy as np

from toolchain.codegen.carrays import literal
from toolchain.codegen.layers import record
from toolchain.errors import StqError
from toolchain.ir.dwlanes import lane_constants
from toolchain.ir.graph import Graph, Node, Tensor
from toolchain.ir.requant32 import layer_constants, node_rows
from toolchain.ir.requant64 import tie_free_constants
from toolchain.ir.t2u import fold_offset64, req32_constants

CTYPE = {"int8": "int8_t", "uint8": "uint8_t", "int32": "int32_t"}
SHORT = {"int8": "i8", "uint8": "u8", "int32": "i32"}
OP_NAME = {"conv2d": "conv2d", "depthwise_conv2d": "dwconv2d", "dense": "dense",
           "maxpool": "maxpool", "avgpool": "avgpool", "add": "add"}


def req32(n: Node, ins: list[Tensor]) -> np.ndarray | None:
    """The proven 32-bit requantization constants of a layer (toolchain/ir/requant32) or None
    (a residual input, or a channel without exact int32 constants)."""
    if len(ins) != 1:
        return None
    a = n.arrays
    lo, hi = n.attrs["clamp"]
    return layer_constants(node_rows(n.op, a["weights"]), a["mult"], a["offset"], a["shift"],
                           (int(lo), int(hi)), int(ins[0].qmin), int(ins[0].qmax))


def fast_constants(n: Node, ins: list[Tensor], variant: str | None
                   ) -> tuple[str | None, np.ndarray | None]:
    """The variant a fast layer really gets and its constants: the byte-lane depthwise table
    (toolchain/ir/dwlanes) for variant "fastu" of a depthwise layer, or "fast" with req32
    when some channel has none; for "fast4" the tie-free 64-bit constants
    (toolchain/ir/requant64), or "fast" with req32 when some channel has none; for a dense
    layer's "fast" the tie-free constants or None (the 64-bit requantization); None for the
    USADA8 conv (t2u_constants); req32 for the other fast kernels."""
    if variant == "fastu" and n.op == "depthwise_conv2d":
        a = n.arrays
        lo, hi = n.attrs["clamp"]
        tab = lane_constants(a["weights"], a["mult"], a["offset"], a["shift"],
                             (int(lo), int(hi)), int(ins[0].qmin), int(ins[0].qmax))
        if tab is not None:
            return variant, tab
        variant = "fast"
    if variant == "fast" and n.op == "dense":  # the tie-free 64-bit constants, or none
        a = n.arrays
        return variant, tie_free_constants(node_rows(n.op, a["weights"]), a["mult"],
                                           a["offset"], a["shift"], int(ins[0].qmin),
                                           int(ins[0].qmax))
    if variant == "fast4":  # needs the tie-free 64-bit constants, else the SMLAD kernel
        a = n.arrays
        k = tie_free_constants(node_rows(n.op, a["weights"]), a["mult"], a["offset"],
                               a["shift"], int(ins[0].qmin), int(ins[0].qmax))
        if k is not None:
            return variant, k
        variant = "fast"
    if (n.op == "conv2d" and variant in ("fastu", "fastu3")) or n.op == "avgpool":
        return variant, None  # its own constants (t2u_constants), or none
    return variant, (req32(n, ins) if variant is not None else None)


def t2u_constants(n: Node, ins: list[Tensor], out: Tensor
                  ) -> tuple[np.ndarray | None, np.ndarray]:
    """The USADA8 conv's per-channel constants with 255 * (number of -1 weights) folded in
    (toolchain/ir/t2u.py): the 32-bit (m, o', s), or (m, o', s, m2) with a fused residual of
    one-byte values, or None (then the 64-bit path: a wider residual, no proven constants, an
    output wider than a byte), and the folded 64-bit offsets."""
    a = n.arrays
    rows = node_rows(n.op, a["weights"])
    lo, hi = (int(v) for v in n.attrs["clamp"])
    residual = None
    if len(ins) == 2:
        residual = (a["mult2"], int(ins[1].qmin), int(ins[1].qmax))
    req = req32_constants(rows, a["mult"], a["offset"], a["shift"], (lo, hi),
                          int(ins[0].qmin), int(ins[0].qmax), residual) \
        if out.itemsize == 1 and all(t.itemsize == 1 for t in ins) else None
    return req, fold_offset64(n.name, rows, a["mult"], a["offset"], a["shift"])


def identity_requant(n: Node) -> bool:
    """An average pooling whose requantization is the identity (every mult 1, shift 0, offset
    0): its kernel only clamps, and the converter emits no per-channel arrays for it."""
    a = n.arrays
    return (n.op == "avgpool" and all(k in a for k in ("mult", "shift", "offset"))
            and "mult2" not in a and bool(np.all(a["mult"] == 1)) and bool(np.all(a["shift"] == 0))
            and bool(np.all(a["offset"] == 0)))


def params(g: Graph, n: Node) -> dict:
    out = g.tensors[n.output]
    ins = g.tensors[n.inputs[0]]
    a = n.attrs
    p: dict = {**record.defaults(), "in_c": ins.size, "out_c": out.size}
    if "in_shape" in a:
        p["in_h"], p["in_w"], p["in_c"] = a["in_shape"]
        if len(out.shape) == 3:
            p["out_h"], p["out_w"], p["out_c"] = out.shape
        else:  # global pooling to a flat vector
            p["out_c"] = out.shape[-1]
        p["k_h"], p["k_w"] = a.get("kernel", a.get("pool"))
        p["stride_h"], p["stride_w"] = a["stride"]
        p["pad_t"], p["pad_l"] = a["pad"][0], a["pad"][2]
    elif n.op == "add":
        c = int(a["out_channels"])
        p["out_c"], p["out_h"] = c, out.size // c
    if "clamp" in a:
        lo, hi = a["clamp"]
        p["clamp_min"], p["clamp_max"] = literal(lo, "int32_t"), literal(hi, "int32_t")
    return p


def kernel_name(prefix: str, n: Node, wk: str | None, ins: list[Tensor], out: Tensor) -> str:
    """<prefix><op>[_<weights>]_<input types>_<output type>[_res<type>] (CMSIS-NN style)."""
    sig = [SHORT[t.dtype] for t in ins]
    if n.op in ("conv2d", "depthwise_conv2d", "dense"):
        fn = f"{prefix}{OP_NAME[n.op]}_{wk}_{sig[0]}_{SHORT[out.dtype]}"
        return fn + (f"_res{sig[1]}" if len(ins) == 2 else "")
    if n.op == "add":
        return f"{prefix}add_{sig[0]}_{sig[1]}_{SHORT[out.dtype]}"
    if n.op == "maxpool":
        return f"{prefix}maxpool_{sig[0]}"
    if n.op == "avgpool":
        return f"{prefix}avgpool_{sig[0]}_{SHORT[out.dtype]}"
    raise StqError(f"layer '{n.name}': no C kernel for op {n.op}")  # pragma: no cover


def prototype(prefix: str, fn: str, ins: list[Tensor], out: Tensor) -> str:
    params = [f"const {CTYPE[ins[0].dtype]} *in"]
    if len(ins) == 2:
        params.append(f"const {CTYPE[ins[1].dtype]} *res")
    params += [f"{CTYPE[out.dtype]} *out", f"const {prefix}layer_params_t *p"]
    return f"void {fn}({', '.join(params)})"

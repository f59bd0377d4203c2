"""Names and prototypes of the generated kernels: <prefix><op>[_<weights>]_<types> (CMSIS-NN
style: operator, then weight and data types)."""

from __future__ import annotations

from toolchain.errors import StqError
from toolchain.ir.graph import Node, Tensor

CTYPE = {"int8": "int8_t", "uint8": "uint8_t", "int32": "int32_t"}


SHORT = {"int8": "i8", "uint8": "u8", "int32": "i32"}


OP_NAME = {"conv2d": "conv2d", "depthwise_conv2d": "dwconv2d", "dense": "dense",
           "maxpool": "maxpool", "avgpool": "avgpool", "add": "add"}


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

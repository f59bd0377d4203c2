"""Per-kernel documentation for the generated kernels.h: what each kernel computes and the
layout, type and range of each of its parameters (CMSIS-NN style)."""

from __future__ import annotations

from toolchain.ir.graph import Node, Tensor

_WHAT = {"conv2d": "2-D convolution", "depthwise_conv2d": "depthwise 2-D convolution (depth "
         "multiplier 1)", "dense": "fully connected layer", "maxpool": "max pooling",
         "avgpool": "average pooling ('valid' windows)", "add": "element-wise add"}
_WEIGHTS = {"t2": "ternary weights, 2-bit packed (4 per byte, one byte-aligned row per output "
            "channel; depthwise: one flat HWC array)",
            "t3": "ternary weights, base-3 packed (5 per byte, rows as for 2-bit)",
            "i8": "int8 weights (conv OHWI, dense [out][in], depthwise HWC)"}
_RANGE = {"int8": "-128..127", "uint8": "0..255", "int32": "int32"}


def kernel_doc(n: Node, wk: str | None, ins: list[Tensor], out: Tensor, variant: str | None,
               ref_fn: str) -> list[str]:
    lines = [_WHAT[n.op] + (f", {_WEIGHTS[wk]}" if wk else "") + "."]
    layout = "HWC" if n.op not in ("dense",) else "a flat vector"
    lines.append(f"in: {ins[0].dtype} ({_RANGE[ins[0].dtype]}), {layout}, p->in_h x p->in_w x "
                 "p->in_c.")
    if len(ins) == 2:
        what = "the residual, read at each output position just before it is written (out may "\
               "alias it)" if n.op != "add" else "the second input (out may alias either input)"
        lines.append(f"res: {ins[1].dtype}, the output's shape: {what}.")
    lines.append(f"out: {out.dtype}, {'HWC' if len(out.shape) == 3 else 'flat'} "
                 "p->out_h x p->out_w x p->out_c, values in [p->clamp_min, p->clamp_max].")
    if n.op != "maxpool":
        lines.append("p: shape, window, stride, padding, packed weights and the per-channel "
                     "requantization mult (int32), shift (0..62), offset (int64)"
                     + (", mult2 (int32)" if len(ins) == 2 else "") + " of docs/semantics.md.")
    else:
        lines.append("p: shape, window, stride and padding (padding positions are ignored).")
    if variant == "fastu" and n.op == "depthwise_conv2d":
        lines.append(f"Optimized (byte lanes, USUB8/SEL): exact, same results as {ref_fn}, ONLY "
                     "for input values 0..X with taps * X <= 255 (the converter picks it only "
                     "for such tensors); p->req32: the table of toolchain/ir/dwlanes.py; "
                     "scratch: dwconv2d_fastu_get_buffer_size().")
    elif variant == "fast" and n.op == "avgpool":
        lines.append(f"Optimized (SXTAB16 int16 pairs, 4 channels per word): same results as "
                     f"{ref_fn} for every input; no scratch.")
    elif variant == "fastu":
        lines.append(f"Optimized (USADA8): exact, same results as {ref_fn}, ONLY for input "
                     "values 0..255 (the converter picks it only for such tensors); p->offset "
                     "or p->req32: the constants of toolchain/ir/t2u.py; scratch: "
                     "conv2d_fastu_get_buffer_size().")
    elif variant == "fast" and n.op == "dense":
        lines.append(f"Optimized (SMLAD int16 pairs, three rows per pass): same results as "
                     f"{ref_fn} for every input; p->req32: the tie-free 64-bit constants of "
                     "toolchain/ir/requant64.py or NULL; "
                     "scratch: dense_fast_get_buffer_size().")
    elif variant == "fast":
        lines.append(f"Optimized (SMLAD int16 pairs): same results as {ref_fn} for every "
                     "input; scratch: conv2d_fast_get_buffer_size().")
    return lines

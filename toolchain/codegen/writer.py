"""C export: render the integer artifact into model.h, model.c, weights.c, kernels.h, kernels.c.

Each operator has its own Jinja template in toolchain/codegen/templates/; this module only picks the
kernel variants a model needs (weight kind x input/output types), plans the arena and
assembles the files. The kernels follow docs/semantics.md exactly, as toolchain/reference/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from toolchain import __version__
from toolchain.codegen.carrays import CArray, cname, literal
from toolchain.codegen.selection import (
    fast_buffer_bytes,
    fast_variant,
    kernel_choice,
    weight_code,
)
from toolchain.codegen.tables import base3_lut, t2_masks, t2_pairs
from toolchain.errors import StqError
from toolchain.fsutil import atomic_dir
from toolchain.ir.artifact import SEMANTICS, content_hash
from toolchain.ir.graph import Graph, Node
from toolchain.ir.packing import pack, pack_rows
from toolchain.memory.lifetimes import plan_arena, tensor_offsets
from toolchain.memory.planner import ArenaPlanner

CTYPE = {"int8": "int8_t", "uint8": "uint8_t", "int32": "int32_t"}
SHORT = {"int8": "i8", "uint8": "u8", "int32": "i32"}
WDESC = {"t2": "ternary 2-bit packed", "t3": "ternary base-3 packed", "i8": "int8"}
TEMPLATE = {"conv2d": "conv2d.c.j2", "depthwise_conv2d": "depthwise_conv2d.c.j2",
            "dense": "dense.c.j2", "maxpool": "maxpool.c.j2", "avgpool": "avgpool.c.j2",
            "add": "add.c.j2"}
FAST_TEMPLATE = {"fast": "conv2d_fast.c.j2", "fastu": "conv2d_fastu.c.j2"}
FN_PREFIX = {"conv2d": "stq_conv2d", "depthwise_conv2d": "stq_dwconv2d", "dense": "stq_dense",
             "maxpool": "stq_maxpool", "avgpool": "stq_avgpool", "add": "stq_add"}
SOURCES = ("model.h", "model.c", "weights.c", "kernels.h", "kernels.c")










def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("toolchain.codegen", "templates"), trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)








@dataclass
class Layer:
    name: str
    op: str
    params: str
    call: str
    out_offset: int
    out_bytes: int
    out_shape: str
    out_dtype: str
    p: dict = field(default_factory=dict)


@dataclass
class CModel:
    """What the generator produced: sources plus the numbers the budget checker needs."""

    files: dict[str, str]
    arena_bytes: int
    offsets: dict[str, int]
    arrays: list[CArray]
    weight_bytes: dict[str, int]  # per layer: packed weights + requantization parameters
    kernels: str = "optimized"    # "optimized" (fast kernels where there is one) or "reference"
    scratch_bytes: int = 0        # static scratch of the optimized kernels (RAM, stq_scratch)
    planner: ArenaPlanner | None = None  # the arena plan the offsets come from












def generate(g: Graph) -> CModel:
    env = _env()
    packing = g.options.get("packing", "2bit")
    kernels = kernel_choice(g)
    scratch_bytes = 0
    fast_codes: set[str] = set()
    im2col_types: dict[str, str] = {}
    planner = plan_arena(g)
    offsets = tensor_offsets(g, planner)
    arrays: list[CArray] = []
    layers: list[Layer] = []
    bodies: dict[str, str] = {}
    protos: dict[str, str] = {}
    weight_bytes: dict[str, int] = {}
    codes: set[str] = set()

    def ptr(tensor: str, const: bool) -> str:
        t = g.tensors[tensor]
        return f"({'const ' if const else ''}{CTYPE[t.dtype]} *)&stq_arena[{offsets[tensor]}]"

    for i, n in enumerate(g.nodes):
        base = f"{i}_{cname(n.name)}"
        out = g.tensors[n.output]
        ins = [g.tensors[t] for t in n.inputs]
        p = _params(g, n)
        start = len(arrays)
        wk = None
        if "weights" in n.arrays:
            wk = weight_code(n, packing)
            w = n.arrays["weights"]
            if n.op == "depthwise_conv2d":
                data = w.astype(np.int8).reshape(-1) if wk == "i8" else pack(w, packing)
                p["row_bytes"] = 0
            else:
                rows = w.reshape(w.shape[0], -1)
                if wk == "i8":
                    data, p["row_bytes"] = rows.astype(np.int8).reshape(-1), rows.shape[1]
                else:
                    data, p["row_bytes"] = pack_rows(rows, packing)
            arrays.append(CArray(f"stq_w_{base}", "int8_t" if wk == "i8" else "uint8_t", data,
                                 f"{n.name}: {n.attrs['weight_kind']} weights {list(w.shape)}"))
            p["weights"] = f"stq_w_{base}"
        for key, ctype in (("mult", "int32_t"), ("mult2", "int32_t"), ("shift", "int32_t"),
                           ("offset", "int64_t")):
            if key in n.arrays:
                arrays.append(CArray(f"stq_q_{base}_{key}", ctype, n.arrays[key],
                                     f"{n.name}: requantization {key}"))
                p[key] = f"stq_q_{base}_{key}"
        weight_bytes[n.name] = sum(a.nbytes for a in arrays[start:])

        fn, proto = _signature(n, wk, ins, out)
        template = TEMPLATE[n.op]
        ref_fn = fn
        variant = fast_variant(n, wk, ins[0], kernels, n.inputs[0] == g.input)
        if variant is not None:
            fn, proto = f"{fn}_{variant}", proto.replace(f" {fn}(", f" {fn}_{variant}(")
            template = FAST_TEMPLATE[variant]
            scratch_bytes = max(scratch_bytes, fast_buffer_bytes(p, variant))
            if variant == "fastu":
                fast_codes.add("t2u")
            else:
                fast_codes.add(str(wk))
                im2col_types[SHORT[ins[0].dtype]] = CTYPE[ins[0].dtype]
        elif wk is not None:
            codes.add(wk)  # a reference kernel reads these weights with stq_t2 / stq_t3
        if fn not in bodies:
            ctx = {"proto": proto, "wk": wk, "wdesc": WDESC.get(wk or "", ""),
                   "in_t": CTYPE[ins[0].dtype], "out_t": CTYPE[out.dtype],
                   "in_s": SHORT[ins[0].dtype], "ref_fn": ref_fn,
                   "res_t": CTYPE[ins[1].dtype] if len(ins) == 2 else None}
            bodies[fn] = env.get_template(template).render(**ctx)
            protos[fn] = proto
        call_args = [ptr(n.inputs[0], True)]
        if len(n.inputs) == 2:
            call_args.append(ptr(n.inputs[1], True))
        call_args += [ptr(n.output, False), f"&stq_p_{base}"]
        layers.append(Layer(n.name, n.op, f"stq_p_{base}", f"{fn}({', '.join(call_args)})",
                            offsets[n.output], out.nbytes, "x".join(map(str, out.shape)),
                            out.dtype, p))

    out_t = g.tensors[g.output]
    argmax_fn = f"stq_argmax_{SHORT[out_t.dtype]}"
    argmax_proto = f"int32_t {argmax_fn}(const {CTYPE[out_t.dtype]} *x, int32_t n)"
    bodies[argmax_fn] = env.get_template("argmax.c.j2").render(
        proto=argmax_proto, in_t=CTYPE[out_t.dtype])
    protos[argmax_fn] = argmax_proto

    tin = g.tensors[g.input]
    in_shape = list(tin.shape) + [1] * (3 - len(tin.shape))
    ctx = {
        "version": __version__, "name": g.name, "hash": content_hash(g), "semantics": SEMANTICS,
        "in_h": in_shape[0], "in_w": in_shape[1], "in_c": in_shape[2],
        "input_bytes": tin.nbytes, "input_signed": int(tin.dtype != "uint8"),
        "input_dtype": tin.dtype, "output_count": out_t.size, "output_elem": out_t.itemsize,
        "output_bytes": out_t.nbytes, "output_dtype": out_t.dtype,
        "output_ctype": CTYPE[out_t.dtype], "arena_bytes": max(planner.total, 8),
        "macs": g.macs(), "layers": layers, "input_offset": offsets[g.input],
        "output_offset": offsets[g.output], "argmax_fn": argmax_fn, "arrays": arrays,
        "packing": packing, "prototypes": [protos[k] for k in protos],
        "bodies": [bodies[k] for k in bodies], "uses_t2": "t2" in codes,
        "uses_t3": "t3" in codes, "base3_lut": base3_lut(),
        "uses_fast": bool(fast_codes), "uses_t2_fast": "t2" in fast_codes,
        "uses_i8_fast": "i8" in fast_codes, "uses_t2u_fast": "t2u" in fast_codes,
        "t2_masks": t2_masks(),
        "scratch_words": max(1, -(-scratch_bytes // 8)), "t2_pairs": t2_pairs(),
        "im2col_types": [{"short": k, "ctype": v} for k, v in sorted(im2col_types.items())],
    }
    files = {name: env.get_template(f"{name}.j2").render(**ctx) for name in SOURCES}
    return CModel(files, ctx["arena_bytes"], offsets, arrays, weight_bytes, kernels,
                  scratch_bytes, planner)


def write(g: Graph, outdir: Path) -> CModel:
    """Generate and write the sources into ``outdir`` atomically (all files or none)."""
    model = generate(g)
    with atomic_dir(Path(outdir)) as tmp:
        for name, text in model.files.items():
            (tmp / name).write_text(text)
    return model


def _params(g: Graph, n: Node) -> dict:
    out = g.tensors[n.output]
    ins = g.tensors[n.inputs[0]]
    a = n.attrs
    p = {"in_h": 1, "in_w": 1, "in_c": ins.size, "out_h": 1, "out_w": 1, "out_c": out.size,
         "k_h": 1, "k_w": 1, "stride_h": 1, "stride_w": 1, "pad_t": 0, "pad_l": 0,
         "row_bytes": 0, "clamp_min": 0, "clamp_max": 0, "weights": "NULL", "mult": "NULL",
         "mult2": "NULL", "shift": "NULL", "offset": "NULL"}
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


def _signature(n: Node, wk: str | None, ins: list, out: Any) -> tuple[str, str]:
    sig = [SHORT[t.dtype] for t in ins]
    if n.op in ("conv2d", "depthwise_conv2d", "dense"):
        fn = f"{FN_PREFIX[n.op]}_{wk}_{sig[0]}_{SHORT[out.dtype]}"
        if len(ins) == 2:
            fn += f"_res{sig[1]}"
    elif n.op == "add":
        fn = f"stq_add_{sig[0]}_{sig[1]}_{SHORT[out.dtype]}"
    elif n.op == "maxpool":
        fn = f"stq_maxpool_{sig[0]}"
    elif n.op == "avgpool":
        fn = f"stq_avgpool_{sig[0]}_{SHORT[out.dtype]}"
    else:  # pragma: no cover
        raise StqError(f"layer '{n.name}': no C kernel for op {n.op}")
    params = [f"const {CTYPE[ins[0].dtype]} *in"]
    if len(ins) == 2:
        params.append(f"const {CTYPE[ins[1].dtype]} *res")
    params += [f"{CTYPE[out.dtype]} *out", "const stq_layer_params_t *p"]
    return fn, f"void {fn}({', '.join(params)})"







"""C export: render the integer artifact into model.h, model.c, weights.c, kernels.h, kernels.c.

Each operator has its own Jinja template (toolchain/codegen/templates/reference/, optimized
variants in optimized/, shared pieces in support/, the API headers in api/, the schedule and
data in schedule/); this module only picks the kernel variants a model needs (weight kind x
input/output types, codegen/selection.py), plans the arena (toolchain/memory/) and assembles
the files. The kernels follow docs/semantics.md exactly, as toolchain/reference/ does.

Every symbol the generated C defines starts with the model's prefix (``stq_`` by default;
another prefix lets two models link into one firmware), and ``CModel`` says which symbol
belongs to which layer, kernel, helper or table, so nothing downstream reads the C back.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import numpy as np

from toolchain import __version__
from toolchain.codegen.carrays import CArray, cname
from toolchain.codegen.cmodel import CModel, Layer
from toolchain.codegen.docs import kernel_doc
from toolchain.codegen.layers import record
from toolchain.codegen.layers.stq import (
    CTYPE,
    SHORT,
    fast_constants,
    identity_requant,
    kernel_name,
    params,
    prototype,
    t2u_constants,
)
from toolchain.codegen.layers.tflite import tfl_layer
from toolchain.codegen.selection import (
    FAST_PIXELS,
    KERNELS,
    fast_buffer_bytes,
    fast_variant,
    weight_code,
)
from toolchain.codegen.support import support_symbols
from toolchain.codegen.tables import base3_lut, t2_masks, t2_pairs, t3_t2
from toolchain.errors import StqError
from toolchain.fsutil import atomic_dir
from toolchain.ir.artifact import SEMANTICS, content_hash
from toolchain.ir.graph import TFLITE_OPS, Graph
from toolchain.ir.packing import pack, pack_rows
from toolchain.memory.lifetimes import plan_arena, tensor_offsets

WDESC = {"t2": "ternary 2-bit packed", "t3": "ternary base-3 packed", "i8": "int8"}
TEMPLATE = {op: f"reference/{op}.c.j2" for op in ("conv2d", "depthwise_conv2d", "dense",
                                                   "maxpool", "avgpool", "add")}
DW_FAST_TEMPLATE = {"fast": "optimized/dwconv_fast.c.j2",
                    "fastu": "optimized/dwconv_fastu.c.j2"}
POOL_FAST_TEMPLATE = {"fast": "optimized/avgpool_fast.c.j2"}
DENSE_FAST_TEMPLATE = {"fast": "optimized/dense_fast.c.j2"}
FAST_TEMPLATE = {"fast4": "optimized/conv2d_fast4.c.j2", "fast": "optimized/conv2d_fast.c.j2",
                 "fastu": "optimized/conv2d_fastu.c.j2", "fastu3": "optimized/conv2d_fastu.c.j2"}
SOURCES = {"model.h": "api/model.h.j2", "kernels.h": "api/kernels.h.j2",
           "model.c": "schedule/model.c.j2", "weights.c": "schedule/weights.c.j2",
           "kernels.c": "schedule/kernels.c.j2"}
DEFAULT_PREFIX = "stq_"
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]*_$")


def file_prefix(prefix: str) -> str:
    """Source files are model.h, kernels.c, ... for the default prefix, else PREFIXmodel.h."""
    return "" if prefix == DEFAULT_PREFIX else prefix


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("toolchain.codegen", "templates"), trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)






def generate(g: Graph, kernels: str = "optimized", prefix: str = DEFAULT_PREFIX,
             shared_arena: str | None = None, shared_scratch: str | None = None) -> CModel:
    """The C sources of ``g`` and their structure. ``kernels``: "optimized" (fast kernels where
    there is one) or "reference"; ``prefix``: the symbol prefix of everything generated;
    ``shared_arena`` / ``shared_scratch``: symbols defined elsewhere (an ensemble's wrapper)
    that this model then uses instead of defining its own arena / kernel scratch."""
    if kernels not in KERNELS:
        raise StqError(f"kernels {kernels!r} is not one of {', '.join(KERNELS)}")
    if not _PREFIX_RE.match(prefix):
        raise StqError(f"symbol prefix {prefix!r} must be lower-case letters and digits "
                       "followed by '_', e.g. 'stq_' or 'm1_'")
    env = _env()
    P = prefix.upper()
    arena = shared_arena or f"{prefix}arena"
    packing = g.options.get("packing", "2bit")
    scratch_bytes = 0
    fast_codes: set[str] = set()
    im2col: dict[str, dict[str, str]] = {}
    pair_shorts: set[str] = set()  # input types whose <prefix>pairs_* helper a kernel uses
    planner = plan_arena(g)
    offsets = tensor_offsets(g, planner)
    arrays: list[CArray] = []
    layers: list[Layer] = []
    bodies: dict[str, str] = {}
    docs: dict[str, dict] = {}
    weight_bytes: dict[str, int] = {}
    codes: set[str] = set()
    tfl_ops: set[str] = set()
    tfl_fast: set[str] = set()  # tfl_* ops with an optimized kernel in this model
    pending: dict[str, tuple[str, dict]] = {}  # kernel -> its template and context
    wide: dict[str, bool] = {}  # kernel -> some layer of it has no 32-bit constants
    narrow: dict[str, bool] = {}  # kernel -> some layer of it has 32-bit constants

    def ptr(tensor: str, const: bool) -> str:
        t = g.tensors[tensor]
        return (f"({'const ' if const else ''}{CTYPE[t.dtype]} *)"
                f"&{arena}[{offsets[tensor]}]")

    for i, n in enumerate(g.nodes):
        base = f"{i}_{cname(n.name)}"
        out = g.tensors[n.output]
        ins = [g.tensors[t] for t in n.inputs]
        if n.op in TFLITE_OPS:  # TFLite semantics: codegen/layers/tflite.py
            t = tfl_layer(g, n, base, prefix, kernels, n.inputs[0] == g.input)
            arrays += t.arrays
            weight_bytes[n.name] = sum(a.nbytes for a in t.arrays)
            scratch_bytes = max(scratch_bytes, t.scratch)
            tfl_ops.add(n.op)
            tfl_fast |= {n.op} if t.variant is not None else set()
            if t.fn not in bodies:
                proto = prototype(prefix, t.fn, ins, out)
                bodies[t.fn] = env.get_template(t.template).render(
                    proto=proto, ref_fn=t.ref_fn, p=prefix, P=P)
                docs[t.fn] = {"proto": proto, "doc": t.doc}
            args = [ptr(x, True) for x in n.inputs] + [ptr(n.output, False), f"&{prefix}p_{base}"]
            layers.append(Layer(n.name, n.op, f"{prefix}p_{base}", t.fn, t.ref_fn,
                                f"{t.fn}({', '.join(args)})", offsets[n.output], out.nbytes,
                                "x".join(map(str, out.shape)), out.dtype, t.p,
                                [a.symbol for a in t.arrays]))
            continue
        p = params(g, n)
        start = len(arrays)
        wk = weight_code(n, packing) if "weights" in n.arrays else None
        variant = fast_variant(n, wk, ins[0], kernels, n.inputs[0] == g.input)
        if "weights" in n.arrays:
            w = n.arrays["weights"]
            if n.op == "depthwise_conv2d":
                data = w.astype(np.int8).reshape(-1) if wk == "i8" else pack(w, packing)
                p["row_bytes"] = 0
            else:
                rows = w.reshape(w.shape[0], -1)
                if variant == "fast4":  # each row padded with 0 weights to whole groups of 4
                    rows = np.pad(rows, ((0, 0), (0, -rows.shape[1] % 4)))
                if wk == "i8":
                    data, p["row_bytes"] = rows.astype(np.int8).reshape(-1), rows.shape[1]
                else:
                    data, p["row_bytes"] = pack_rows(rows, packing)
            arrays.append(CArray(f"{prefix}w_{base}", "int8_t" if wk == "i8" else "uint8_t",
                                 data, f"{n.name}: {n.attrs['weight_kind']} weights "
                                 f"{list(w.shape)}"))
            p["weights"] = f"{prefix}w_{base}"
        variant, req = fast_constants(n, ins, variant)
        qarrays = dict(n.arrays)
        if n.op == "conv2d" and variant in ("fastu", "fastu3"):  # toolchain/ir/t2u.py
            req, qarrays["offset"] = t2u_constants(n, ins, out)
        for key, ctype in (("mult", "int32_t"), ("mult2", "int32_t"), ("shift", "int32_t"),
                           ("offset", "int64_t")):
            # a fast kernel with proven 32-bit constants never reads the 64-bit ones, nor a
            # pooling layer with the identity requantization (mult 1, shift 0, offset 0)
            if key in n.arrays and req is None and not identity_requant(n):
                arrays.append(CArray(f"{prefix}q_{base}_{key}", ctype, qarrays[key],
                                     f"{n.name}: requantization {key}"))
                p[key] = f"{prefix}q_{base}_{key}"
        weight_bytes[n.name] = sum(a.nbytes for a in arrays[start:])

        ref_fn = kernel_name(prefix, n, wk, ins, out)
        fn, template = ref_fn, TEMPLATE[n.op]
        if variant is not None:
            fn, template = f"{ref_fn}_{variant}", (
                DW_FAST_TEMPLATE if n.op == "depthwise_conv2d" else
                POOL_FAST_TEMPLATE if n.op == "avgpool" else
                DENSE_FAST_TEMPLATE if n.op == "dense" else FAST_TEMPLATE)[variant]
            scratch_bytes = max(scratch_bytes, fast_buffer_bytes(p, variant, n.op))
            if req is not None:
                what = ("byte-lane masks and constants" if n.op == "depthwise_conv2d" else
                        "32-bit requantization (m, o - 255 * (-1 weights) * m - clamp_min * "
                        f"2^s, s{', m2' if len(ins) == 2 else ''})") \
                    if variant in ("fastu", "fastu3") else \
                    "tie-free 64-bit requantization (m, o + 2^(s-1) low and high words, s - 32)" \
                    if n.op == "dense" else "32-bit requantization (m, o, s)"
                arrays.append(CArray(f"{prefix}q_{base}_req32", "int32_t", req,
                                     f"{n.name}: {what}"))
                p["req32"] = f"{prefix}q_{base}_req32"
                weight_bytes[n.name] += arrays[-1].nbytes
            odd_c = int(p["in_c"]) % 4 != 0  # the im2col needs its byte patch
            if n.op == "avgpool":
                fast_codes.add("pool")  # int16 pairs of window sums, no scratch
            elif n.op == "dense":
                fast_codes.add("dense")  # the input vector as int16 pairs, three rows per pass
                pair_shorts |= {SHORT[ins[0].dtype]} - {"i32"}
            elif n.op == "depthwise_conv2d" and variant == "fastu":
                fast_codes.add("dwu")  # byte lanes: no weight decoding, no int16 pairs
            elif n.op == "depthwise_conv2d":
                fast_codes.add("dw")
                pair_shorts.add(SHORT[ins[0].dtype])
                codes.add(str(wk))  # it decodes the weights with <prefix>t2 / t3
            elif variant == "fast4":
                fast_codes.add("fast4")  # its own dot loop on pre-decoded weight pairs
                pair_shorts.add(SHORT[ins[0].dtype])
            elif variant in ("fastu", "fastu3"):
                fast_codes |= {"t2u", "t3u"} if variant == "fastu3" else {"t2u"}
                if -(-int(p["k_h"]) * int(p["k_w"]) * int(p["in_c"]) // 4) % 2:
                    fast_codes.add("t2u_odd")  # a row of an odd number of bytes
                im2col["raw"] = {"short": "raw", "ctype": "uint8_t", "dst_t": "uint32_t",
                                 "pack": "", "what": "the raw input bytes, 4 per word",
                                 "patch": odd_c or im2col.get("raw", {}).get("patch", False)}
            else:
                fast_codes.add(str(wk))
                short = SHORT[ins[0].dtype]
                im2col[short] = {"short": short, "ctype": CTYPE[ins[0].dtype],
                                 "dst_t": "uint64_t", "pack": f"{prefix}pairs_{short}",
                                 "what": f"int16 pairs ({prefix}pairs_{short})",
                                 "patch": odd_c or im2col.get(short, {}).get("patch", False)}
        elif wk is not None:
            codes.add(wk)  # a reference kernel reads these weights with <prefix>t2 / t3
        wide[fn] = wide.get(fn, False) or req is None  # some layer of fn needs 64 bits
        narrow[fn] = narrow.get(fn, False) or req is not None
        if fn not in bodies:
            proto = prototype(prefix, fn, ins, out)
            ctx = {"proto": proto, "wk": wk, "wdesc": WDESC.get(wk or "", ""),
                   "in_t": CTYPE[ins[0].dtype], "out_t": CTYPE[out.dtype],
                   "in_s": SHORT[ins[0].dtype], "ref_fn": ref_fn, "p": prefix, "P": P,
                   "res_t": CTYPE[ins[1].dtype] if len(ins) == 2 else None,
                   "res_s": SHORT[ins[1].dtype] if len(ins) == 2 else None}
            bodies[fn] = ""  # rendered below, once every layer of fn is known
            pending[fn] = (template, ctx)
            docs[fn] = {"proto": proto, "doc": kernel_doc(n, wk, ins, out, variant, ref_fn)}
        call_args = [ptr(n.inputs[0], True)]
        if len(n.inputs) == 2:
            call_args.append(ptr(n.inputs[1], True))
        call_args += [ptr(n.output, False), f"&{prefix}p_{base}"]
        layers.append(Layer(n.name, n.op, f"{prefix}p_{base}", fn, ref_fn,
                            f"{fn}({', '.join(call_args)})", offsets[n.output], out.nbytes,
                            "x".join(map(str, out.shape)), out.dtype, p,
                            [a.symbol for a in arrays[start:]]))

    helpers: list[str] = []  # functions a kernel's body defines beside the kernel itself
    for fn, (template, ctx) in pending.items():
        bodies[fn] = env.get_template(template).render(**ctx, needs64=wide[fn],
                                                       has32=narrow[fn])
        if template == DENSE_FAST_TEMPLATE["fast"] and wide[fn]:
            helpers.append(f"{ctx['ref_fn']}_fast_out64")  # NOINLINE: in the ELF
    t2u = {fn: ctx for fn, (template, ctx) in pending.items()
           if template == FAST_TEMPLATE["fastu"]}
    t2u_dot = any(wide[fn] for fn in t2u)  # the per-channel dot loop: 64-bit layers, odd rows
    # the routines of every output channel: without a residual, and per residual type
    t2u_plain = any(narrow[fn] and not ctx["res_t"] for fn, ctx in t2u.items())
    t2u_res = [{"short": s, "ctype": c} for s, c in sorted(
        {(ctx["res_s"], ctx["res_t"]) for fn, ctx in t2u.items() if narrow[fn] and ctx["res_t"]})]
    fast_codes |= ({"t2u_plain"} if t2u_plain else set()) | {f"t2u_res_{r['short']}"
                                                              for r in t2u_res}
    out_t = g.tensors[g.output]
    argmax_fn = f"{prefix}argmax_{SHORT[out_t.dtype]}"
    argmax_proto = f"int32_t {argmax_fn}(const {CTYPE[out_t.dtype]} *x, int32_t n)"
    bodies[argmax_fn] = env.get_template("reference/argmax.c.j2").render(
        proto=argmax_proto, in_t=CTYPE[out_t.dtype], p=prefix, P=P)
    docs[argmax_fn] = {"proto": argmax_proto, "doc": [
        f"Index of the first largest of the n {CTYPE[out_t.dtype]} values x[0..n-1]."]}

    tin = g.tensors[g.input]
    in_shape = list(tin.shape) + [1] * (3 - len(tin.shape))
    im2col_types = [im2col[k] for k in sorted(im2col)]
    support = support_symbols("t3" in codes, fast_codes, [s["short"] for s in im2col_types])
    if tfl_fast:
        support.tables.add("scratch")
    if shared_scratch or not scratch_bytes:  # no kernel of this model uses scratch
        support.tables.discard("scratch")
    if "tfl_conv2d" in tfl_fast:
        support.functions |= {"tfl_conv2d_fast_get_buffer_size", "tfl_im2col"}
    fp = file_prefix(prefix)
    ctx = {
        "p": prefix, "P": P, "header_prefix": fp, "arena": arena,
        "shared_scratch": shared_scratch,
        "version": __version__, "name": g.name, "hash": content_hash(g), "semantics": SEMANTICS,
        "in_h": in_shape[0], "in_w": in_shape[1], "in_c": in_shape[2],
        "input_bytes": tin.nbytes, "input_signed": int(tin.dtype != "uint8"),
        "input_dtype": tin.dtype, "output_count": out_t.size, "output_elem": out_t.itemsize,
        "output_bytes": out_t.nbytes, "output_dtype": out_t.dtype,
        "output_ctype": CTYPE[out_t.dtype], "arena_bytes": max(planner.total, 8),
        "macs": g.macs(), "layers": layers, "input_offset": offsets[g.input],
        "output_offset": offsets[g.output], "argmax_fn": argmax_fn, "arrays": arrays,
        "packing": packing, "kernel_docs": [docs[k] for k in bodies],
        "bodies": [bodies[k] for k in bodies], "uses_t2": "t2" in codes,
        "uses_t3": "t3" in codes, "base3_lut": base3_lut(),
        "uses_fast": bool(fast_codes), "uses_t2_fast": "t2" in fast_codes,
        "uses_i8_fast": "i8" in fast_codes, "uses_t2u_fast": "t2u" in fast_codes,
        "t2u_odd": "t2u_odd" in fast_codes, "t2u_dot": t2u_dot, "t2u_plain": t2u_plain,
        "t2u_res": t2u_res,
        "uses_t3u_fast": "t3u" in fast_codes, "t3_t2": t3_t2(), "t2_masks": t2_masks(),
        "fast_pixels": FAST_PIXELS,
        "scratch_words": max(1, -(-scratch_bytes // 8)), "scratch_bytes": scratch_bytes,
        "t2_pairs": t2_pairs(),
        "im2col_types": im2col_types, "im2col_shorts": [s["short"] for s in im2col_types],
        "pair_shorts": pair_shorts | {s["short"] for s in im2col_types},
        "uses_dw_fast": "dw" in fast_codes, "uses_dwu_fast": "dwu" in fast_codes,
        "uses_fast4": "fast4" in fast_codes, "uses_pool_fast": "pool" in fast_codes,
        "uses_dense_fast": "dense" in fast_codes,
        "record_fields": [{"name": f.name, "decl": f.decl(prefix), "doc": f.doc}
                          for f in record.FIELDS],
        "record_bytes": record.RECORD_BYTES,
        "uses_tfl": bool(tfl_ops), "uses_tfl_softmax": "tfl_softmax" in tfl_ops,
        "uses_tfl_fast": bool(tfl_fast), "uses_tfl_conv_fast": "tfl_conv2d" in tfl_fast,
    }
    files = {f"{fp}{name}": env.get_template(tpl).render(**ctx)
             for name, tpl in SOURCES.items()}
    return CModel(files, prefix, ctx["arena_bytes"], offsets, arrays, layers, weight_bytes,
                  [*bodies, *helpers], support, kernels, scratch_bytes, planner, arena)


def write(g: Graph, outdir: Path, kernels: str = "optimized",
          prefix: str = DEFAULT_PREFIX) -> CModel:
    """Generate and write the sources into ``outdir`` atomically (all files or none)."""
    model = generate(g, kernels, prefix)
    with atomic_dir(Path(outdir)) as tmp:
        for name, text in model.files.items():
            (tmp / name).write_text(text)
    return model


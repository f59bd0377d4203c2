"""What each group of support code defines: the symbols a model's kernels pull in.

The templates under templates/support/ emit these helpers and tables when a model uses the
feature; the budget checker books their code and bytes to the model (not to the firmware
runtime) from this list and the ELF's symbol sizes, without reading the C back. Inline helpers
leave no symbol of their own (their code is inside the kernel that calls them) and are not
listed. Names are without the model's symbol prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Support:
    """The helper functions and static tables one generated kernels.c defines."""

    functions: set[str] = field(default_factory=set)
    tables: set[str] = field(default_factory=set)


def support_symbols(uses_t3: bool, fast_codes: set[str], im2col_shorts: list[str]) -> Support:
    s = Support()
    if uses_t3:
        s.tables.add("base3_lut")
    if fast_codes:
        s.functions |= {"conv2d_fast_get_buffer_size", "conv2d_fastu_get_buffer_size"}
        s.tables.add("scratch")  # RAM, but a static of kernels.c all the same
    s.functions |= {f"im2col_{short}" for short in im2col_shorts}
    if "t2" in fast_codes:
        s.functions.add("dot_t2")
        s.tables.add("t2_pairs")
    if "t2u" in fast_codes:
        s.functions.add("dot_t2u")
        s.tables.add("t2_masks")
    if "t2u_plain" in fast_codes:  # the routine of every output channel, without a residual
        s.functions.add("t2u_req32")
    s.functions |= {f"t2u_req32_res_{c[8:]}" for c in fast_codes if c.startswith("t2u_res_")}
    if "t3u" in fast_codes:
        s.functions |= {"t3_to_t2", "conv2d_fastu3_get_buffer_size"}
        s.tables.add("t3_t2")
    if "fast4" in fast_codes:
        s.functions |= {"conv2d_fast4_get_buffer_size", "dot_i8p"}
    if "dw" in fast_codes:
        s.functions.add("dwconv2d_fast_get_buffer_size")
    if "dwu" in fast_codes:
        s.functions.add("dwconv2d_fastu_get_buffer_size")
    if "i8" in fast_codes:
        s.functions.add("dot_i8")
    if "dense" in fast_codes:
        s.functions.add("dense_fast_get_buffer_size")
    return s


# model.c: the schedule and its API (docs/c_api.md); "hook" and "arena" are RAM
MODEL_FUNCTIONS = ("model_set_layer_hook", "model_input", "model_output", "model_invoke",
                   "model_run", "model_argmax")
MODEL_OBJECTS = ("layer_names", "model_hash", "hook", "arena")

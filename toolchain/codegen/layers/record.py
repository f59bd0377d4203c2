"""The layer parameter record ``<prefix>layer_params_t``: its fields, in order, defined once.

kernels.h declares the struct from this list, weights.c fills each layer's record with
designated initializers from it, and the budget checker books ``RECORD_BYTES`` per layer (the
size on a 32-bit MCU: every field is 4 bytes there), which the ELF check then confirms.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    ctype: str  # "int32_t" or a pointer type ("const void *", "const int32_t *", ...)
    doc: str
    default: str = "0"

    def decl(self, prefix: str) -> str:
        star = self.ctype.endswith("*")
        return f"{self.ctype}{'' if star else ' '}{self.name}"


FIELDS: tuple[Field, ...] = (
    Field("in_h", "int32_t", "input height (dense: 1)", "1"),
    Field("in_w", "int32_t", "input width (dense: 1)", "1"),
    Field("in_c", "int32_t", "input channels (dense: input features)"),
    Field("out_h", "int32_t", "output height (dense, add: 1 or rows)", "1"),
    Field("out_w", "int32_t", "output width", "1"),
    Field("out_c", "int32_t", "output channels (dense: outputs)"),
    Field("k_h", "int32_t", "kernel or pooling window height", "1"),
    Field("k_w", "int32_t", "kernel or pooling window width", "1"),
    Field("stride_h", "int32_t", "vertical stride", "1"),
    Field("stride_w", "int32_t", "horizontal stride", "1"),
    Field("pad_t", "int32_t", "zero rows before the first input row"),
    Field("pad_l", "int32_t", "zero columns before the first input column"),
    Field("row_bytes", "int32_t", "bytes per output channel of packed weights"),
    Field("clamp_min", "int32_t", "smallest output value after requantization"),
    Field("clamp_max", "int32_t", "largest output value after requantization"),
    Field("weights", "const void *", "packed ternary (uint8_t) or int8_t weights", "NULL"),
    Field("mult", "const int32_t *", "per output channel multiplier of the accumulator", "NULL"),
    Field("mult2", "const int32_t *", "per channel multiplier of the second input, or NULL",
          "NULL"),
    Field("shift", "const int32_t *", "per channel right shift, 0..62", "NULL"),
    Field("offset", "const int64_t *", "per channel offset: folded bias and batch norm", "NULL"),
    # TFLite ops (tfl_*, docs/semantics.md TFLite section); mult/shift then hold TFLite's
    # quantized multipliers and exponents (shift > 0: left)
    Field("bias", "const int32_t *", "tfl: per output channel int32 bias", "NULL"),
    Field("in_zp", "int32_t", "tfl: input zero point"),
    Field("in2_zp", "int32_t", "tfl: zero point of the second input (ADD)"),
    Field("out_zp", "int32_t", "tfl: output zero point (PAD: the pad value)"),
    Field("dil_h", "int32_t", "tfl: vertical dilation", "1"),
    Field("dil_w", "int32_t", "tfl: horizontal dilation", "1"),
    Field("depth_mult", "int32_t", "tfl: depthwise channel multiplier", "1"),
    Field("diff_min", "int32_t", "tfl: SOFTMAX smallest x - max(x) that counts"),
    Field("req32", "const int32_t *", "per channel (m, o, s) of a 32-bit requantization the "
          "converter proved exact ((m, o, s, m2) with a fused residual), or NULL", "NULL"),
)
RECORD_BYTES = 4 * len(FIELDS)  # int32 and 32-bit pointers on Cortex-M


def defaults() -> dict[str, str]:
    """The value of every field of a layer that sets none (C literals)."""
    return {f.name: f.default for f in FIELDS}

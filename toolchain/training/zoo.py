"""QKeras model builders of the zoo: ``digits`` (the default model everywhere), the MLPerf Tiny
``resnet8`` and ``dscnn``, and ``resnet_large`` (the method's ~410 KB), each in the variants
fp, int8, stq and stq-jr."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolchain.errors import StqError

INPUT_Q = "quantized_bits(8,0,0,keep_negative=False)"  # 8-bit pixels in [0, 1)
ACT_Q = "quantized_relu(4,2)"
TERNARY = "stochastic_ternary(alpha='auto_po2')"
INT8_W = "quantized_bits(8,0,1,alpha='auto_po2')"
LOGITS_Q = "quantized_bits(8,4,0)"


def _qk() -> Any:
    import qkeras
    import tensorflow as tf

    return tf, qkeras


VARIANTS = ("fp", "int8", "stq", "stq-jr", "quanos")
INT8_ACT_Q = "quantized_relu(8,3)"
# Quanos (toolchain/training/quanos.py): kernel quantizer per assigned bit width
BITS_W = {2: "ternary(alpha='auto_po2')", 4: "quantized_bits(4,0,1,alpha='auto_po2')",
          8: INT8_W}


class Builder:
    """Builds one topology in any variant: ``fp`` (float), ``int8`` (quantized_bits(8) weights
    and 8-bit activations, the MLPerf Tiny style), ``stq`` and ``stq-jr`` (stochastic ternary
    weights, 4-bit activations; -jr is trained with Jacobian regularization). With
    ``int8_edges`` the first and last layers keep int8 weights (the method's practice).
    ``quanos``: per-layer bit widths ``bits`` (layer name -> 2, 4 or 8; 2 is ternary), 8-bit
    activations after 8-bit layers and 4-bit ones after the others."""

    def __init__(self, variant: str, int8_edges: bool = True,
                 bits: dict[str, int] | None = None) -> None:
        if variant not in VARIANTS:
            raise StqError(f"unknown variant {variant!r}; available: {', '.join(VARIANTS)}")
        if variant == "quanos" and not bits:
            raise StqError("variant quanos needs per-layer bit widths (toolchain.training."
                           "quanos.assign_bits)")
        bad = {k: v for k, v in (bits or {}).items() if v not in BITS_W}
        if bad:
            raise StqError(f"bit widths must be one of {sorted(BITS_W)}: {bad}")
        self.variant = variant
        self.int8_edges = int8_edges
        self.bits = dict(bits or {})
        self._last_bits = 8
        self.tf, self.qk = _qk()
        self.L = self.tf.keras.layers

    @property
    def fp(self) -> bool:
        return self.variant == "fp"

    def _wq(self, edge: bool, name: str = "") -> str:
        if self.variant == "quanos":
            self._last_bits = 8 if edge and self.int8_edges else self.bits.get(name, 8)
            return BITS_W[self._last_bits]
        if self.variant == "int8" or (edge and self.int8_edges):
            return INT8_W
        return TERNARY

    def input(self, x: Any) -> Any:
        return x if self.fp else self.qk.QActivation(INPUT_Q, name="input_q")(x)

    def conv(self, x: Any, filters: int, kernel: Any, name: str, strides: Any = 1,
             edge: bool = False, padding: str = "same") -> Any:
        if self.fp:
            return self.L.Conv2D(filters, kernel, strides=strides, padding=padding,
                                 use_bias=False, name=name)(x)
        return self.qk.QConv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                               kernel_quantizer=self._wq(edge, name), name=name)(x)

    def dwconv(self, x: Any, kernel: Any, name: str, strides: Any = 1) -> Any:
        if self.fp:
            return self.L.DepthwiseConv2D(kernel, strides=strides, padding="same",
                                          use_bias=False, name=name)(x)
        return self.qk.QDepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False,
                                        depthwise_quantizer=self._wq(False, name), name=name)(x)

    def dense(self, x: Any, units: int, name: str, edge: bool = True) -> Any:
        if self.fp:
            return self.L.Dense(units, name=name)(x)
        return self.qk.QDense(units, kernel_quantizer=self._wq(edge, name),
                              bias_quantizer="quantized_bits(16,5,1)", name=name)(x)

    def bn(self, x: Any, name: str) -> Any:
        return self.L.BatchNormalization(name=name)(x)

    def act(self, x: Any, name: str) -> Any:
        if self.fp:
            return self.L.ReLU(name=name)(x)
        wide = self.variant == "int8" or (self.variant == "quanos" and self._last_bits == 8)
        return self.qk.QActivation(INT8_ACT_Q if wide else ACT_Q, name=name)(x)

    def branch_q(self, x: Any, name: str) -> Any:
        """Quantize a residual branch that is not followed by an activation."""
        return x if self.fp else self.qk.QActivation("quantized_bits(8,3,1)", name=name)(x)

    def head(self, x: Any, classes: int) -> Any:
        x = self.dense(x, classes, "logits", edge=True)
        if not self.fp:
            x = self.qk.QActivation(LOGITS_Q, name="logits_q")(x)
        return self.L.Softmax(name="softmax")(x)

    def model(self, inp: Any, out: Any, name: str) -> Any:
        return self.tf.keras.Model(inp, out, name=f"{name}_{self.variant.replace('-', '_')}")


def digits(variant: str = "stq", input_shape: tuple[int, ...] = (8, 8, 1), classes: int = 10,
           int8_edges: bool = True, bits: dict[str, int] | None = None) -> Any:
    """The default digits CNN: conv-bn-act-pool x2, dense (84 k MACs)."""
    b = Builder(variant, int8_edges, bits)
    inp = b.L.Input(input_shape, name="image")
    x = b.input(inp)
    x = b.act(b.bn(b.conv(x, 16, 3, "conv1", edge=True), "bn1"), "act1")
    x = b.L.MaxPooling2D(2, name="pool1")(x)
    x = b.act(b.bn(b.conv(x, 32, 3, "conv2"), "bn2"), "act2")
    x = b.L.MaxPooling2D(2, name="pool2")(x)
    x = b.L.Flatten(name="flatten")(x)
    return b.model(inp, b.head(x, classes), "digits")


def resnet8(variant: str = "stq", input_shape: tuple[int, ...] = (32, 32, 3),
            classes: int = 10, int8_edges: bool = True,
            bits: dict[str, int] | None = None) -> Any:
    """The MLPerf Tiny image-classification ResNet-8 (16/32/64 filters, ~78 k parameters,
    12.5 M MACs). The 1x1 shortcut convolutions of blocks 2 and 3 get an 8-bit quantizer so the
    residual add fuses into the second conv of each block."""
    return _resnet(variant, input_shape, classes, int8_edges, (16, 32, 64), "resnet8", bits)


def _resnet(variant: str, input_shape: tuple[int, ...], classes: int, int8_edges: bool,
            widths: tuple[int, ...], name: str, bits: dict[str, int] | None = None) -> Any:
    b = Builder(variant, int8_edges, bits)
    inp = b.L.Input(input_shape, name="image")
    x = b.input(inp)
    x = b.act(b.bn(b.conv(x, widths[0], 3, "conv1", edge=True), "bn1"), "act1")
    for block, filters in enumerate(widths, start=1):
        stride = 1 if block == 1 else 2
        y = b.act(b.bn(b.conv(x, filters, 3, f"b{block}_conv1", strides=stride),
                       f"b{block}_bn1"), f"b{block}_act1")
        y = b.bn(b.conv(y, filters, 3, f"b{block}_conv2"), f"b{block}_bn2")
        if stride != 1 or x.shape[-1] != filters:
            x = b.branch_q(b.conv(x, filters, 1, f"b{block}_short", strides=stride),
                           f"b{block}_short_q")
        x = b.act(b.L.Add(name=f"b{block}_add")([y, x]), f"b{block}_act2")
    x = b.L.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = b.L.Flatten(name="flatten")(x)
    return b.model(inp, b.head(x, classes), name)


def resnet_large(variant: str = "stq", input_shape: tuple[int, ...] = (32, 32, 3),
                 classes: int = 10, int8_edges: bool = True,
                 bits: dict[str, int] | None = None) -> Any:
    """A wider ResNet (48/96/192/240 filters, 1.67 M parameters) whose packed 2-bit ternary
    weights take 420 KB (~410 KiB, the method's model size): a realistic large budget case."""
    return _resnet(variant, input_shape, classes, int8_edges, (48, 96, 192, 240),
                   "resnet_large", bits)


def dscnn(variant: str = "stq", input_shape: tuple[int, ...] = (49, 10, 1), classes: int = 12,
          int8_edges: bool = True, bits: dict[str, int] | None = None) -> Any:
    """The MLPerf Tiny keyword-spotting DS-CNN: a 10x4 stride-2 conv (64 filters), four
    depthwise-separable blocks, average pooling, dense to 12 classes."""
    b = Builder(variant, int8_edges, bits)
    inp = b.L.Input(input_shape, name="mfcc")
    x = b.input(inp) if not b.fp else inp
    x = b.act(b.bn(b.conv(x, 64, (10, 4), "conv1", strides=2, edge=True), "bn1"), "act1")
    x = b.L.Dropout(0.2, name="drop1")(x)
    for i in range(1, 5):
        x = b.act(b.bn(b.dwconv(x, 3, f"dw{i}"), f"dw{i}_bn"), f"dw{i}_act")
        x = b.act(b.bn(b.conv(x, 64, 1, f"pw{i}"), f"pw{i}_bn"), f"pw{i}_act")
    x = b.L.Dropout(0.4, name="drop2")(x)
    x = b.L.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = b.L.Flatten(name="flatten")(x)
    return b.model(inp, b.head(x, classes), "dscnn")


MODELS: dict[str, Callable[..., Any]] = {"digits": digits, "resnet8": resnet8,
                                         "dscnn": dscnn, "resnet_large": resnet_large}
DEFAULT_DATASET = {"digits": "digits", "resnet8": "cifar10", "dscnn": "speech_commands",
                   "resnet_large": "cifar10"}

"""QKeras model builders. ``digits`` is the default model everywhere; the ``probe_*`` topologies
cover each converter path (plain CNN, residual add, depthwise-separable, dense-only, mixed
int8/ternary) on the same 8x8 digits input."""

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


def digits(variant: str = "stq", input_shape: tuple[int, int, int] = (8, 8, 1),
           classes: int = 10) -> Any:
    """The default digits CNN: conv-bn-act-pool x2, dense; ternary middle, int8 first/last
    layers for the ``stq`` variants (the method's practice), float for ``fp``."""
    tf, qk = _qk()
    L = tf.keras.layers
    inp = L.Input(input_shape, name="image")
    if variant == "fp":
        x = L.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(inp)
        x = L.BatchNormalization(name="bn1")(x)
        x = L.ReLU(name="relu1")(x)
        x = L.MaxPooling2D(2, name="pool1")(x)
        x = L.Conv2D(32, 3, padding="same", use_bias=False, name="conv2")(x)
        x = L.BatchNormalization(name="bn2")(x)
        x = L.ReLU(name="relu2")(x)
        x = L.MaxPooling2D(2, name="pool2")(x)
        x = L.Flatten(name="flatten")(x)
        x = L.Dense(classes, name="logits")(x)
        out = L.Softmax(name="softmax")(x)
        return tf.keras.Model(inp, out, name="digits_fp")
    if variant not in ("stq", "stq-jr", "int8"):
        raise StqError(f"unknown variant {variant!r} for model digits (fp, int8, stq, stq-jr)")
    middle = INT8_W if variant == "int8" else TERNARY
    x = qk.QActivation(INPUT_Q, name="input_q")(inp)
    x = qk.QConv2D(16, 3, padding="same", use_bias=False, kernel_quantizer=INT8_W,
                   name="conv1")(x)
    x = L.BatchNormalization(name="bn1")(x)
    x = qk.QActivation(ACT_Q, name="act1")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = qk.QConv2D(32, 3, padding="same", use_bias=False, kernel_quantizer=middle,
                   name="conv2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = qk.QActivation(ACT_Q, name="act2")(x)
    x = L.MaxPooling2D(2, name="pool2")(x)
    x = L.Flatten(name="flatten")(x)
    x = qk.QDense(classes, kernel_quantizer=INT8_W, bias_quantizer="quantized_bits(16,5,1)",
                  name="logits")(x)
    x = qk.QActivation(LOGITS_Q, name="logits_q")(x)
    out = L.Softmax(name="softmax")(x)
    return tf.keras.Model(inp, out, name=f"digits_{variant.replace('-', '_')}")


def probe_residual() -> Any:
    """Residual block with the add fused into the second conv, plus a standalone Add."""
    tf, qk = _qk()
    L = tf.keras.layers
    inp = L.Input((8, 8, 1))
    x = qk.QActivation(INPUT_Q)(inp)
    x = qk.QConv2D(8, 3, padding="same", kernel_quantizer=TERNARY, name="stem")(x)
    x = L.BatchNormalization()(x)
    s = qk.QActivation(ACT_Q, name="stem_q")(x)
    y = qk.QConv2D(8, 3, padding="same", kernel_quantizer=TERNARY, use_bias=False)(s)
    y = L.BatchNormalization()(y)
    y = qk.QActivation(ACT_Q)(y)
    y = qk.QConv2D(8, 3, padding="same", kernel_quantizer=TERNARY, use_bias=False)(y)
    y = L.BatchNormalization()(y)
    x = L.Add(name="fused_add")([y, s])
    r = qk.QActivation(ACT_Q, name="res_q")(x)
    z = qk.QConv2D(8, 1, kernel_quantizer=TERNARY, activation=ACT_Q, name="side")(r)
    x = L.Add(name="plain_add")([r, z])
    x = qk.QActivation("quantized_relu(5,3)")(x)
    x = L.AveragePooling2D(2)(x)
    x = qk.QActivation(ACT_Q)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = qk.QDense(10, kernel_quantizer=TERNARY)(x)
    return tf.keras.Model(inp, x, name="probe_residual")


def probe_depthwise() -> Any:
    """Depthwise-separable blocks (the DS-CNN pattern) with zero padding and strides, a max
    pooling placed before its quantizer, and Reshape/Flatten after global pooling."""
    tf, qk = _qk()
    L = tf.keras.layers
    inp = L.Input((8, 8, 1))
    x = qk.QActivation(INPUT_Q)(inp)
    x = qk.QConv2D(16, 3, strides=1, padding="same", kernel_quantizer=INT8_W)(x)
    x = L.BatchNormalization()(x)
    x = L.MaxPooling2D(2, strides=1, padding="same", name="pool_before_q")(x)  # deferred
    x = qk.QActivation(ACT_Q)(x)
    x = L.ZeroPadding2D(((1, 0), (0, 1)))(x)
    x = qk.QDepthwiseConv2D(3, strides=2, padding="valid", depthwise_quantizer=TERNARY)(x)
    x = L.BatchNormalization()(x)
    x = qk.QActivation(ACT_Q)(x)
    x = qk.QConv2D(24, 1, kernel_quantizer=TERNARY, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = qk.QActivation(ACT_Q)(x)
    x = qk.QDepthwiseConv2D(3, padding="same", depthwise_quantizer="ternary(alpha='auto')")(x)
    x = L.BatchNormalization()(x)
    x = qk.QActivation("quantized_bits(6,2,1)")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Reshape((1, 1, 24))(x)
    x = L.Flatten()(x)
    x = qk.QDense(10, kernel_quantizer=INT8_W)(x)
    x = L.Activation("softmax")(x)
    return tf.keras.Model(inp, x, name="probe_depthwise")


def probe_dense() -> Any:
    """Dense-only network (binary and ternary weights, QBatchNormalization), Sequential API."""
    tf, qk = _qk()
    L = tf.keras.layers
    return tf.keras.Sequential([
        L.Input((8, 8, 1)),
        qk.QActivation("quantized_relu(8,0)"),
        L.Flatten(),
        qk.QDense(48, kernel_quantizer="binary(alpha='auto_po2')", bias_quantizer=None),
        qk.QBatchNormalization(),
        qk.QActivation(ACT_Q),
        L.Dropout(0.1),
        qk.QDense(32, kernel_quantizer=TERNARY, activation="quantized_relu(3,1)"),
        qk.QDense(10, kernel_quantizer="ternary()"),
        L.Softmax(),
    ], name="probe_dense")


def resnet8(variant: str = "stq", input_shape: tuple[int, int, int] = (32, 32, 3),
            classes: int = 10, act: str = ACT_Q) -> Any:
    """The MLPerf Tiny image-classification ResNet-8 (16/32/64 filters, ~78 k parameters).

    The QKeras variants quantize every activation; the 1x1 shortcut convolutions of blocks 2
    and 3 get an 8-bit quantizer so that the residual add can fuse into the second conv of each
    block. First and last layers are int8 (the method's practice), the rest ternary (stq) or
    int8 (int8).
    """
    tf, qk = _qk()
    L = tf.keras.layers
    if variant not in ("stq", "stq-jr", "int8"):
        raise StqError(f"unknown variant {variant!r} for model resnet8 (int8, stq, stq-jr)")
    mid = INT8_W if variant == "int8" else TERNARY
    inp = L.Input(input_shape, name="image")
    x = qk.QActivation(INPUT_Q, name="input_q")(inp)
    x = qk.QConv2D(16, 3, padding="same", kernel_quantizer=INT8_W, use_bias=False,
                   name="conv1")(x)
    x = L.BatchNormalization(name="bn1")(x)
    x = qk.QActivation(act, name="act1")(x)
    for block, (filters, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
        y = qk.QConv2D(filters, 3, strides=stride, padding="same", kernel_quantizer=mid,
                       use_bias=False, name=f"b{block}_conv1")(x)
        y = L.BatchNormalization(name=f"b{block}_bn1")(y)
        y = qk.QActivation(act, name=f"b{block}_act1")(y)
        y = qk.QConv2D(filters, 3, padding="same", kernel_quantizer=mid, use_bias=False,
                       name=f"b{block}_conv2")(y)
        y = L.BatchNormalization(name=f"b{block}_bn2")(y)
        if stride != 1:
            x = qk.QConv2D(filters, 1, strides=stride, padding="same", kernel_quantizer=mid,
                           use_bias=False, name=f"b{block}_short")(x)
            x = qk.QActivation("quantized_bits(8,3,1)", name=f"b{block}_short_q")(x)
        x = L.Add(name=f"b{block}_add")([y, x])
        x = qk.QActivation(act, name=f"b{block}_act2")(x)
    x = L.AveragePooling2D(pool_size=x.shape[1:3], name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = qk.QDense(classes, kernel_quantizer=INT8_W, name="logits")(x)
    x = qk.QActivation(LOGITS_Q, name="logits_q")(x)
    out = L.Softmax(name="softmax")(x)
    return tf.keras.Model(inp, out, name=f"resnet8_{variant.replace('-', '_')}")


MODELS: dict[str, Callable[..., Any]] = {"digits": digits, "resnet8": resnet8}
PROBES: dict[str, Callable[[], Any]] = {
    "cnn": lambda: digits("stq"), "residual": probe_residual, "depthwise": probe_depthwise,
    "dense": probe_dense,
}

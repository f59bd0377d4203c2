"""Handlers for each supported Keras / QKeras layer type (registered into the frontend)."""

from __future__ import annotations

from typing import Any

import numpy as np

from toolchain.errors import StqError
from toolchain.frontend import handles
from toolchain.ir import Node
from toolchain.lowering import Lowering, Pending, Quant, Raw, Value, _hwc, out_size
from toolchain.quantizers import ActFormat, act_format, quantize_kernel

QUANTIZER_CLASSES = ("quantized_relu", "quantized_bits", "ternary", "stochastic_ternary",
                     "binary", "quantized_po2", "quantized_relu_po2", "quantized_tanh",
                     "quantized_sigmoid", "quantized_ulaw", "bernoulli", "stochastic_binary",
                     "quantized_hswish")


def _one(layer: Any, args: list[Value]) -> Value:
    if len(args) != 1:
        raise StqError(f"layer '{layer.name}' ({type(layer).__name__}) expects one input, "
                       f"got {len(args)}")
    return args[0]


def _bounds(weights_oc_flat: np.ndarray, x_lo: int, x_hi: int) -> np.ndarray:
    """Worst-case |accumulator| per output channel (rows: output channels)."""
    w = weights_oc_flat.astype(np.int64)
    pos = np.where(w > 0, w, 0).sum(axis=1)
    neg = np.where(w < 0, w, 0).sum(axis=1)
    hi = pos * x_hi + neg * x_lo
    lo = pos * x_lo + neg * x_hi
    return np.maximum(np.abs(hi), np.abs(lo)).astype(np.float64)


def _check_acc(layer: str, bounds: np.ndarray) -> None:
    worst = float(np.max(bounds)) if bounds.size else 0.0
    if worst > 2**31 - 1:
        raise StqError(f"layer '{layer}': the accumulator can reach {int(worst)} for the "
                       "declared weight and input ranges, which overflows int32; use fewer "
                       "input bits or split the layer")


def _activation(low: Lowering, layer: Any, value: Value, act: Any) -> Value:
    """Apply a layer's activation argument (a QKeras quantizer or a Keras function)."""
    if act is None:
        return value
    if type(act).__name__ in QUANTIZER_CLASSES:
        return _apply_quantizer(low, layer.name, value, act_format(layer.name, act))
    name = getattr(act, "__name__", str(act))
    if name == "linear":
        return value
    if name == "relu":
        if isinstance(value, Pending):
            value.relu = True
            return value
        raise StqError(f"layer '{layer.name}': relu on an already quantized tensor is not "
                       "supported; use quantized_relu on the producing layer")
    if name == "softmax":
        low.output_info = {"activation": "softmax"}
        low.softmax_layers.add(layer.name)
        return value
    raise StqError(f"layer '{layer.name}': activation {name!r} is not supported (linear, relu, "
                   "softmax at the output, or a QKeras activation quantizer)")


def _apply_quantizer(low: Lowering, layer: str, value: Value, fmt: ActFormat) -> Value:
    if isinstance(value, Pending):
        return low.finalize(value, fmt)
    if isinstance(value, Raw):
        if low.input is not None:
            raise StqError(f"layer '{layer}': the model input is quantized twice")
        t = low.new_tensor("input", value.shape, fmt.qmin, fmt.qmax, fmt.step)
        low.input = t.name
        low.input_format = fmt.to_json()
        return Quant(t.name, value.shape)
    t = low.tensors[value.tensor]
    same_grid = t.scale == fmt.step and fmt.qmin <= t.qmin and t.qmax <= fmt.qmax
    if same_grid:
        return value
    raise StqError(f"layer '{layer}': re-quantizing an already quantized tensor "
                   f"(step {t.scale:g} -> {fmt.step:g}) is not supported; quantize the producing "
                   "layer's output directly")


@handles("QActivation")
def q_activation(low: Lowering, layer: Any, args: list[Value]) -> Value:
    value = _one(layer, args)
    quantizer = getattr(layer, "quantizer", None)
    if quantizer is None or isinstance(quantizer, str):
        from qkeras.quantizers import get_quantizer

        quantizer = get_quantizer(layer.activation)
    return _activation(low, layer, value, quantizer)


@handles("Activation", "ReLU", "Softmax")
def keras_activation(low: Lowering, layer: Any, args: list[Value]) -> Value:
    value = _one(layer, args)
    cls = type(layer).__name__
    if cls == "Softmax":
        low.output_info = {"activation": "softmax"}
        low.softmax_layers.add(layer.name)
        return value
    if cls == "ReLU":
        if layer.max_value is not None or float(layer.negative_slope) != 0.0 or float(
                layer.threshold) != 0.0:
            raise StqError(f"layer '{layer.name}': ReLU with max_value/negative_slope/threshold "
                           "is not supported")
        return _activation(low, layer, value, _named("relu"))
    return _activation(low, layer, value, layer.activation)


def _named(name: str) -> Any:
    def fn() -> None:
        return None

    fn.__name__ = name
    return fn


@handles("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout")
def dropout(low: Lowering, layer: Any, args: list[Value]) -> Value:
    return _one(layer, args)


@handles("Flatten", "Reshape")
def reshape(low: Lowering, layer: Any, args: list[Value]) -> Value:
    value = _one(layer, args)
    shape = tuple(int(s) for s in layer.output_shape[1:])
    if isinstance(value, Quant):
        if any(value.pad):
            raise StqError(f"layer '{layer.name}' reshapes a zero-padded tensor")
        return Quant(value.tensor, shape)
    if isinstance(value, Pending):
        value.post.append(("reshape", {"shape": shape}))
        value.shape = shape
        return value
    raise StqError(f"layer '{layer.name}' reshapes the float model input; quantize it first")


@handles("ZeroPadding2D")
def zero_padding(low: Lowering, layer: Any, args: list[Value]) -> Value:
    value = low.quant_input(layer.name, _one(layer, args), "ZeroPadding2D")
    (t, b), (left, r) = layer.padding
    p = value.pad
    h, w, c = _hwc(layer.name, value.shape)
    return Quant(value.tensor, value.shape, (p[0] + t, p[1] + b, p[2] + left, p[3] + r))


def _conv_common(layer: Any, x: Quant) -> tuple[tuple[int, int, int], tuple[int, int],
                                                  tuple[int, int, int, int], tuple[int, int]]:
    if tuple(layer.dilation_rate) != (1, 1):
        raise StqError(f"layer '{layer.name}': dilation_rate {layer.dilation_rate} is not "
                       "supported (only 1)")
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise StqError(f"layer '{layer.name}': data_format must be channels_last")
    h, w, c = _hwc(layer.name, x.shape)
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    zp = x.pad
    hp, wp = h + zp[0] + zp[1], w + zp[2] + zp[3]
    oh, ow, pads = out_size(layer.name, hp, wp, kh, kw, sh, sw, layer.padding)
    total = (pads[0] + zp[0], pads[1] + zp[1], pads[2] + zp[2], pads[3] + zp[3])
    return (h, w, c), (oh, ow), total, (kh, kw)


def _bias(layer: Any, channels: int) -> np.ndarray:
    if not getattr(layer, "use_bias", False) or layer.bias is None:
        return np.zeros(channels)
    bias = layer.bias.numpy()
    bq = getattr(layer, "bias_quantizer_internal", None)
    if bq is not None:
        import tensorflow as tf

        bias = np.asarray(bq(tf.constant(bias, dtype=tf.float32)))
    return np.asarray(bias, dtype=np.float64)


@handles("QConv2D", "Conv2D")
def conv2d(low: Lowering, layer: Any, args: list[Value]) -> Value:
    x = low.quant_input(layer.name, _one(layer, args), type(layer).__name__)
    if getattr(layer, "groups", 1) != 1:
        raise StqError(f"layer '{layer.name}': grouped convolution is not supported")
    (h, w, c), (oh, ow), pads, (kh, kw) = _conv_common(layer, x)
    kernel = layer.kernel.numpy()
    qw = quantize_kernel(layer.name, getattr(layer, "kernel_quantizer_internal", None), kernel)
    cout = kernel.shape[-1]
    weights = np.transpose(qw.ints, (3, 0, 1, 2))  # OHWI
    tin = low.tensors[x.tensor]
    bounds = _bounds(weights.reshape(cout, -1), tin.qmin, tin.qmax)
    _check_acc(layer.name, bounds)
    node = Node(layer.name, "conv2d", [x.tensor], "", {
        "weight_kind": qw.kind, "in_shape": [h, w, c], "kernel": [kh, kw],
        "stride": list(layer.strides), "pad": list(pads), "out_channels": cout},
        {"weights": weights.astype(np.int8)})
    p = Pending(node, (oh, ow, cout), [qw.scale * tin.scale], _bias(layer, cout), [bounds])
    return _activation(low, layer, p, layer.activation)


@handles("QDepthwiseConv2D", "DepthwiseConv2D")
def depthwise(low: Lowering, layer: Any, args: list[Value]) -> Value:
    x = low.quant_input(layer.name, _one(layer, args), type(layer).__name__)
    if int(layer.depth_multiplier) != 1:
        raise StqError(f"layer '{layer.name}': depth_multiplier {layer.depth_multiplier} is not "
                       "supported (only 1)")
    (h, w, c), (oh, ow), pads, (kh, kw) = _conv_common(layer, x)
    kernel = layer.depthwise_kernel.numpy()  # (kh, kw, c, 1)
    quantizer = getattr(layer, "depthwise_quantizer_internal", None)
    qw = quantize_kernel(layer.name, quantizer, kernel)
    weights = qw.ints[:, :, :, 0]  # (kh, kw, c)
    scale = np.broadcast_to(qw.scale, (c,)).astype(np.float64)
    tin = low.tensors[x.tensor]
    bounds = _bounds(np.transpose(weights, (2, 0, 1)).reshape(c, -1), tin.qmin, tin.qmax)
    _check_acc(layer.name, bounds)
    node = Node(layer.name, "depthwise_conv2d", [x.tensor], "", {
        "weight_kind": qw.kind, "in_shape": [h, w, c], "kernel": [kh, kw],
        "stride": list(layer.strides), "pad": list(pads), "out_channels": c},
        {"weights": weights.astype(np.int8)})
    p = Pending(node, (oh, ow, c), [scale * tin.scale], _bias(layer, c), [bounds])
    return _activation(low, layer, p, layer.activation)


@handles("QDense", "Dense")
def dense(low: Lowering, layer: Any, args: list[Value]) -> Value:
    x = low.quant_input(layer.name, _one(layer, args), type(layer).__name__)
    if len(x.shape) != 1:
        raise StqError(f"layer '{layer.name}': Dense on a {len(x.shape)}-D input {x.shape} is "
                       "not supported; add Flatten before it")
    kernel = layer.kernel.numpy()  # (cin, cout)
    qw = quantize_kernel(layer.name, getattr(layer, "kernel_quantizer_internal", None), kernel)
    cout = kernel.shape[-1]
    weights = np.ascontiguousarray(qw.ints.T)  # (cout, cin)
    tin = low.tensors[x.tensor]
    bounds = _bounds(weights, tin.qmin, tin.qmax)
    _check_acc(layer.name, bounds)
    node = Node(layer.name, "dense", [x.tensor], "", {
        "weight_kind": qw.kind, "in_features": int(kernel.shape[0]), "out_channels": cout},
        {"weights": weights.astype(np.int8)})
    p = Pending(node, (cout,), [qw.scale * tin.scale], _bias(layer, cout), [bounds])
    return _activation(low, layer, p, layer.activation)


@handles("BatchNormalization", "QBatchNormalization")
def batchnorm(low: Lowering, layer: Any, args: list[Value]) -> Value:
    value = _one(layer, args)
    if not isinstance(value, Pending):
        raise StqError(f"layer '{layer.name}' (batch normalization) does not follow a conv, "
                       "dense or pooling layer, so it cannot be folded")
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
    if axis not in (-1, len(layer.input_shape) - 1):
        raise StqError(f"layer '{layer.name}': batch normalization over axis {axis} is not "
                       "supported (only the channel axis)")
    import tensorflow as tf

    def param(attr: str, quant_attr: str, default: float) -> np.ndarray:
        var = getattr(layer, attr, None)
        if var is None:
            return np.full(value.channels, default)
        arr = var.numpy()
        q = getattr(layer, quant_attr, None)
        if q is not None and getattr(layer, quant_attr.replace("_internal", ""), None):
            arr = np.asarray(q(tf.constant(arr, dtype=tf.float32)))
        return np.asarray(arr, dtype=np.float64)

    gamma = param("gamma", "gamma_quantizer_internal", 1.0)
    beta = param("beta", "beta_quantizer_internal", 0.0)
    mean = param("moving_mean", "mean_quantizer_internal", 0.0)
    var = param("moving_variance", "variance_quantizer_internal", 1.0)
    # Same float32 arithmetic order as Keras' inference batch norm: x * inv + (beta - mean*inv).
    inv = (np.float32(1.0) / np.sqrt(var.astype(np.float32) + np.float32(layer.epsilon))
           ).astype(np.float64) * gamma
    if any(op == "maxpool" for op, _ in value.post) and np.any(inv <= 0):
        raise StqError(f"layer '{layer.name}': batch normalization with a negative scale after "
                       "max pooling cannot be folded; move the pooling after the activation")
    value.a = [a * inv for a in value.a]
    value.b = value.b * inv + (beta - mean * inv)
    return value


@handles("MaxPooling2D", "QMaxPooling2D")
def maxpool(low: Lowering, layer: Any, args: list[Value]) -> Value:
    value = _one(layer, args)
    attrs = {"layer": layer.name, "pool": tuple(layer.pool_size), "strides": tuple(layer.strides),
             "padding": layer.padding}
    if isinstance(value, Pending):
        # Quantization is monotonic, so max-pooling after requantization gives the same values.
        value.post.append(("maxpool", attrs))
        h, w, c = _hwc(layer.name, value.shape)
        oh, ow, _ = out_size(layer.name, h, w, *attrs["pool"], *attrs["strides"], layer.padding)
        value.shape = (oh, ow, c)
        return value
    x = low.quant_input(layer.name, value, "MaxPooling2D")
    if any(x.pad):
        raise StqError(f"layer '{layer.name}': ZeroPadding2D before max pooling is not supported")
    return low.maxpool(layer.name, x, attrs)


@handles("AveragePooling2D", "GlobalAveragePooling2D", "QAveragePooling2D",
         "QGlobalAveragePooling2D")
def avgpool(low: Lowering, layer: Any, args: list[Value]) -> Value:
    cls = type(layer).__name__
    x = low.quant_input(layer.name, _one(layer, args), cls)
    h, w, c = _hwc(layer.name, x.shape)
    if "Global" in cls:
        (ph, pw), (sh, sw), padding = (h, w), (h, w), "valid"
        keep = bool(getattr(layer, "keepdims", False))
    else:
        (ph, pw), (sh, sw), padding = tuple(layer.pool_size), tuple(layer.strides), layer.padding
        keep = True
    if padding != "valid":
        raise StqError(f"layer '{layer.name}': average pooling with padding '{padding}' divides "
                       "by a position-dependent count and is not supported; use 'valid'")
    if type(layer).__name__.startswith("Q"):
        raise StqError(f"layer '{layer.name}': {cls} (quantized average pooling) is not "
                       "supported; use the Keras layer followed by QActivation")
    oh, ow, _ = out_size(layer.name, h, w, ph, pw, sh, sw, "valid")
    tin = low.tensors[x.tensor]
    n = ph * pw
    bound = np.full(c, float(n * max(abs(tin.qmin), abs(tin.qmax))))
    node = Node(layer.name, "avgpool", [x.tensor], "", {
        "in_shape": [h, w, c], "pool": [ph, pw], "stride": [sh, sw], "pad": [0, 0, 0, 0],
        "out_channels": c})
    shape = (oh, ow, c) if keep else (c,)
    return Pending(node, shape, [np.full(c, tin.scale / n)], np.zeros(c), [bound])


@handles("Add")
def add(low: Lowering, layer: Any, args: list[Value]) -> Value:
    if len(args) != 2:
        raise StqError(f"layer '{layer.name}' (Add) has {len(args)} inputs; only 2 are supported")
    pend = [v for v in args if isinstance(v, Pending)]
    if len(pend) == 2:
        raise StqError(f"layer '{layer.name}' (Add) sums two unquantized branches "
                       f"('{args[0].node.name}', '{args[1].node.name}'); add a QActivation to "
                       "one of them")
    if len(pend) == 1:
        p = pend[0]
        other = args[1] if args[0] is p else args[0]
        r = low.quant_input(layer.name, other, "Add")
        fusable = (p.node.op in ("conv2d", "depthwise_conv2d", "dense") and not p.post
                   and not p.relu and len(p.a) == 1)
        if not fusable:
            raise StqError(f"layer '{layer.name}' (Add) cannot fuse into '{p.node.name}'; "
                           "add a QActivation before the Add")
        if tuple(r.shape) != tuple(p.shape):
            raise StqError(f"layer '{layer.name}' (Add): shapes {p.shape} and {r.shape} differ")
        t = low.tensors[r.tensor]
        p.node.inputs.append(r.tensor)
        p.a.append(np.full(p.channels, t.scale))
        p.bounds.append(np.full(p.channels, float(max(abs(t.qmin), abs(t.qmax)))))
        return p
    xs = [low.quant_input(layer.name, v, "Add") for v in args]
    if tuple(xs[0].shape) != tuple(xs[1].shape):
        raise StqError(f"layer '{layer.name}' (Add): shapes {xs[0].shape} and {xs[1].shape} "
                       "differ")
    ts = [low.tensors[x.tensor] for x in xs]
    c = xs[0].shape[-1]
    node = Node(layer.name, "add", [x.tensor for x in xs], "", {"out_channels": c})
    return Pending(node, xs[0].shape, [np.full(c, t.scale) for t in ts], np.zeros(c),
                   [np.full(c, float(max(abs(t.qmin), abs(t.qmax)))) for t in ts])

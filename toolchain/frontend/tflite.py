"""TFLite frontend: read a full-integer int8 ``.tflite`` flatbuffer (TensorFlow's shipped
schema) and lower it into the integer IR with ``tfl_*`` ops (docs/semantics.md, TFLite section).

Batch 1 is dropped from every shape (NHWC -> HWC). RESHAPE and SQUEEZE become aliases (the IR is
row-major either way), QUANTIZE float -> int8 on the model input and DEQUANTIZE on its output
are recorded in the input format and output info, and every multiplier and shift is computed
here (toolchain/ir/tflite_params.py). Anything else is refused with the op's index and name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import StqError
from toolchain.ir.graph import Graph, Node, Tensor

SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D",
             "MAX_POOL_2D", "MEAN", "PAD", "PADV2", "RESHAPE", "SQUEEZE", "SOFTMAX",
             "QUANTIZE", "DEQUANTIZE", "RELU", "RELU6")


def _schema() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


@dataclass
class TflTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # "int8", "float32", ...
    scale: np.ndarray | None  # float32 per tensor or per channel
    zero_point: np.ndarray | None
    qdim: int
    data: np.ndarray | None

    @property
    def s(self) -> float:
        assert self.scale is not None
        return float(self.scale[0])

    @property
    def zp(self) -> int:
        return 0 if self.zero_point is None else int(self.zero_point[0])


@dataclass
class TflOp:
    index: int
    name: str
    inputs: list[int]
    outputs: list[int]
    options: Any


@dataclass
class TflModel:
    tensors: list[TflTensor]
    ops: list[TflOp]
    inputs: list[int]
    outputs: list[int]


def read_tflite(path: Path) -> TflModel:
    """Parse the flatbuffer into plain records (no interpretation yet)."""
    schema = _schema()
    try:
        buf = path.read_bytes()
        if buf[4:8] != b"TFL3":
            raise ValueError("no TFL3 file identifier")
        m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    except (OSError, ValueError, IndexError, TypeError) as exc:  # malformed flatbuffer
        raise StqError(f"cannot read TFLite model {path}: {exc}") from None
    if len(m.subgraphs) != 1:
        raise StqError(f"{path}: {len(m.subgraphs)} subgraphs; stq converts single-subgraph "
                       "models")
    sg = m.subgraphs[0]
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    opnames = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    tensors = []
    for i, t in enumerate(sg.tensors):
        dtype = types.get(t.type, str(t.type))
        q = t.quantization
        has_q = q is not None and q.scale is not None and len(q.scale) > 0
        data = None
        b = m.buffers[t.buffer] if t.buffer < len(m.buffers) else None
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        if b is not None and b.data is not None and len(b.data) > 0:
            raw = np.asarray(b.data, dtype=np.uint8).tobytes()
            data = np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        tensors.append(TflTensor(
            i, name, shape, dtype,
            np.asarray(q.scale, dtype=np.float32) if has_q else None,
            np.asarray(q.zeroPoint, dtype=np.int64) if has_q else None,
            int(q.quantizedDimension) if has_q else 0, data))
    ops = []
    for i, op in enumerate(sg.operators):
        oc = m.operatorCodes[op.opcodeIndex]
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        name = opnames.get(code, f"builtin {code}")
        if code == schema.BuiltinOperator.CUSTOM:
            name = f"CUSTOM {oc.customCode.decode() if oc.customCode else ''}".strip()
        ops.append(TflOp(i, name, [int(x) for x in op.inputs], [int(x) for x in op.outputs],
                         op.builtinOptions))
    return TflModel(tensors, ops, [int(i) for i in sg.inputs], [int(i) for i in sg.outputs])


@dataclass
class Builder:
    """The IR under construction: TFLite tensor index -> IR tensor name (aliases included)."""

    model: TflModel
    path: Path
    tensors: dict[str, Tensor] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)

    def T(self, i: int) -> TflTensor:
        return self.model.tensors[i]

    def fail(self, op: TflOp, what: str) -> StqError:
        return StqError(f"{self.path.name}: op {op.index} ({op.name}): {what}")

    def value(self, op: TflOp, i: int) -> str:
        if i not in self.names:
            raise self.fail(op, f"input tensor {i} '{self.T(i).name}' is neither the model "
                            "input nor computed by an earlier op")
        return self.names[i]

    def ir_tensor(self, i: int, clamp: tuple[int, int] = (-128, 127)) -> str:
        t = self.T(i)
        name = f"t{i}"
        shape = t.shape[1:] if len(t.shape) > 1 else t.shape
        self.tensors[name] = Tensor(name, shape or (1,), "int8", t.s, clamp[0], clamp[1], t.zp)
        self.names[i] = name
        return name

    def add(self, op: TflOp, kind: str, inputs: list[str], attrs: dict,
            arrays: dict | None = None, clamp: tuple[int, int] = (-128, 127)) -> None:
        out = self.ir_tensor(op.outputs[0], clamp)
        self.nodes.append(Node(f"op{op.index}_{op.name.lower()}", kind, inputs, out,
                               attrs, arrays or {}))


def _check_types(b: Builder) -> None:
    """Float and int16 models get one clear line before any op is lowered."""
    m = b.model
    for op in m.ops:
        for i in op.inputs + op.outputs:
            if i < 0:
                continue
            t = b.T(i)
            edge = op.name in ("QUANTIZE", "DEQUANTIZE")
            if t.dtype == "int16":
                raise StqError(f"{b.path.name}: op {op.index} ({op.name}) has int16 tensor "
                               f"'{t.name}': 16x8 (int16 activation) models are not supported; "
                               "convert with full int8 quantization (TFLITE_BUILTINS_INT8)")
            if t.dtype == "float32" and not edge:
                raise StqError(f"{b.path.name}: op {op.index} ({op.name}) has float32 tensor "
                               f"'{t.name}': this is a float model; stq converts full-integer "
                               "int8 models (TFLiteConverter with a representative dataset and "
                               "supported_ops TFLITE_BUILTINS_INT8)")
            if t.dtype not in ("int8", "int32", "float32") and not (
                    op.name in ("RESHAPE", "MEAN", "PAD", "PADV2") and i in op.inputs[1:]):
                raise StqError(f"{b.path.name}: op {op.index} ({op.name}) has {t.dtype} tensor "
                               f"'{t.name}'; stq converts int8 models")


def convert_tflite(path: str | os.PathLike, name: str | None = None) -> Graph:
    """Lower a full-integer int8 .tflite model into the integer IR."""
    from toolchain.frontend.tflite_lower import LOWER

    p = Path(path)
    if not p.is_file():
        raise StqError(f"model file {p} does not exist")
    m = read_tflite(p)
    b = Builder(m, p)
    if len(m.inputs) != 1 or len(m.outputs) != 1:
        raise StqError(f"{p.name}: {len(m.inputs)} inputs and {len(m.outputs)} outputs; stq "
                       "converts models with one input and one output")
    for op in m.ops:
        if op.name not in SUPPORTED:
            raise StqError(f"{p.name}: op {op.index} ({op.name}) is not supported; supported "
                           f"ops: {', '.join(SUPPORTED)}")
    _check_types(b)
    inp = b.T(m.inputs[0])
    if inp.shape and inp.shape[0] != 1:
        raise StqError(f"{p.name}: input '{inp.name}' has batch {inp.shape[0]}; convert with "
                       "batch size 1")
    input_format: dict = {"dtype": "int8", "qmin": -128, "qmax": 127, "float_input": False}
    output_info: dict = {"activation": "none", "dequantize": False}
    input_name = None
    if inp.dtype == "int8":
        input_name = b.ir_tensor(inp.index)
        input_format.update(step=inp.s, zero_point=inp.zp)
    for op in m.ops:
        if op.name == "QUANTIZE" and b.T(op.inputs[0]).dtype == "float32":
            if op.inputs[0] != m.inputs[0]:
                raise b.fail(op, "float -> int8 QUANTIZE is supported only on the model input")
            q = b.T(op.outputs[0])
            if q.dtype != "int8":
                raise b.fail(op, f"quantizes to {q.dtype}; stq converts int8 models")
            input_name = b.ir_tensor(q.index)
            input_format.update(step=q.s, zero_point=q.zp, float_input=True)
            continue
        if op.name == "DEQUANTIZE":
            if op.outputs[0] != m.outputs[0]:
                raise b.fail(op, "DEQUANTIZE is supported only on the model output")
            b.names[op.outputs[0]] = b.value(op, op.inputs[0])
            output_info["dequantize"] = True
            continue
        LOWER[op.name](b, op)
        if op.name == "SOFTMAX":
            output_info["activation"] = "softmax"
    if not b.nodes:
        raise StqError(f"{p.name}: the model has no operator stq computes")
    if input_name is None:
        raise StqError(f"{p.name}: the model input '{inp.name}' is {inp.dtype} and not "
                       "quantized to int8 by a QUANTIZE op")
    out = b.value(m.ops[-1], m.outputs[0])
    if b.nodes[-1].output != out:
        output_info["activation"] = "none"
    return Graph(name or p.stem, b.tensors, b.nodes, input_name, out, input_format, output_info,
                 {"packing": "2bit", "frontend": "tflite"})

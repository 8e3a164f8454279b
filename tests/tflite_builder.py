"""Build single-op int8 .tflite flatbuffers in memory and run them on TFLM's reference kernels.

Only what the TFLM oracle test needs: int8 activations (per-tensor scale / zero point), int8
weights (per-channel symmetric), int32 biases, and the ops CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED, MAX_POOL_2D, AVERAGE_POOL_2D, ADD, SUB, MUL, PRELU, CONCATENATION, PAD, PADV2,
TRANSPOSE_CONV and RESIZE_NEAREST_NEIGHBOR, and the one-input activations SOFTMAX, LOG_SOFTMAX,
LOGISTIC, TANH, HARD_SWISH and LEAKY_RELU. Layout is TFLite's NHWC.
"""
from __future__ import annotations

import flatbuffers
import numpy as np
from tflite_micro.python.tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

SAME, VALID = fb.Padding.SAME, fb.Padding.VALID
ACT = {
    "none": fb.ActivationFunctionType.NONE,
    "relu": fb.ActivationFunctionType.RELU,
    "relu_n1_to_1": fb.ActivationFunctionType.RELU_N1_TO_1,
    "relu6": fb.ActivationFunctionType.RELU6,
}
_TYPES = {np.dtype(np.int8): fb.TensorType.INT8, np.dtype(np.int32): fb.TensorType.INT32,
          np.dtype(np.float32): fb.TensorType.FLOAT32}


class _AlignedBufferT(fb.BufferT):
    """A buffer whose data starts on a 16-byte boundary (TFLM reads int32 biases in place)."""

    def Pack(self, builder):
        data = None
        if self.data is not None:
            payload = bytes(self.data)
            builder.StartVector(1, len(payload), 16)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            data = builder.EndVector()
        fb.BufferStart(builder)
        if data is not None:
            fb.BufferAddData(builder, data)
        return fb.BufferEnd(builder)


class ModelBuilder:
    """One subgraph, built imperatively: add tensors, add ops, then build() to bytes."""

    def __init__(self):
        self.tensors: list[fb.TensorT] = []
        self.buffers: list[fb.BufferT] = [fb.BufferT()]  # buffer 0: empty, by convention
        self.opcodes: dict[int, int] = {}
        self.operators: list[fb.OperatorT] = []

    def tensor(self, shape, dtype, scale=None, zero_point=None, data=None,
               quantized_dimension=0, name=None) -> int:
        """Add a tensor; scale / zero_point: scalars or per-channel lists. Returns its index."""
        t = fb.TensorT()
        t.shape = [int(d) for d in shape]
        t.type = _TYPES[np.dtype(dtype)]
        t.name = name or f"t{len(self.tensors)}"
        t.buffer = 0
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data, dtype=dtype))
            assert tuple(arr.shape) == tuple(t.shape), (arr.shape, t.shape)
            buf = _AlignedBufferT()
            buf.data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
            t.buffer = len(self.buffers)
            self.buffers.append(buf)
        if scale is not None:
            q = fb.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scale)]
            zps = np.atleast_1d(0 if zero_point is None else zero_point)
            if zps.size == 1 and len(q.scale) > 1:
                zps = np.repeat(zps, len(q.scale))
            q.zeroPoint = [int(z) for z in zps]
            q.quantizedDimension = int(quantized_dimension)
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, builtin: int, inputs, outputs, options_type=0, options=None) -> None:
        if builtin not in self.opcodes:
            self.opcodes[builtin] = len(self.opcodes)
        o = fb.OperatorT()
        o.opcodeIndex = self.opcodes[builtin]
        o.inputs = [int(i) for i in inputs]
        o.outputs = [int(i) for i in outputs]
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        self.operators.append(o)

    def build(self, inputs, outputs) -> bytes:
        sg = fb.SubGraphT()
        sg.tensors, sg.operators = self.tensors, self.operators
        sg.inputs, sg.outputs = list(inputs), list(outputs)
        sg.name = "main"
        codes = []
        for builtin in sorted(self.opcodes, key=self.opcodes.get):
            c = fb.OperatorCodeT()
            c.builtinCode = builtin
            c.deprecatedBuiltinCode = min(builtin, 127)
            c.version = 1
            codes.append(c)
        m = fb.ModelT()
        m.version = 3
        m.operatorCodes = codes
        m.subgraphs = [sg]
        m.buffers = self.buffers
        m.description = "torch2mcu test model"
        b = flatbuffers.Builder(1 << 16)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


# ---------------------------------------------------------------------------------------------
# Single-op models. Activations are int8 NHWC with per-tensor (scale, zero point); `act` is one
# of ACT's keys (the fused activation; TFLM derives the clamp bounds from the output quant).
# ---------------------------------------------------------------------------------------------

def _pad_input(mb: ModelBuilder, x: int, in_shape, pads, s_in: float, z_in: int):
    """Explicit PAD (int8 PAD fills with the zero point); pads = (top, bottom, left, right)."""
    if not any(pads):
        return x, tuple(in_shape)
    n, h, w, c = in_shape
    top, bottom, left, right = pads
    padded = (n, h + top + bottom, w + left + right, c)
    paddings = mb.tensor((4, 2), np.int32, data=[[0, 0], [top, bottom], [left, right], [0, 0]])
    y = mb.tensor(padded, np.int8, s_in, z_in)
    mb.op(fb.BuiltinOperator.PAD, [x, paddings], [y], fb.BuiltinOptions.PadOptions,
          fb.PadOptionsT())
    return y, padded


def conv2d_model(in_shape, q_in, weight, w_scales, bias, q_out, out_shape, stride, padding,
                 act="none", pads=(0, 0, 0, 0), depthwise=False, depth_multiplier=1,
                 dilation=(1, 1)) -> bytes:
    """CONV_2D (weight OHWI, per-channel axis 0) or DEPTHWISE_CONV_2D (weight 1HWO, axis 3).

    pads: an explicit PAD before the conv (then `padding` is normally VALID).
    dilation: (h, w) dilation factors.
    """
    mb = ModelBuilder()
    x = mb.tensor(in_shape, np.int8, *q_in, name="input")
    xin, _ = _pad_input(mb, x, in_shape, pads, *q_in)
    axis = 3 if depthwise else 0
    w = mb.tensor(weight.shape, np.int8, w_scales, 0, data=weight, quantized_dimension=axis,
                  name="weight")
    ins = [xin, w]
    if bias is not None:
        s_b = np.float64(np.float32(q_in[0])) * np.asarray(w_scales, np.float32).astype(np.float64)
        ins.append(mb.tensor(bias.shape, np.int32, s_b, 0, data=bias, name="bias"))
    elif not depthwise:
        ins.append(-1)  # optional input absent
    # DEPTHWISE_CONV_2D without bias: TFLM crashes on a -1 bias input, so the op gets 2 inputs.
    y = mb.tensor(out_shape, np.int8, *q_out, name="output")
    if depthwise:
        o = fb.DepthwiseConv2DOptionsT()
        o.depthMultiplier = depth_multiplier
        opt_type = fb.BuiltinOptions.DepthwiseConv2DOptions
        code = fb.BuiltinOperator.DEPTHWISE_CONV_2D
    else:
        o = fb.Conv2DOptionsT()
        opt_type, code = fb.BuiltinOptions.Conv2DOptions, fb.BuiltinOperator.CONV_2D
    o.padding = padding
    o.strideH, o.strideW = stride
    o.dilationHFactor, o.dilationWFactor = (int(d) for d in dilation)
    o.fusedActivationFunction = ACT[act]
    mb.op(code, ins, [y], opt_type, o)
    return mb.build([x], [y])


def fully_connected_model(batch, q_in, weight, w_scales, bias, q_out, act="none") -> bytes:
    """FULLY_CONNECTED: input (batch, in), weight (out, in), scales per-tensor or per-channel."""
    out_f, in_f = weight.shape
    mb = ModelBuilder()
    x = mb.tensor((batch, in_f), np.int8, *q_in, name="input")
    w = mb.tensor(weight.shape, np.int8, w_scales, 0, data=weight, quantized_dimension=0,
                  name="weight")
    ins = [x, w]
    if bias is not None:
        s_b = np.float64(np.float32(q_in[0])) * np.asarray(w_scales, np.float32).astype(np.float64)
        ins.append(mb.tensor(bias.shape, np.int32, s_b, 0, data=bias, name="bias"))
    else:
        ins.append(-1)
    y = mb.tensor((batch, out_f), np.int8, *q_out, name="output")
    o = fb.FullyConnectedOptionsT()
    o.fusedActivationFunction = ACT[act]
    mb.op(fb.BuiltinOperator.FULLY_CONNECTED, ins, [y], fb.BuiltinOptions.FullyConnectedOptions, o)
    return mb.build([x], [y])


def pool_model(kind, in_shape, q, kernel, stride, padding, out_shape, act="none") -> bytes:
    """MAX_POOL_2D / AVERAGE_POOL_2D ('max' / 'avg'); input and output share q."""
    mb = ModelBuilder()
    x = mb.tensor(in_shape, np.int8, *q, name="input")
    y = mb.tensor(out_shape, np.int8, *q, name="output")
    o = fb.Pool2DOptionsT()
    o.padding = padding
    o.strideH, o.strideW = stride
    o.filterHeight, o.filterWidth = kernel
    o.fusedActivationFunction = ACT[act]
    code = fb.BuiltinOperator.MAX_POOL_2D if kind == "max" else fb.BuiltinOperator.AVERAGE_POOL_2D
    mb.op(code, [x], [y], fb.BuiltinOptions.Pool2DOptions, o)
    return mb.build([x], [y])


def add_model(shape, q1, q2, q_out, act="none") -> bytes:
    """ADD of two same-shape int8 tensors."""
    mb = ModelBuilder()
    a = mb.tensor(shape, np.int8, *q1, name="a")
    b = mb.tensor(shape, np.int8, *q2, name="b")
    y = mb.tensor(shape, np.int8, *q_out, name="output")
    o = fb.AddOptionsT()
    o.fusedActivationFunction = ACT[act]
    mb.op(fb.BuiltinOperator.ADD, [a, b], [y], fb.BuiltinOptions.AddOptions, o)
    return mb.build([a, b], [y])


def binary_model(kind, shape1, shape2, out_shape, q1, q2, q_out, act="none") -> bytes:
    """MUL or SUB ('mul' / 'sub') of two int8 tensors, broadcasting as numpy does."""
    mb = ModelBuilder()
    a = mb.tensor(shape1, np.int8, *q1, name="a")
    b = mb.tensor(shape2, np.int8, *q2, name="b")
    y = mb.tensor(out_shape, np.int8, *q_out, name="output")
    if kind == "mul":
        o, t, code = fb.MulOptionsT(), fb.BuiltinOptions.MulOptions, fb.BuiltinOperator.MUL
    else:
        o, t, code = fb.SubOptionsT(), fb.BuiltinOptions.SubOptions, fb.BuiltinOperator.SUB
    o.fusedActivationFunction = ACT[act]
    mb.op(code, [a, b], [y], t, o)
    return mb.build([a, b], [y])


def prelu_model(shape, q_in, alpha, q_alpha, q_out) -> bytes:
    """PRELU with a constant int8 alpha tensor (broadcast against the input)."""
    mb = ModelBuilder()
    x = mb.tensor(shape, np.int8, *q_in, name="input")
    a = mb.tensor(alpha.shape, np.int8, *q_alpha, data=alpha, name="alpha")
    y = mb.tensor(shape, np.int8, *q_out, name="output")
    mb.op(fb.BuiltinOperator.PRELU, [x, a], [y])
    return mb.build([x], [y])


def concat_model(shapes, axis, q, out_shape) -> bytes:
    """CONCATENATION of int8 tensors sharing one quantization q."""
    mb = ModelBuilder()
    xs = [mb.tensor(s, np.int8, *q, name=f"x{i}") for i, s in enumerate(shapes)]
    y = mb.tensor(out_shape, np.int8, *q, name="output")
    o = fb.ConcatenationOptionsT()
    o.axis = int(axis)
    mb.op(fb.BuiltinOperator.CONCATENATION, xs, [y], fb.BuiltinOptions.ConcatenationOptions, o)
    return mb.build(xs, [y])


def _unary_options(kind: str, alpha: float, beta: float):
    """(builtin operator, options type, options) of a one-input activation."""
    if kind == "softmax":
        o = fb.SoftmaxOptionsT()
        o.beta = beta
        return fb.BuiltinOperator.SOFTMAX, fb.BuiltinOptions.SoftmaxOptions, o
    if kind == "log_softmax":
        return (fb.BuiltinOperator.LOG_SOFTMAX, fb.BuiltinOptions.LogSoftmaxOptions,
                fb.LogSoftmaxOptionsT())
    if kind == "leaky_relu":
        o = fb.LeakyReluOptionsT()
        o.alpha = alpha
        return fb.BuiltinOperator.LEAKY_RELU, fb.BuiltinOptions.LeakyReluOptions, o
    if kind == "hard_swish":
        return (fb.BuiltinOperator.HARD_SWISH, fb.BuiltinOptions.HardSwishOptions,
                fb.HardSwishOptionsT())
    code = {"logistic": fb.BuiltinOperator.LOGISTIC, "tanh": fb.BuiltinOperator.TANH}[kind]
    return code, 0, None


def unary_model(kind, shape, q_in, q_out, alpha: float = 0.0, beta: float = 1.0) -> bytes:
    """One int8 activation of one input, same shape in and out: softmax / log_softmax (over the
    last axis), logistic, tanh, hard_swish or leaky_relu (slope alpha)."""
    mb = ModelBuilder()
    x = mb.tensor(shape, np.int8, *q_in, name="input")
    y = mb.tensor(shape, np.int8, *q_out, name="output")
    code, opt_type, options = _unary_options(kind, alpha, beta)
    mb.op(code, [x], [y], opt_type, options)
    return mb.build([x], [y])


def run_tflm(model: bytes, inputs) -> np.ndarray:
    """Run a model on TFLM's reference kernels; returns output 0."""
    arena = (2 << 20) + 8 * sum(t.nbytes for t in inputs)  # generous: every tensor here is small
    interp = runtime.Interpreter.from_bytes(model, arena_size=arena)
    for i, t in enumerate(inputs):
        interp.set_input(np.ascontiguousarray(t), i)
    interp.invoke()
    return np.array(interp.get_output(0))


def transpose_conv_model(in_shape, q_in, weight, w_scales, bias, q_out, out_shape, stride,
                         padding, act="none") -> bytes:
    """TRANSPOSE_CONV: inputs (output_shape, weight OHWI per-channel axis 0, input[, bias]).
    TFLite derives the top / left crop from `padding` (SAME / VALID) and the output size."""
    mb = ModelBuilder()
    x = mb.tensor(in_shape, np.int8, *q_in, name="input")
    shape = mb.tensor((4,), np.int32, data=list(out_shape), name="output_shape")
    w = mb.tensor(weight.shape, np.int8, w_scales, 0, data=weight, quantized_dimension=0,
                  name="weight")
    ins = [shape, w, x]
    if bias is not None:  # a bias input is optional: without one the op has three inputs
        s_b = np.float64(np.float32(q_in[0])) * np.asarray(w_scales, np.float32).astype(np.float64)
        ins.append(mb.tensor(bias.shape, np.int32, s_b, 0, data=bias, name="bias"))
    y = mb.tensor(out_shape, np.int8, *q_out, name="output")
    o = fb.TransposeConvOptionsT()
    o.padding = padding
    o.strideH, o.strideW = stride
    o.fusedActivationFunction = ACT[act]
    mb.op(fb.BuiltinOperator.TRANSPOSE_CONV, ins, [y], fb.BuiltinOptions.TransposeConvOptions, o)
    return mb.build([x], [y])


def padv2_model(in_shape, q, pads, value_q) -> bytes:
    """PADV2 of an NHWC int8 tensor with an int8 constant (input and output share q);
    pads = ((top, bottom), (left, right))."""
    n, h, w, c = in_shape
    (top, bottom), (left, right) = pads
    mb = ModelBuilder()
    x = mb.tensor(in_shape, np.int8, *q, name="input")
    paddings = mb.tensor((4, 2), np.int32, data=[[0, 0], [top, bottom], [left, right], [0, 0]])
    value = mb.tensor((1,), np.int8, *q, data=[value_q], name="constant")
    y = mb.tensor((n, h + top + bottom, w + left + right, c), np.int8, *q, name="output")
    mb.op(fb.BuiltinOperator.PADV2, [x, paddings, value], [y], fb.BuiltinOptions.PadV2Options,
          fb.PadV2OptionsT())
    return mb.build([x], [y])


def resize_nearest_model(in_shape, q, out_hw, half_pixel_centers=False) -> bytes:
    """RESIZE_NEAREST_NEIGHBOR of an NHWC int8 tensor to out_hw (align_corners off)."""
    n, _, _, c = in_shape
    mb = ModelBuilder()
    x = mb.tensor(in_shape, np.int8, *q, name="input")
    size = mb.tensor((2,), np.int32, data=list(out_hw), name="size")
    y = mb.tensor((n, out_hw[0], out_hw[1], c), np.int8, *q, name="output")
    o = fb.ResizeNearestNeighborOptionsT()
    o.alignCorners, o.halfPixelCenters = False, half_pixel_centers
    mb.op(fb.BuiltinOperator.RESIZE_NEAREST_NEIGHBOR, [x, size], [y],
          fb.BuiltinOptions.ResizeNearestNeighborOptions, o)
    return mb.build([x], [y])

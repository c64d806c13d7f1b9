"""Tiny ONNX models the tests build at test time with the onnx package, so that no model
file is committed: each function writes one model to `path` (creating its folders)."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save(path, nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, path.parent.parent.name, inputs, outputs,
                              initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)


def tensor(name, elem_type, shape):
    return helper.make_tensor_value_info(name, elem_type, shape)


def identity(path, elem_type, shape):
    """OUTPUT0 = Identity(INPUT0)."""
    save(path, [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])],
         [tensor("INPUT0", elem_type, shape)], [tensor("OUTPUT0", elem_type, shape)])


def simple_string(path):
    """Triton's `simple_string` example: two string tensors of 16 integers each, in,
    OUTPUT0 = INPUT0 + INPUT1 and OUTPUT1 = INPUT0 - INPUT1 as strings, out."""
    shape = ["batch", 16]
    nodes = [
        helper.make_node("Cast", ["INPUT0"], ["a"], to=TensorProto.INT32),
        helper.make_node("Cast", ["INPUT1"], ["b"], to=TensorProto.INT32),
        helper.make_node("Add", ["a", "b"], ["sum"]),
        helper.make_node("Sub", ["a", "b"], ["difference"]),
        helper.make_node("Cast", ["sum"], ["OUTPUT0"], to=TensorProto.STRING),
        helper.make_node("Cast", ["difference"], ["OUTPUT1"], to=TensorProto.STRING),
    ]
    save(path, nodes,
         [tensor("INPUT0", TensorProto.STRING, shape), tensor("INPUT1", TensorProto.STRING, shape)],
         [tensor("OUTPUT0", TensorProto.STRING, shape), tensor("OUTPUT1", TensorProto.STRING, shape)])


def channel_sums(path):
    """One image of [1, 3, 8, 8] in (no batch dimension of its own), its three channel
    sums of [1, 3] out."""
    axes = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")
    save(path, [helper.make_node("ReduceSum", ["INPUT0", "axes"], ["OUTPUT0"], keepdims=0)],
         [tensor("INPUT0", TensorProto.FLOAT, [1, 3, 8, 8])],
         [tensor("OUTPUT0", TensorProto.FLOAT, [1, 3])], [axes])


def doubled_batch(path):
    """OUTPUT0 = 2 * INPUT0 on a tensor whose only dimension is the batch."""
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    save(path, [helper.make_node("Mul", ["INPUT0", "two"], ["OUTPUT0"])],
         [tensor("INPUT0", TensorProto.FLOAT, ["batch"])],
         [tensor("OUTPUT0", TensorProto.FLOAT, ["batch"])], [two])


# The preprocessing and classifier of the ensemble tests.
MEAN = np.array([120.0, 110.0, 100.0], dtype=np.float32)
WEIGHTS = np.arange(12, dtype=np.float32).reshape(3, 4) / 10.0 - 0.5


def preprocess(path):
    """Images of [batch, 8, 8, 3] UINT8 (channels last) in, [batch, 3, 8, 8] FP32 out:
    channels first, each channel less its mean, divided by 64."""
    mean = numpy_helper.from_array(MEAN.reshape(1, 3, 1, 1), "mean")
    scale = numpy_helper.from_array(np.array(64.0, dtype=np.float32), "scale")
    nodes = [
        helper.make_node("Cast", ["RAW"], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["pixels"], ["planar"], perm=[0, 3, 1, 2]),
        helper.make_node("Sub", ["planar", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "scale"], ["PREPROCESSED"]),
    ]
    save(path, nodes, [tensor("RAW", TensorProto.UINT8, ["batch", 8, 8, 3])],
         [tensor("PREPROCESSED", TensorProto.FLOAT, ["batch", 3, 8, 8])], [mean, scale])


def classifier(path):
    """[batch, 3, 8, 8] FP32 in, four logits per image out: the channel means times a
    fixed 3x4 matrix."""
    weights = numpy_helper.from_array(WEIGHTS, "weights")
    nodes = [
        # Opset 17's ReduceMean takes its axes as an attribute.
        helper.make_node("ReduceMean", ["input"], ["means"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["means", "weights"], ["logits"]),
    ]
    save(path, nodes, [tensor("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
         [tensor("logits", TensorProto.FLOAT, ["batch", 4])], [weights])


def expected_logits(images):
    """What preprocess then classifier give, computed with numpy."""
    planar = (images.astype(np.float32).transpose(0, 3, 1, 2) - MEAN.reshape(1, 3, 1, 1)) / 64.0
    return planar.mean(axis=(2, 3)) @ WEIGHTS

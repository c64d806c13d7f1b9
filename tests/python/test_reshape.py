"""Triton's `reshape`, with tritonclient over HTTP and gRPC: the shape clients send and
receive (`dims`) differs from the model's own, and the server reshapes between them. The
models are built at test time with the onnx package."""

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import onnx_models
from conftest import start_server, stop_server

# The model takes one image with its batch dimension, [1, 3, 8, 8], and does not batch;
# clients send [3, 8, 8] and get [3] back.
CHANNEL_SUMS_CONFIG = """
name: "channel_sums"
platform: "onnxruntime_onnx"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 3, 8, 8 ] reshape: { shape: [ 1, 3, 8, 8 ] } } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 3 ] reshape: { shape: [ 1, 3 ] } } ]
"""

# Triton's documented case: a batching model whose tensors are only the batch dimension,
# declared as dims [1] with an empty reshape.
DOUBLED_CONFIG = """
name: "doubled"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] reshape: { shape: [ ] } } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] reshape: { shape: [ ] } } ]
"""


@pytest.fixture(scope="module")
def reshape_server(tmp_path_factory):
    repository = tmp_path_factory.mktemp("reshape")
    onnx_models.channel_sums(repository / "channel_sums" / "1" / "model.onnx")
    (repository / "channel_sums" / "config.pbtxt").write_text(CHANNEL_SUMS_CONFIG)
    onnx_models.doubled_batch(repository / "doubled" / "1" / "model.onnx")
    (repository / "doubled" / "config.pbtxt").write_text(DOUBLED_CONFIG)
    server = start_server(repository)
    yield server
    stop_server(server)


def connect(server, protocol):
    if protocol == "grpc":
        return grpcclient, grpcclient.InferenceServerClient(server.grpc)
    return httpclient, httpclient.InferenceServerClient(server.http)


def infer(server, protocol, model, array):
    module, client = connect(server, protocol)
    tensor = module.InferInput("INPUT0", list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    return client.infer(model, [tensor]).as_numpy("OUTPUT0")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_model_of_another_shape_is_served_in_the_configured_shape(reshape_server, protocol):
    image = np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8) / 10
    sums = infer(reshape_server, protocol, "channel_sums", image)
    assert sums.shape == (3,)
    np.testing.assert_allclose(sums, image.sum(axis=(1, 2)), rtol=1e-5)
    _, client = connect(reshape_server, protocol)
    metadata = client.get_model_metadata("channel_sums")
    shape = list(metadata.inputs[0].shape) if protocol == "grpc" else metadata["inputs"][0]["shape"]
    assert shape == [3, 8, 8]
    # The model's own shape is not what clients send.
    with pytest.raises(InferenceServerException, match="unexpected shape for input 'INPUT0'"):
        infer(reshape_server, protocol, "channel_sums", image.reshape(1, 3, 8, 8))


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_batch_only_tensor_is_sent_with_a_dimension_of_one(reshape_server, protocol):
    values = np.array([[1.5], [-2.0], [4.0]], dtype=np.float32)
    doubled = infer(reshape_server, protocol, "doubled", values)
    assert doubled.shape == (3, 1)
    np.testing.assert_array_equal(doubled, values * 2)
    _, client = connect(reshape_server, protocol)
    config = client.get_model_config("doubled")
    if protocol == "grpc":
        assert list(config.config.input[0].reshape.shape) == []
        assert config.config.max_batch_size == 8
    else:
        assert config["input"][0]["reshape"] == {"shape": []}
        assert config["max_batch_size"] == 8

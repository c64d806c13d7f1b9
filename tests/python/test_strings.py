"""BYTES (TYPE_STRING) tensors to and from ONNX models, with tritonclient over HTTP (JSON
and binary) and gRPC: Triton's `simple_string` example (strings of integers added and
subtracted by the graph), an identity of arbitrary strings, batches of string requests
combined by the dynamic batcher, and the response cache keyed on strings. The models are
built at test time with the onnx package."""

import threading

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import onnx_models
from conftest import start_server, stop_server

WIRES = ["http-json", "http-binary", "grpc"]

SIMPLE_STRING_CONFIG = """
name: "simple_string"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  { name: "INPUT0" data_type: TYPE_STRING dims: [ 16 ] },
  { name: "INPUT1" data_type: TYPE_STRING dims: [ 16 ] }
]
output [
  { name: "OUTPUT0" data_type: TYPE_STRING dims: [ 16 ] },
  { name: "OUTPUT1" data_type: TYPE_STRING dims: [ 16 ] }
]
dynamic_batching { max_queue_delay_microseconds: 300000 preferred_batch_size: [ 2 ] }
response_cache { enable: true }
"""


@pytest.fixture(scope="module")
def string_server(tmp_path_factory):
    repository = tmp_path_factory.mktemp("strings")
    onnx_models.simple_string(repository / "simple_string" / "1" / "model.onnx")
    (repository / "simple_string" / "config.pbtxt").write_text(SIMPLE_STRING_CONFIG)
    # No config.pbtxt: completed from the graph, whose string tensors become TYPE_STRING.
    from onnx import TensorProto
    onnx_models.identity(repository / "identity_string" / "1" / "model.onnx",
                         TensorProto.STRING, ["batch", 3])
    server = start_server(repository)
    yield server
    stop_server(server)


def connect(server, wire):
    if wire == "grpc":
        return grpcclient, grpcclient.InferenceServerClient(server.grpc)
    return httpclient, httpclient.InferenceServerClient(server.http)


def infer(server, wire, model, arrays, outputs):
    """Sends `arrays` (input name to numpy array of objects) and returns the outputs."""
    module, client = connect(server, wire)
    inputs = []
    for name, array in arrays.items():
        tensor = module.InferInput(name, list(array.shape), "BYTES")
        if wire == "grpc":
            tensor.set_data_from_numpy(array)
        else:
            tensor.set_data_from_numpy(array, binary_data=wire == "http-binary")
        inputs.append(tensor)
    if wire == "grpc":
        requested = [module.InferRequestedOutput(name) for name in outputs]
    else:
        requested = [module.InferRequestedOutput(name, binary_data=wire == "http-binary")
                     for name in outputs]
    result = client.infer(model, inputs, outputs=requested)
    return {name: as_bytes(result.as_numpy(name)) for name in outputs}


def as_bytes(array):
    """BYTES elements as bytes: tritonclient gives JSON strings back as str."""
    return np.vectorize(lambda v: v.encode("utf-8") if isinstance(v, str) else v,
                        otypes=[np.object_])(array)


def numbers_as_strings(values):
    return np.array([[str(v).encode() for v in row] for row in values], dtype=np.object_)


@pytest.mark.parametrize("wire", WIRES)
def test_simple_string_adds_and_subtracts_strings_of_integers(string_server, wire):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.full((1, 16), 3, dtype=np.int32) - np.arange(16, dtype=np.int32)
    got = infer(string_server, wire, "simple_string",
                {"INPUT0": numbers_as_strings(a), "INPUT1": numbers_as_strings(b)},
                ["OUTPUT0", "OUTPUT1"])
    assert got["OUTPUT0"].shape == (1, 16)
    sums = [[int(v) for v in row] for row in got["OUTPUT0"]]
    differences = [[int(v) for v in row] for row in got["OUTPUT1"]]
    assert sums == (a + b).tolist()
    assert differences == (a - b).tolist()


@pytest.mark.parametrize("wire", WIRES)
def test_metadata_and_config_say_bytes(string_server, wire):
    _, client = connect(string_server, wire)
    metadata = client.get_model_metadata("identity_string")
    config = client.get_model_config("identity_string")
    if wire == "grpc":
        assert metadata.inputs[0].datatype == "BYTES"
        assert list(metadata.inputs[0].shape) == [-1, 3]
        assert config.config.input[0].data_type == 13  # TYPE_STRING
    else:
        assert metadata["inputs"][0]["datatype"] == "BYTES"
        assert metadata["outputs"][0]["shape"] == [-1, 3]
        assert config["input"][0]["data_type"] == "TYPE_STRING"


@pytest.mark.parametrize("wire", WIRES)
def test_strings_round_trip_unchanged(string_server, wire):
    strings = np.array([["", "héllo wörld", "a" * 1000], ["tab\tand\nnewline", "ß", "0"]],
                       dtype=np.object_)
    encoded = np.vectorize(lambda s: s.encode("utf-8"), otypes=[np.object_])(strings)
    got = infer(string_server, wire, "identity_string", {"INPUT0": encoded}, ["OUTPUT0"])
    assert got["OUTPUT0"].shape == (2, 3)
    assert got["OUTPUT0"].tolist() == encoded.tolist()


def test_concurrent_string_requests_are_batched_and_each_gets_its_own_rows(string_server):
    """Two requests inside the queue delay make one engine run (preferred batch size 2);
    each gets back its own rows."""
    client = httpclient.InferenceServerClient(string_server.http)

    def executions():
        stats = client.get_inference_statistics("simple_string")["model_stats"][0]
        return stats["execution_count"], stats["inference_count"]

    before = executions()
    results, errors = {}, []

    def one(i):
        try:
            a = np.full((1, 16), 1000 + i, dtype=np.int32)
            b = np.arange(16, dtype=np.int32).reshape(1, 16)
            got = infer(string_server, "http-binary", "simple_string",
                        {"INPUT0": numbers_as_strings(a), "INPUT1": numbers_as_strings(b)},
                        ["OUTPUT0"])
            results[i] = ([[int(v) for v in row] for row in got["OUTPUT0"]], (a + b).tolist())
        except Exception as error:  # reported below, with the others
            errors.append(error)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for got, want in results.values():
        assert got == want
    executed, inferred = executions()
    assert inferred - before[1] == 2
    assert executed - before[0] == 1, "the two requests shared one engine run"


def test_the_response_cache_tells_strings_apart(string_server):
    client = httpclient.InferenceServerClient(string_server.http)

    def hits():
        stats = client.get_inference_statistics("simple_string")["model_stats"][0]
        return stats["inference_stats"]["cache_hit"]["count"]

    b = numbers_as_strings(np.zeros((1, 16), dtype=np.int32))
    first = numbers_as_strings(np.full((1, 16), 7, dtype=np.int32))
    # The same integers written differently are different strings: a miss, and its own sum.
    second = np.array([[b"07"] * 16], dtype=np.object_)
    before = hits()
    sums = []
    for a in (first, second, first):
        got = infer(string_server, "http-binary", "simple_string", {"INPUT0": a, "INPUT1": b},
                    ["OUTPUT0"])
        sums.append(got["OUTPUT0"][0][0])
    assert sums == [b"7", b"7", b"7"]
    assert hits() - before == 1, "only the repeated request is a hit"


@pytest.mark.parametrize("wire", WIRES)
def test_bad_strings_are_refused_clearly(string_server, wire):
    not_a_number = np.array([[b"x"] * 16], dtype=np.object_)
    zero = numbers_as_strings(np.zeros((1, 16), dtype=np.int32))
    with pytest.raises(InferenceServerException):
        infer(string_server, wire, "simple_string", {"INPUT0": not_a_number, "INPUT1": zero},
              ["OUTPUT0"])
    module, client = connect(string_server, wire)
    numbers = module.InferInput("INPUT0", [1, 16], "INT32")
    numbers.set_data_from_numpy(np.zeros((1, 16), dtype=np.int32))
    strings = module.InferInput("INPUT1", [1, 16], "BYTES")
    strings.set_data_from_numpy(zero)
    with pytest.raises(InferenceServerException, match="data-type is 'INT32'.*expects 'BYTES'"):
        client.infer("simple_string", [numbers, strings])
    # Still serving.
    got = infer(string_server, wire, "simple_string", {"INPUT0": zero, "INPUT1": zero}, ["OUTPUT1"])
    assert got["OUTPUT1"].tolist() == [[b"0"] * 16]

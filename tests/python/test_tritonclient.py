"""Triton's own Python client, over HTTP and gRPC, against a real ferroserve server.

References are independent: the preprocessed input tensors and top-5 probabilities in
tests/data/images were computed with Pillow + onnxruntime in Python."""

import shutil

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import IMAGES, ROOT, start_server, stop_server

MODEL = "efficientnet-lite0"
IMAGE_MODEL = "efficientnet-lite0-image"
PROTOCOLS = ["http", "grpc"]


def client(server, protocol):
    if protocol == "http":
        return httpclient.InferenceServerClient(server.http)
    return grpcclient.InferenceServerClient(server.grpc)


def module(protocol):
    return httpclient if protocol == "http" else grpcclient


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def assert_reference(probabilities, reference):
    for entry in reference["top5"]:
        got = float(probabilities[entry["index"]])
        assert abs(got - entry["prob"]) < 0.01, (entry, got)
    top5 = set(np.argsort(-probabilities)[:5].tolist())
    assert top5 == {e["index"] for e in reference["top5"]}


def infer_tensor(protocol, c, batch, binary=True, outputs=None):
    m = module(protocol)
    tensor = m.InferInput("input", list(batch.shape), "FP32")
    if protocol == "http":
        tensor.set_data_from_numpy(batch, binary_data=binary)
    else:
        tensor.set_data_from_numpy(batch)
    return c.infer(MODEL, [tensor], outputs=outputs)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_server_and_model_metadata(server, protocol):
    c = client(server, protocol)
    assert c.is_server_live()
    assert c.is_server_ready()
    assert c.is_model_ready(MODEL)
    assert not c.is_model_ready("no-such-model")
    meta = c.get_server_metadata()
    model = c.get_model_metadata(MODEL)
    if protocol == "grpc":
        meta = {"name": meta.name, "extensions": list(meta.extensions)}
        model = {
            "name": model.name,
            "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in model.inputs],
            "outputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in model.outputs],
        }
    assert meta["name"] == "ferroserve"
    assert "binary_tensor_data" in meta["extensions"] or protocol == "grpc"
    assert "classification" in meta["extensions"]
    assert model["name"] == MODEL
    assert model["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}]
    assert model["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 1000]}]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_model_config(server, protocol):
    c = client(server, protocol)
    if protocol == "http":
        config = c.get_model_config(MODEL)
        assert config["max_batch_size"] == 8
        assert config["input"][0]["data_type"] == "TYPE_FP32"
        assert config["output"][0]["label_filename"] == "labels.txt"
        assert sum(g["count"] for g in config["instance_group"]) == 2
    else:
        config = c.get_model_config(MODEL).config
        assert config.max_batch_size == 8
        assert config.input[0].dims == [3, 224, 224]
        assert config.output[0].label_filename == "labels.txt"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_infer_matches_reference(server, protocol, reference_inputs, expected):
    c = client(server, protocol)
    for name, tensor in reference_inputs.items():
        result = infer_tensor(protocol, c, tensor)
        logits = result.as_numpy("logits")
        assert logits.shape == (1, 1000)
        assert_reference(softmax(logits[0]), expected[name])


def test_infer_json_tensors_over_http(server, reference_inputs, expected):
    c = client(server, "http")
    result = infer_tensor("http", c, reference_inputs["coffee.jpg"], binary=False)
    assert_reference(softmax(result.as_numpy("logits")[0]), expected["coffee.jpg"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_batch_of_two(server, protocol, reference_inputs, expected):
    c = client(server, protocol)
    batch = np.concatenate([reference_inputs["cat.jpg"], reference_inputs["motorcycle.jpg"]])
    logits = infer_tensor(protocol, c, batch).as_numpy("logits")
    assert logits.shape == (2, 1000)
    assert_reference(softmax(logits[0]), expected["cat.jpg"])
    assert_reference(softmax(logits[1]), expected["motorcycle.jpg"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_classification_extension(server, protocol, reference_inputs, expected):
    c = client(server, protocol)
    m = module(protocol)
    output = m.InferRequestedOutput("logits", class_count=3)
    result = infer_tensor(protocol, c, reference_inputs["coffee.jpg"], outputs=[output])
    rows = result.as_numpy("logits")
    assert rows.shape == (1, 3)
    first = rows[0][0].decode()
    score, index, label = first.split(":", 2)
    assert (int(index), label) == (967, "espresso")
    float(score)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_encoded_image_input(server, protocol, expected):
    c = client(server, protocol)
    m = module(protocol)
    images = [(IMAGES / n).read_bytes() for n in ("coffee.jpg", "astronaut.png")]
    data = np.array(images, dtype=np.object_).reshape(2, 1)
    tensor = m.InferInput("image", [2, 1], "BYTES")
    tensor.set_data_from_numpy(data)
    result = c.infer(IMAGE_MODEL, [tensor], outputs=[m.InferRequestedOutput("logits", class_count=1)])
    top = [row[0].decode().split(":", 2) for row in result.as_numpy("logits")]
    assert top[0][2] == "espresso"
    assert int(top[1][1]) == expected["astronaut.png"]["top5"][0]["index"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_statistics_count_inferences(server, protocol, reference_inputs):
    c = client(server, protocol)

    def count():
        stats = c.get_inference_statistics(MODEL)
        if protocol == "grpc":
            return stats.model_stats[0].inference_count
        return stats["model_stats"][0]["inference_count"]

    before = count()
    infer_tensor(protocol, c, reference_inputs["cat.jpg"])
    assert count() == before + 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_repository_index(server, protocol):
    c = client(server, protocol)
    index = c.get_model_repository_index()
    if protocol == "grpc":
        index = [{"name": m.name, "state": m.state} for m in index.models]
    states = {e["name"]: e.get("state") for e in index}
    assert states[MODEL] == "READY"
    assert states[IMAGE_MODEL] == "READY"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_errors_are_clear_and_harmless(server, protocol, reference_inputs, expected):
    c = client(server, protocol)
    m = module(protocol)
    good = reference_inputs["cat.jpg"]

    def fails(model, inputs, says):
        with pytest.raises(InferenceServerException) as raised:
            c.infer(model, inputs)
        assert says in str(raised.value), str(raised.value)

    any_model = m.InferInput("input", [1, 3, 224, 224], "FP32")
    any_model.set_data_from_numpy(good)
    fails("no-such-model", [any_model], "unknown model")
    wrong_shape = m.InferInput("input", [1, 3, 224, 200], "FP32")
    wrong_shape.set_data_from_numpy(np.zeros((1, 3, 224, 200), dtype=np.float32))
    fails(MODEL, [wrong_shape], "shape")
    wrong_type = m.InferInput("input", [1, 3, 224, 224], "INT32")
    wrong_type.set_data_from_numpy(np.zeros((1, 3, 224, 224), dtype=np.int32))
    fails(MODEL, [wrong_type], "FP32")
    unknown = m.InferInput("pixels", [1, 3, 224, 224], "FP32")
    unknown.set_data_from_numpy(good)
    fails(MODEL, [unknown], "unexpected inference input")
    too_big = m.InferInput("input", [9, 3, 224, 224], "FP32")
    too_big.set_data_from_numpy(np.zeros((9, 3, 224, 224), dtype=np.float32))
    fails(MODEL, [too_big], "batch")
    not_an_image = m.InferInput("image", [1, 1], "BYTES")
    not_an_image.set_data_from_numpy(np.array([[b"definitely not an image"]], dtype=np.object_))
    fails(IMAGE_MODEL, [not_an_image], "image 0")
    # Still serving, and still right.
    assert_reference(softmax(infer_tensor(protocol, c, good).as_numpy("logits")[0]), expected["cat.jpg"])


@pytest.fixture(scope="module")
def explicit_server(tmp_path_factory):
    repository = tmp_path_factory.mktemp("explicit-models")
    shutil.copytree(ROOT / "models" / MODEL, repository / MODEL)
    running = start_server(repository, "--model-control-mode", "explicit")
    yield running
    stop_server(running)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_repository_load_and_unload(explicit_server, protocol, reference_inputs, expected):
    c = client(explicit_server, protocol)
    assert not c.is_model_ready(MODEL)
    c.load_model(MODEL)
    assert c.is_model_ready(MODEL)
    assert_reference(softmax(infer_tensor(protocol, c, reference_inputs["cat.jpg"]).as_numpy("logits")[0]),
                     expected["cat.jpg"])
    c.unload_model(MODEL)
    assert not c.is_model_ready(MODEL)
    with pytest.raises(InferenceServerException):
        c.load_model("no-such-model")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_shared_memory_status_is_empty_and_unregister_succeeds(server, protocol):
    """Clients unregister before they register; that must work even though ferroserve
    never registers shared memory (registering is refused as unsupported)."""
    c = client(server, protocol)
    c.unregister_system_shared_memory()
    c.unregister_cuda_shared_memory()
    status = c.get_system_shared_memory_status()
    if protocol == "http":
        assert status == []
        assert c.get_cuda_shared_memory_status() == []
    else:
        assert len(status.regions) == 0
    with pytest.raises(InferenceServerException, match="not supported"):
        c.register_system_shared_memory("r0", "/ferroserve-test", 64)


def test_health_bodies_and_unknown_model_readiness(server):
    """The Open Inference Protocol's JSON health bodies, which the KServe SDK parses,
    and Triton's 400 for the readiness of an unknown model."""
    import json
    import urllib.error
    import urllib.request
    for path, body in (("/v2/health/live", {"live": True}), ("/v2/health/ready", {"ready": True}),
                       (f"/v2/models/{MODEL}/ready", {"name": MODEL, "ready": True})):
        with urllib.request.urlopen(f"http://{server.http}{path}", timeout=10) as response:
            assert response.status == 200
            assert json.loads(response.read()) == body
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"http://{server.http}/v2/models/no-such-model/ready", timeout=10)
    assert raised.value.code == 400
    assert not httpclient.InferenceServerClient(server.http).is_model_ready("no-such-model")


def test_raw_binary_request(server, expected):
    """Triton's raw binary request: Inference-Header-Content-Length 0 and the body the
    one input, here an encoded image."""
    import json
    import urllib.request
    request = urllib.request.Request(
        f"http://{server.http}/v2/models/{IMAGE_MODEL}/infer",
        data=(IMAGES / "cat.jpg").read_bytes(), method="POST",
        headers={"Inference-Header-Content-Length": "0", "Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    logits = np.array(answer["outputs"][0]["data"], dtype=np.float32)
    assert int(np.argmax(logits)) == expected["cat.jpg"]["top5"][0]["index"]

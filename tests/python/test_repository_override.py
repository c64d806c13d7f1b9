"""Loading with an override, Triton's model repository extension: the `config` parameter
(a JSON model configuration used instead of the model's config.pbtxt, kept for later
loads until the model is unloaded) and the `file:<path>` parameters (the model's files
sent with the request), with tritonclient over HTTP and gRPC, as Triton's own
L0_lifecycle test uses them. The repository stays a jail."""

import json

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from onnx import TensorProto
from tritonclient.utils import InferenceServerException

import onnx_models
from conftest import start_server, stop_server

MODEL = "identity"


@pytest.fixture(scope="module")
def explicit_server(tmp_path_factory):
    repository = tmp_path_factory.mktemp("override")
    for version in (1, 2, 3):
        onnx_models.identity(repository / MODEL / str(version) / "model.onnx",
                             TensorProto.FLOAT, ["batch", 4])
    server = start_server(repository, "--model-control-mode", "explicit")
    yield server
    stop_server(server)


def connect(server, protocol):
    if protocol == "grpc":
        return grpcclient, grpcclient.InferenceServerClient(server.grpc)
    return httpclient, httpclient.InferenceServerClient(server.http)


def ready_versions(client, model):
    return [v for v in ("1", "2", "3") if client.is_model_ready(model, v)]


def round_trips(module, client, model, version=""):
    data = np.array([[1.0, -2.0, 3.5, 0.0]], dtype=np.float32)
    tensor = module.InferInput("INPUT0", [1, 4], "FP32")
    tensor.set_data_from_numpy(data)
    got = client.infer(model, [tensor], model_version=version).as_numpy("OUTPUT0")
    np.testing.assert_array_equal(got, data)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_config_override_holds_until_unloaded(explicit_server, protocol):
    module, client = connect(explicit_server, protocol)
    client.load_model(MODEL)
    assert ready_versions(client, MODEL) == ["3"]

    config = json.dumps({"backend": "onnxruntime",
                         "version_policy": {"specific": {"versions": [2]}}})
    client.load_model(MODEL, config=config)
    assert ready_versions(client, MODEL) == ["2"]
    round_trips(module, client, MODEL, "2")
    served = client.get_model_config(MODEL)
    backend = served.config.backend if protocol == "grpc" else served["backend"]
    assert backend == "onnxruntime"

    # A load without a config keeps the one given before.
    client.load_model(MODEL)
    assert ready_versions(client, MODEL) == ["2"]

    # Unloading forgets it: the next load is the repository's own.
    client.unload_model(MODEL)
    assert ready_versions(client, MODEL) == []
    client.load_model(MODEL)
    assert ready_versions(client, MODEL) == ["3"]
    client.unload_model(MODEL)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_bad_config_override_fails_the_load_and_changes_nothing(explicit_server, protocol):
    module, client = connect(explicit_server, protocol)
    client.load_model(MODEL)
    bad = [
        ('{"inputs": []}', "inputs"),
        ('{"input": [{"name": "INPUT0", "data_type": "TYPE_INT8", "dims": [4]}]}',
         "input[0].data_type"),
        ('{"name": "another"}', "differs from the model name"),
        ('{"output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [4],'
         ' "label_filename": "../../../../../../etc/passwd"}]}',
         "leads outside the model repository"),
        ("not json", "the load request's config"),
    ]
    for config, expected in bad:
        with pytest.raises(InferenceServerException, match="failed to load") as raised:
            client.load_model(MODEL, config=config)
        assert expected in str(raised.value), str(raised.value)
        # No server path in the answer.
        assert str(explicit_server.repository) not in str(raised.value)
    assert ready_versions(client, MODEL) == ["3"]
    round_trips(module, client, MODEL)
    client.unload_model(MODEL)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_files_sent_with_the_load_make_a_model_of_their_own(explicit_server, protocol, tmp_path):
    module, client = connect(explicit_server, protocol)
    model_file = tmp_path / "model.onnx"
    onnx_models.identity(model_file, TensorProto.FLOAT, ["batch", 4])
    contents = model_file.read_bytes()
    uploaded = f"uploaded-{protocol}"

    # The model's folder is not used, so a configuration must say what the model is.
    with pytest.raises(InferenceServerException, match="config parameter"):
        client.load_model(uploaded, files={"file:1/model.onnx": contents})
    # No file can be written outside the model's own folder.
    for path in ("../escape/1/model.onnx", "1/../../model.onnx", "/tmp/model.onnx"):
        with pytest.raises(InferenceServerException, match="inside it"):
            client.load_model(uploaded, config="{}", files={f"file:{path}": contents})
    assert not (explicit_server.repository / uploaded).exists()

    client.load_model(uploaded, config=json.dumps({"backend": "onnxruntime"}),
                      files={"file:1/model.onnx": contents})
    assert ready_versions(client, uploaded) == ["1"]
    round_trips(module, client, uploaded)
    # Nothing was written into the repository.
    assert not (explicit_server.repository / uploaded).exists()
    index = client.get_model_repository_index()
    names = [m.name for m in index.models] if protocol == "grpc" else [m["name"] for m in index]
    assert uploaded in names
    # A plain load loads the same files again; unloading forgets them.
    client.load_model(uploaded)
    assert ready_versions(client, uploaded) == ["1"]
    client.unload_model(uploaded)
    with pytest.raises(InferenceServerException):
        client.load_model(uploaded)

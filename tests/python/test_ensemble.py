"""Ensembles (`platform: "ensemble"`), with tritonclient over HTTP and gRPC: an ONNX
preprocessing graph followed by a classifier, run in-process as one model. Readiness,
metadata, configuration and statistics treat the ensemble as a model; loading it loads
its steps; while a step model is unloaded the ensemble is not ready; a bad ensemble is
refused at load with the field it gets wrong. The models are built at test time with the
onnx package."""

import json

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import onnx_models
from conftest import start_server, stop_server

ENSEMBLE = "pipeline"
ENSEMBLE_CONFIG = """
name: "pipeline"
platform: "ensemble"
max_batch_size: 4
input [ { name: "IMAGE" data_type: TYPE_UINT8 dims: [ 8, 8, 3 ] } ]
output [ { name: "SCORES" data_type: TYPE_FP32 dims: [ 4 ] label_filename: "labels.txt" } ]
ensemble_scheduling {
  step [
    {
      model_name: "preprocess"
      model_version: -1
      input_map { key: "RAW" value: "IMAGE" }
      output_map { key: "PREPROCESSED" value: "preprocessed_image" }
    },
    {
      model_name: "classifier"
      model_version: -1
      input_map { key: "input" value: "preprocessed_image" }
      output_map { key: "logits" value: "SCORES" }
    }
  ]
}
"""
LABELS = ["red", "green", "blue", "grey"]


@pytest.fixture(scope="module")
def ensemble_server(tmp_path_factory):
    repository = tmp_path_factory.mktemp("ensemble")
    onnx_models.preprocess(repository / "preprocess" / "1" / "model.onnx")
    onnx_models.classifier(repository / "classifier" / "1" / "model.onnx")
    (repository / ENSEMBLE / "1").mkdir(parents=True)
    (repository / ENSEMBLE / "config.pbtxt").write_text(ENSEMBLE_CONFIG)
    (repository / ENSEMBLE / "labels.txt").write_text("\n".join(LABELS) + "\n")
    # Only the ensemble is named: its steps load with it.
    server = start_server(repository, "--model-control-mode", "explicit",
                          "--load-model", ENSEMBLE)
    yield server
    stop_server(server)


def connect(server, protocol):
    if protocol == "grpc":
        return grpcclient, grpcclient.InferenceServerClient(server.grpc)
    return httpclient, httpclient.InferenceServerClient(server.http)


def images(batch):
    rng = np.random.default_rng(batch)
    return rng.integers(0, 256, size=(batch, 8, 8, 3), dtype=np.uint8)


def infer(module, client, batch, outputs=None):
    tensor = module.InferInput("IMAGE", list(batch.shape), "UINT8")
    tensor.set_data_from_numpy(batch)
    return client.infer(ENSEMBLE, [tensor], outputs=outputs)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_ensemble_runs_its_steps_in_order(ensemble_server, protocol):
    module, client = connect(ensemble_server, protocol)
    assert client.is_model_ready(ENSEMBLE)
    assert client.is_model_ready("preprocess") and client.is_model_ready("classifier")
    batch = images(3)
    scores = infer(module, client, batch).as_numpy("SCORES")
    assert scores.shape == (3, 4)
    np.testing.assert_allclose(scores, onnx_models.expected_logits(batch), rtol=1e-5, atol=1e-5)
    # Triton's classification extension on the ensemble's output, with its labels.
    top = infer(module, client, batch[:1],
                outputs=[module.InferRequestedOutput("SCORES", class_count=2)]).as_numpy("SCORES")
    best = int(np.argmax(onnx_models.expected_logits(batch[:1])[0]))
    assert top[0][0].decode().endswith(f":{best}:{LABELS[best]}")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_metadata_config_and_statistics_treat_the_ensemble_as_a_model(ensemble_server, protocol):
    module, client = connect(ensemble_server, protocol)
    metadata = client.get_model_metadata(ENSEMBLE)
    config = client.get_model_config(ENSEMBLE)

    def counts():
        stats = client.get_inference_statistics()
        if protocol == "grpc":
            return {s.name: s.inference_count for s in stats.model_stats}
        return {s["name"]: s["inference_count"] for s in stats["model_stats"]}

    if protocol == "grpc":
        assert metadata.platform == "ensemble"
        assert [i.name for i in metadata.inputs] == ["IMAGE"]
        assert list(metadata.outputs[0].shape) == [-1, 4]
        steps = config.config.ensemble_scheduling.step
        assert [s.model_name for s in steps] == ["preprocess", "classifier"]
    else:
        assert metadata["platform"] == "ensemble"
        assert metadata["inputs"][0]["datatype"] == "UINT8"
        assert metadata["outputs"][0]["shape"] == [-1, 4]
        steps = config["ensemble_scheduling"]["step"]
        assert [s["model_name"] for s in steps] == ["preprocess", "classifier"]
        assert steps[1]["input_map"] == {"input": "preprocessed_image"}
    before = counts()
    infer(module, client, images(2))
    after = counts()
    # The ensemble counts its request's rows, and so does each step.
    for model in (ENSEMBLE, "preprocess", "classifier"):
        assert after[model] - before.get(model, 0) == 2, model


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_ensemble_is_not_ready_while_a_step_is_unloaded(ensemble_server, protocol):
    module, client = connect(ensemble_server, protocol)
    client.unload_model("classifier")
    try:
        assert not client.is_model_ready(ENSEMBLE)
        with pytest.raises(InferenceServerException, match="not ready.*classifier"):
            infer(module, client, images(1))
        index = client.get_model_repository_index()
        if protocol == "grpc":
            states = {m.name: m.state for m in index.models}
        else:
            states = {m["name"]: m.get("state") for m in index}
        assert states[ENSEMBLE] == "UNAVAILABLE"
    finally:
        client.load_model("classifier")
    assert client.is_model_ready(ENSEMBLE)
    batch = images(1)
    np.testing.assert_allclose(infer(module, client, batch).as_numpy("SCORES"),
                               onnx_models.expected_logits(batch), rtol=1e-5, atol=1e-5)


def with_steps(steps, image_type="TYPE_UINT8"):
    """The ensemble's configuration as JSON, with `steps` in place of its own."""
    return json.dumps({
        "platform": "ensemble",
        "max_batch_size": 4,
        "input": [{"name": "IMAGE", "data_type": image_type, "dims": [8, 8, 3]}],
        "output": [{"name": "SCORES", "data_type": "TYPE_FP32", "dims": [4]}],
        "ensemble_scheduling": {"step": steps},
    })


def step(model, inputs, outputs):
    return {"model_name": model, "model_version": -1, "input_map": inputs, "output_map": outputs}


PREPROCESS = step("preprocess", {"RAW": "IMAGE"}, {"PREPROCESSED": "planar"})
CLASSIFY = step("classifier", {"input": "planar"}, {"logits": "SCORES"})


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_ensembles_are_refused_at_load(ensemble_server, protocol):
    module, client = connect(ensemble_server, protocol)
    cases = [
        ([PREPROCESS, step("no-such-model", {"input": "planar"}, {"logits": "SCORES"})],
         "no model 'no-such-model'"),
        ([PREPROCESS, CLASSIFY],
         "tensor 'IMAGE' is TYPE_FP32, but input 'RAW' of model 'preprocess' is TYPE_UINT8"),
        ([PREPROCESS, step("classifier", {"input": "planar"}, {"x": "SCORES"})],
         "model 'classifier' has no output 'x' (it has: logits)"),
        ([PREPROCESS, CLASSIFY, step("classifier", {"input": "planar"}, {"logits": "SCORES"})],
         "more than one producer"),
        ([PREPROCESS, CLASSIFY, step("classifier", {"input": "planar"}, {"logits": "spare"})],
         "tensor 'spare' is not used"),
        ([step("preprocess", {"RAW": "IMAGE"}, {"PREPROCESSED": "unused"}), CLASSIFY],
         "tensor 'planar' is neither an ensemble input nor an output of any step"),
        ([step(ENSEMBLE, {"IMAGE": "IMAGE"}, {"SCORES": "SCORES"})], "a cycle"),
    ]
    for steps, expected in cases:
        # The second case declares the image as FP32, which the preprocessing refuses.
        image_type = "TYPE_FP32" if "'IMAGE' is TYPE_FP32" in expected else "TYPE_UINT8"
        with pytest.raises(InferenceServerException) as raised:
            client.load_model(ENSEMBLE, config=with_steps(steps, image_type))
        assert expected in str(raised.value), str(raised.value)
    # The ensemble that was loaded is still served.
    assert client.is_model_ready(ENSEMBLE)
    infer(module, client, images(1))

"""Triton Python-backend model: runs the version folder's model.onnx with onnxruntime (CPU).

Triton starts one stub process per instance in instance_group, each with its own session.
Config parameter `intra_op_num_threads` sets the session's intra-op threads. Tensor names
come from the model's config.pbtxt (first input, first output).
"""

import json
import os

import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        threads = int(config.get("parameters", {})
                      .get("intra_op_num_threads", {}).get("string_value", "1"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]

    def execute(self, requests):
        # Without dynamic batching Triton hands over one request at a time; the loop is for
        # the general case. Each request's tensor already carries its batch dimension.
        responses = []
        for request in requests:
            batch = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
            (scores,) = self.session.run([self.output_name], {self.input_name: batch})
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(self.output_name, scores)]))
        return responses

"""MLServer custom runtime: runs the model folder's ONNX file with onnxruntime (CPU).

model-settings.json names the file (`parameters.uri`), the tensors (`inputs`, `outputs`)
and the session's intra-op threads (`parameters.extra.intra_op_num_threads`). With
`parallel_workers` N, MLServer loads one copy of this model in each of N worker processes.
"""

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri


class OnnxRuntimeModel(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self.settings)
        extra = self.settings.parameters.extra or {}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(extra.get("intra_op_num_threads", 1))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.settings.inputs[0].name
        self.output_name = self.settings.outputs[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        request_input = next(i for i in payload.inputs if i.name == self.input_name)
        batch = NumpyCodec.decode_input(request_input)
        # A blocking call, as in a typical custom runtime: each worker process serves one
        # request at a time, like one Triton instance.
        (scores,) = self.session.run([self.output_name], {self.input_name: batch})
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            # Built by hand rather than with NumpyCodec.encode_output, which adds
            # `parameters: {content_type: np}`: Triton's HTTP client (perf_analyzer) then
            # looks for `binary_data_size` in those parameters and fails.
            outputs=[ResponseOutput(name=self.output_name, datatype="FP32",
                                    shape=list(scores.shape), data=scores.ravel().tolist())],
        )

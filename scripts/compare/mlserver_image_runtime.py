"""MLServer custom runtime for encoded images: Pillow preprocessing, then onnxruntime.

The input `image` (BYTES, one element per batch row) holds each image base64-encoded,
MLServer's codec for binary data over its JSON-only REST API (content_type `base64` in
model-settings.json); gRPC requests carry the same text. Each image goes through
pillow_preprocess.preprocess (Pillow decode, EXIF orientation, RGB, short side 256 bicubic,
center crop 224, (x - 127) / 128, NCHW), then the batch through the ONNX session of
onnx_runtime.OnnxRuntimeModel (scripts/compare/mlserver_runtime.py), whose load() this
class keeps. make_image_repos.py copies both modules beside this one.
"""

import numpy as np
from mlserver.codecs import Base64Codec
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

from onnx_runtime import OnnxRuntimeModel
from pillow_preprocess import preprocess


class ImageClassifier(OnnxRuntimeModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        request_input = next(i for i in payload.inputs if i.name == self.input_name)
        images = Base64Codec.decode_input(request_input)
        batch = np.concatenate([preprocess(image) for image in images])
        # Blocking calls, as in a typical custom runtime: one request at a time.
        tensor_name = self.session.get_inputs()[0].name
        (scores,) = self.session.run([self.output_name], {tensor_name: batch})
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            # Without `content_type` parameters, as in onnx_runtime.py: perf_analyzer
            # would look for `binary_data_size` in them.
            outputs=[ResponseOutput(name=self.output_name, datatype="FP32",
                                    shape=list(scores.shape), data=scores.ravel().tolist())],
        )

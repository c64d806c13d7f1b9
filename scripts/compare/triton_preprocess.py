"""Triton Python-backend model: the image preprocessing step of the image ensemble.

Input `image`: one encoded image (JPEG, PNG, ...) per batch row, TYPE_STRING [1]. Output
`input`: the classifier's tensor, FP32 [3, 224, 224] per row, made by
pillow_preprocess.preprocess (Pillow decode, EXIF orientation, RGB, short side 256
bicubic, center crop 224, (x - 127) / 128, NCHW), which make_image_repos.py copies
beside this file. Triton starts one stub process per instance in instance_group.
"""

import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pillow_preprocess import preprocess  # noqa: E402


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            # An object array of bytes, [batch, 1].
            images = pb_utils.get_input_tensor_by_name(request, "image").as_numpy()
            try:
                batch = np.concatenate([preprocess(row[0]) for row in images])
            except Exception as e:  # a file Pillow cannot read: answer this request only
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"cannot preprocess the image: {e}")))
                continue
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("input", batch)]))
        return responses

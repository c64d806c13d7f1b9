"""Starts MLServer (`mlserver start FOLDER`) with Triton's model-configuration endpoint added.

perf_analyzer reads a model's configuration before it sends load (HTTP
GET /v2/models/NAME/config, gRPC GRPCInferenceService/ModelConfig). Those belong to Triton's
extensions of the KServe v2 protocol, which MLServer does not implement. This launcher adds
both, read-only, answering `{"name": NAME, "max_batch_size": 0}`: with max_batch_size 0
perf_analyzer takes the whole request shape, batch dimension included, from the model
metadata and `--shape` (e.g. --shape input:1,3,224,224), so it sends the same [1,3,224,224]
tensor as to the other servers. Inference itself goes through MLServer's own code.

    python mlserver_serve.py FOLDER      (settings from MLSERVER_* variables, as with `mlserver start`)
"""

import sys

import grpc
from fastapi.responses import JSONResponse

import mlserver.grpc.server as grpc_server
import mlserver.rest.server as rest_server
from mlserver.cli.main import root


def model_config(name):
    return {"name": name, "max_batch_size": 0}


def add_rest_config_route(create_app):
    def create_app_with_config(*args, **kwargs):
        app = create_app(*args, **kwargs)

        async def config(model_name: str, model_version: str = ""):
            return JSONResponse(model_config(model_name))

        app.add_api_route("/v2/models/{model_name}/config", config, methods=["GET"])
        app.add_api_route("/v2/models/{model_name}/versions/{model_version}/config", config,
                          methods=["GET"])
        return app

    return create_app_with_config


def varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def length_delimited(field, payload):
    return bytes([field << 3 | 2]) + varint(len(payload)) + payload


def parse_model_name(request):
    """ModelConfigRequest field 1 (name); hand-parsed, because importing Triton's protos next
    to MLServer's would clash in protobuf's pool (both declare package `inference`)."""
    pos = 0
    while pos < len(request):
        tag = request[pos]
        pos += 1
        length = 0
        shift = 0
        while True:
            byte = request[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if tag == (1 << 3 | 2):
            return request[pos:pos + length].decode()
        pos += length
    return ""


async def grpc_model_config(request, context):
    # ModelConfigResponse { ModelConfig config = 1 }, ModelConfig { string name = 1 };
    # max_batch_size 0 is protobuf's default and so is not written.
    name = parse_model_name(request).encode()
    return length_delimited(1, length_delimited(1, name))


class ModelConfigHandler(grpc.GenericRpcHandler):
    def service(self, handler_call_details):
        if handler_call_details.method == "/inference.GRPCInferenceService/ModelConfig":
            return grpc.unary_unary_rpc_method_handler(grpc_model_config)
        return None


def add_grpc_config_method(create_server):
    def create_server_with_config(self):
        server = create_server(self)
        server.add_generic_rpc_handlers((ModelConfigHandler(),))
        return server

    return create_server_with_config


if __name__ == "__main__":
    rest_server.create_app = add_rest_config_route(rest_server.create_app)
    grpc_server.GRPCServer._create_server = add_grpc_config_method(
        grpc_server.GRPCServer._create_server)
    sys.exit(root(["start", *sys.argv[1:]]))

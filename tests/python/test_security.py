"""Security as a client meets it, with the real clients: TLS (tritonclient over HTTPS
and gRPC with TLS, the certificate reloaded when its file changes, client certificates
required on request), API keys per API group on both protocols, and a model repository
that no link or label file can leave."""

import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import IMAGES, ROOT, start_server, stop_server

MODEL = "efficientnet-lite0"


def make_certificate(folder, name, issuer=None):
    """A certificate for 127.0.0.1 and localhost (self-signed, or signed by `issuer`,
    a (cert, key) pair); returns (cert, key) paths."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subject = ["-subj", f"/CN={name}", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
    if issuer is None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", key, "-out", cert, *subject], check=True, capture_output=True)
    else:
        request = folder / f"{name}.csr"
        subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", request, *subject], check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", request, "-CA", issuer[0], "-CAkey", issuer[1],
                        "-CAcreateserial", "-days", "2", "-out", cert, "-copy_extensions", "copy"],
                       check=True, capture_output=True)
    return cert, key


def served_certificate(address):
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    import socket
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


def infer_http(client, inputs, **kwargs):
    data = httpclient.InferInput("input", [1, 3, 224, 224], "FP32")
    data.set_data_from_numpy(inputs, binary_data=True)
    return client.infer(MODEL, [data], **kwargs).as_numpy("logits")


def infer_grpc(client, inputs, **kwargs):
    data = grpcclient.InferInput("input", [1, 3, 224, 224], "FP32")
    data.set_data_from_numpy(inputs)
    return client.infer(MODEL, [data], **kwargs).as_numpy("logits")


def test_tls_on_both_protocols_with_a_reloaded_certificate(tmp_path, reference_inputs, expected):
    cert, key = make_certificate(tmp_path, "server")
    server = start_server(None, "--tls-cert", str(cert), "--tls-key", str(key),
                          "--model-control-mode", "explicit", "--load-model", MODEL)
    try:
        best = expected["cat.jpg"]["top5"][0]["index"]
        https = httpclient.InferenceServerClient(
            server.http, ssl=True, ssl_context_factory=lambda: ssl.create_default_context(cafile=str(cert)))
        assert https.is_server_ready()
        assert int(np.argmax(infer_http(https, reference_inputs["cat.jpg"]))) == best
        secure = grpcclient.InferenceServerClient(server.grpc, ssl=True, root_certificates=str(cert))
        assert secure.is_server_ready()
        assert int(np.argmax(infer_grpc(secure, reference_inputs["cat.jpg"]))) == best
        # Plain HTTP to a TLS port is refused.
        with pytest.raises(Exception):
            urllib.request.urlopen(f"http://{server.http}/v2/health/ready", timeout=5).read()

        # A new certificate written over the files is served to new connections.
        before = served_certificate(server.http)
        new_cert, new_key = make_certificate(tmp_path, "renewed")
        shutil.copy(new_key, key)
        shutil.copy(new_cert, cert)
        for _ in range(50):
            if served_certificate(server.http) != before:
                break
            time.sleep(0.1)
        assert served_certificate(server.http) == ssl.PEM_cert_to_DER_cert(new_cert.read_text())
        assert served_certificate(server.grpc) == ssl.PEM_cert_to_DER_cert(new_cert.read_text())
    finally:
        stop_server(server)


def test_client_certificates_when_required(tmp_path):
    ca = make_certificate(tmp_path, "client-ca")
    client_cert, client_key = make_certificate(tmp_path, "client", issuer=ca)
    cert, key = make_certificate(tmp_path, "server")
    server = start_server(None, "--tls-cert", str(cert), "--tls-key", str(key),
                          "--tls-client-ca", str(ca[0]), "--model-control-mode", "explicit")
    try:
        url = f"https://{server.http}/v2/health/ready"
        without = ssl.create_default_context(cafile=str(cert))
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(url, context=without, timeout=5).read()
        with_cert = ssl.create_default_context(cafile=str(cert))
        with_cert.load_cert_chain(client_cert, client_key)
        with urllib.request.urlopen(url, context=with_cert, timeout=5) as response:
            assert response.status == 200
        secure = grpcclient.InferenceServerClient(
            server.grpc, ssl=True, root_certificates=str(cert),
            private_key=str(client_key), certificate_chain=str(client_cert))
        assert secure.is_server_live()
    finally:
        stop_server(server)


def test_api_keys_per_group_on_both_protocols(reference_inputs):
    server = start_server(None, "--model-control-mode", "explicit", "--load-model", MODEL,
                          "--restricted-api", "inference:infer-key=s3cret",
                          "--grpc-restricted-protocol", "model-repository:admin-key=0ther")
    try:
        for client, infer in ((httpclient.InferenceServerClient(server.http), infer_http),
                              (grpcclient.InferenceServerClient(server.grpc), infer_grpc)):
            assert client.is_server_ready()
            assert client.is_model_ready(MODEL)
            with pytest.raises(InferenceServerException, match="infer-key"):
                infer(client, reference_inputs["cat.jpg"])
            with pytest.raises(InferenceServerException, match="infer-key"):
                infer(client, reference_inputs["cat.jpg"], headers={"infer-key": "wrong"})
            logits = infer(client, reference_inputs["cat.jpg"], headers={"infer-key": "s3cret"})
            assert logits.shape == (1, 1000)
            with pytest.raises(InferenceServerException, match="admin-key"):
                client.unload_model(MODEL)
            assert client.is_model_ready(MODEL)
    finally:
        stop_server(server)


def test_the_repository_is_a_jail(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the secret\n" * 1000)
    repository = tmp_path / "models"
    model = repository / MODEL  # its labels.txt leads out
    shutil.copytree(ROOT / "models" / MODEL, model, symlinks=False)
    (model / "labels.txt").unlink()
    (model / "labels.txt").symlink_to(outside / "secret.txt")
    bare = outside / "bare" / "1"
    bare.mkdir(parents=True)
    shutil.copy(ROOT / "models" / MODEL / "1" / "model.onnx", bare / "model.onnx")
    (repository / "linked").symlink_to(outside / "bare")
    server = start_server(repository)
    try:
        client = httpclient.InferenceServerClient(server.http)
        index = client.get_model_repository_index()
        reasons = {entry["name"]: entry.get("reason", "") for entry in index}
        for name in (MODEL, "linked"):
            assert not client.is_model_ready(name), name
            assert "outside the model repository" in reasons[name], reasons
        for reason in reasons.values():
            assert str(tmp_path) not in reason and str(ROOT) not in reason, reason
    finally:
        stop_server(server)
    # Allowed when asked for.
    server = start_server(repository, "--allow-links-outside-repository")
    try:
        client = httpclient.InferenceServerClient(server.http)
        assert client.is_model_ready("linked")
        assert client.is_model_ready(MODEL)
    finally:
        stop_server(server)

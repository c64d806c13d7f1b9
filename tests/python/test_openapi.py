"""The OpenAPI document at /v2/openapi.json: a valid OpenAPI 3 document
(openapi-spec-validator), and true of the live server: schemathesis sends a bounded
number of generated requests to every operation and finds no 5xx and no status, content
type, header or body the document does not describe."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from openapi_spec_validator import validate

from conftest import ROOT

DOCUMENT = ROOT / "crates" / "ferroserve-server" / "assets" / "openapi.json"
CONFIG = Path(__file__).with_name("schemathesis.toml")

# Every check that compares a response with the document; negative_data_rejection and
# positive_data_acceptance are left out: the document types a tensor's `data` and a
# model's name loosely, so whether the server accepts a generated request depends on
# the model, which no schema can say.
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])


def fetch(http, path):
    with urllib.request.urlopen(f"http://{http}{path}", timeout=30) as response:
        return response.headers.get("Content-Type"), response.read()


def test_the_served_document_is_valid_openapi(server):
    content_type, body = fetch(server.http, "/v2/openapi.json")
    assert content_type == "application/json"
    document = json.loads(body)
    assert document == json.loads(DOCUMENT.read_text()), "the server embeds another document"
    validate(document)
    assert document["openapi"].startswith("3.")


def test_schemathesis_finds_no_server_error_and_no_undocumented_response(server, tmp_path):
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(CONFIG), "run",
        f"http://{server.http}/v2/openapi.json",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "20"),
        "--seed", "1",
        # One worker: Hypothesis's source inspection is not thread-safe, and two
        # workers now and then end a run with an internal error.
        "--workers", "1",
        "--request-timeout", "30",
        "--no-shrink",
        "--report", "junit",
        "--report-dir", str(tmp_path),
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20000:]

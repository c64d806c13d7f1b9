#!/usr/bin/env python3
"""Copies every model configuration example of a Triton server checkout into this folder.

Usage: vendor.py TRITON_SERVER_CHECKOUT

Collected, each under its path in the Triton repository:
  - every `*.pbtxt` file under docs/ and qa/;
  - every `expected*` file under qa/L0_model_config/ that holds a configuration (Triton's
    completed configuration, printed in text format) rather than an error message;
  - every fenced block of a docs/**/*.md file that holds a configuration or a part of
    one, written to `<file>.md.L<line of the opening fence>.pbtxt`.
MANIFEST lists the files written, one per line, with the commit they came from.
"""

import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
FIELD = re.compile(
    r"^\s*(name|platform|backend|max_batch_size|input|output|instance_group|"
    r"dynamic_batching|sequence_batching|ensemble_scheduling|parameters|model_warmup|"
    r"optimization|version_policy|default_model_filename|response_cache)\s*[:{\[<]",
    re.M,
)
CONFIG_START = re.compile(r"^[a-z_]+\s*[:{<\[]")
FENCE_LANGUAGES = ("", "proto", "protobuf", "pbtxt", "text")


def looks_like_config(text):
    """Whether `text` starts with a field and sets one of ModelConfig's fields."""
    lines = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    return bool(lines) and CONFIG_START.match(lines[0].strip()) and FIELD.search(text)


def looks_like_config_fragment(text, language):
    """Whether a fenced block of the docs is a configuration or part of one: it sets one
    of ModelConfig's fields, is not marked as another language and is not another
    message (`ModelInferRequest { ... }`); fragments that start with `...` count."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return (
        language in FENCE_LANGUAGES
        and bool(lines)
        and not lines[0][0].isupper()
        and FIELD.search(text) is not None
    )


def main(checkout):
    checkout = pathlib.Path(checkout)
    commit = subprocess.check_output(
        ["git", "-C", checkout, "rev-parse", "HEAD"], text=True
    ).strip()
    files = subprocess.check_output(
        ["git", "-C", checkout, "ls-files", "docs", "qa"], text=True
    ).split()
    written = {}
    for name in files:
        path = checkout / name
        if name.endswith(".pbtxt"):
            written[name] = path.read_text()
        elif name.startswith("qa/L0_model_config/") and re.search(r"/expected(\.\d+)?$", name):
            text = path.read_text()
            if looks_like_config(text):
                written[name] = text
        elif name.startswith("docs/") and name.endswith(".md"):
            lines = path.read_text().splitlines()
            start = None
            for i, line in enumerate(lines):
                if line.lstrip().startswith("```"):
                    if start is None:
                        start = i
                    else:
                        block = "\n".join(lines[start + 1 : i]) + "\n"
                        indent = len(lines[start]) - len(lines[start].lstrip())
                        block = "\n".join(l[indent:] if l[:indent].isspace() else l for l in block.splitlines()) + "\n"
                        language = lines[start].strip()[3:].strip()
                        if looks_like_config_fragment(block, language):
                            written[f"{name}.L{start + 1}.pbtxt"] = block
                        start = None
    for name, text in written.items():
        target = HERE / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    with open(HERE / "MANIFEST", "w") as manifest:
        manifest.write(f"# triton-inference-server/server {commit}\n")
        for name in sorted(written):
            manifest.write(name + "\n")
    print(f"{len(written)} files from {commit}")


if __name__ == "__main__":
    main(sys.argv[1])

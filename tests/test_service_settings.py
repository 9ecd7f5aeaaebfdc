"""The service's settings: typed once, read from the environment, documented from the same fields."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from service_support.settings import MAX_BEAMS, ServiceSettings, documentation, load_settings
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("KEYWORD_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_and_values_from_the_environment(environment):
    defaults = load_settings()
    assert (defaults.host, defaults.quantize, defaults.greedy_loop) == ("127.0.0.1", "auto", True)
    assert defaults.torch_threads >= 1  # derived from the cores and the model workers
    environment.setenv("KEYWORD_MAX_TEXT_CHARS", " 500 ")
    environment.setenv("KEYWORD_QUANTIZE", " INT8 ")
    environment.setenv("KEYWORD_GREEDY_LOOP", "0")
    environment.setenv("KEYWORD_API_TOKEN", " secret \n")
    environment.setenv("KEYWORD_HOST", "::1")
    settings = load_settings()
    assert (settings.max_text_chars, settings.quantize, settings.greedy_loop) == (500, "int8", False)
    assert settings.api_token == "secret" and "secret" not in repr(settings)
    assert settings.host == "::1"
    assert load_settings("keyword-extractor:v7").model_tag == "keyword-extractor:v7"  # a Bento argument wins


@pytest.mark.parametrize("chars", [None, "2000"])
def test_the_largest_legal_batch_fits_the_body_limit_even_fully_escaped(environment, chars):
    if chars:
        environment.setenv("KEYWORD_MAX_TEXT_CHARS", chars)
    settings = load_settings()
    largest = {"texts": ["가" * settings.max_text_chars] * settings.max_batch_texts, "max_keywords": 10, "num_beams": 4}
    escaped = json.dumps(largest, ensure_ascii=True).encode()  # every Hangul character as \\uXXXX
    assert len(escaped) <= settings.max_body_bytes


def test_an_empty_variable_means_the_default(environment):
    environment.setenv("KEYWORD_HOST", "")
    environment.setenv("KEYWORD_MAX_TEXT_CHARS", "")
    settings = load_settings()
    default_chars = ServiceSettings.model_fields["max_text_chars"].default
    assert (settings.host, settings.max_text_chars) == ("127.0.0.1", default_chars)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("KEYWORD_MAX_TEXT_CHARS", "0", "greater than or equal to 1"),
        ("KEYWORD_NUM_BEAMS", str(MAX_BEAMS + 1), f"less than or equal to {MAX_BEAMS}"),
        ("KEYWORD_TIMEOUT_S", "soon", "valid integer"),
        ("KEYWORD_HOST", "localhost", "does not appear to be an IPv4 or IPv6 address"),
        ("KEYWORD_QUANTIZE", "fp16", "'auto', 'off' or 'int8'"),
        ("KEYWORD_GREEDY_LOOP", "2", "valid boolean"),
    ],
)
def test_a_bad_value_names_its_variable(environment, variable, value, says):
    environment.setenv(variable, value)
    with pytest.raises(ValueError, match=variable) as raised:
        load_settings()
    assert says in str(raised.value) and repr(value) in str(raised.value)


def test_the_settings_are_frozen(environment):
    with pytest.raises(Exception, match="frozen"):
        load_settings().max_text_chars = 5


def test_the_service_docstring_is_the_generated_documentation():
    """Every variable, its bounds and default, documented where an operator reads it: service.py."""
    docstring = ast.get_docstring(ast.parse((PROJECT_ROOT / "service.py").read_text(encoding="utf-8")))
    assert documentation() in docstring
    assert all(f"KEYWORD_{name.upper()}" in docstring for name in ServiceSettings.model_fields)


def test_request_types_import_without_bentoml():
    """The app and scripts share the request and response types: importing them pulls no BentoML."""
    code = "import sys, service_support.schemas; print('bentoml' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"

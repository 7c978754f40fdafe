"""The backend registry: one entry per runtime, every table mnprof asks about a view of it, nothing unregistered."""

from __future__ import annotations

import inspect
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mnprof.errors import MnprofError
from mnprof.runtimes import backends, registry, runners
from mnprof.runtimes.registry import (
    INT8,
    LAYER_BACKENDS,
    LOSSY,
    MEMORY_BACKENDS,
    ONNX_LAYER_BACKENDS,
    ONNXRUNTIME_POOL,
    REGISTRY,
    Backend,
    BackendInfo,
    backend_info,
    listing,
)
from mnprof.timing import layers

ACCEPTED = "eager, channels_last, fused, compile, onnxruntime, onnxruntime_int8, bfloat16, float16, torch_int8"
SCHEMA = Path(__file__).resolve().parent.parent / "mnprof" / "schemas" / "results.schema.json"


def test_every_backend_has_exactly_one_entry_in_the_enums_order():
    assert list(REGISTRY) == list(Backend)
    assert all(info.backend is backend for backend, info in REGISTRY.items())
    assert listing() == ACCEPTED  # what --help and every "accepted:" line names


@pytest.mark.parametrize("drop", [Backend.COMPILE, Backend.TORCH_INT8])
def test_a_registry_missing_or_repeating_a_backend_is_refused(drop):
    entries = [info for info in REGISTRY.values() if info.backend is not drop]
    with pytest.raises(ValueError, match=f"'{drop.value}': 0"):
        registry._registry(entries)
    with pytest.raises(ValueError, match="'eager': 2"):
        registry._registry([*entries, REGISTRY[Backend.EAGER]])


def test_an_entry_that_contradicts_itself_is_refused():
    eager = REGISTRY[Backend.EAGER]
    for wrong in ({"dtype": "float16"}, {"extra": "onnx"}, {"int8": True}):
        with pytest.raises(ValueError):
            replace(eager, **wrong)


# The tables that were written out by hand before the registry, pinned here as literals: a wrong entry (or a wrong
# derivation) changes one of them and fails.
def test_the_views_hold_what_the_old_tables_held():
    assert {b.value for b in LOSSY} == {"onnxruntime_int8", "bfloat16", "torch_int8", "float16"}
    assert {b.value for b in INT8} == {"onnxruntime_int8", "torch_int8"}
    assert {b.value for b in ONNXRUNTIME_POOL} == {"onnxruntime", "onnxruntime_int8"}
    assert [b.value for b in MEMORY_BACKENDS] == ["eager", "channels_last", "fused", "bfloat16", "float16"]
    assert [b.value for b in LAYER_BACKENDS] == ["eager", "channels_last", "onnxruntime", "onnxruntime_int8"]
    assert [b.value for b in ONNX_LAYER_BACKENDS] == ["onnxruntime", "onnxruntime_int8"]
    assert layers.LAYER_BACKENDS == LAYER_BACKENDS  # what mnprof layers --backend accepts
    assert {b.value: d for b, d in backends.REDUCED_PRECISION.items()} == {
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
    }
    extras = {b.value: (info.extra, info.modules) for b, info in REGISTRY.items() if info.extra}
    assert extras == {
        "onnxruntime": ("onnx", ("onnxruntime", "onnx")),
        "onnxruntime_int8": ("onnx", ("onnxruntime", "onnx")),
    }
    needs = {b.value: info.native_needs for b, info in REGISTRY.items() if info.native_needs}
    assert needs == {
        "bfloat16": "CPUs need AVX-512 BF16 or AMX; GPUs compute capability 8.0 or later",
        "float16": "CPUs need AVX-512 FP16 or AMX-FP16; GPUs compute capability 5.3 or later",
    }
    assert {b.value for b, info in REGISTRY.items() if info.channels_last} == {"channels_last", "fused"}


def test_the_runtime_version_is_onnxruntimes_for_its_pool_and_torchs_otherwise(monkeypatch):
    monkeypatch.setattr(backends, "package_version", lambda name: name)
    onnx = {b.value for b in Backend if backends.runtime_version(b) == "onnxruntime"}
    assert onnx == {"onnxruntime", "onnxruntime_int8"}
    assert {backends.runtime_version(b) for b in Backend} == {"onnxruntime", "torch"}


def test_each_entry_names_a_builder_and_every_builder_is_named():
    named = {info.prepare for info in REGISTRY.values()}
    builders = {name for name in dir(runners) if name.startswith("prepare_")}
    assert named == builders
    for name in builders:
        assert list(inspect.signature(getattr(runners, name)).parameters) == ["info", "model", "inputs", "threads"]


def test_the_results_schema_accepts_exactly_the_registered_backends():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    found = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("backend"), dict) and "enum" in node["backend"]:
                found.append(node["backend"]["enum"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert found and all(set(enum) == set(ACCEPTED.split(", ")) for enum in found)


@pytest.mark.parametrize("value", ["tensorrt", "", "ONNXRUNTIME", None, 3])
def test_prepare_refuses_an_unregistered_value_and_never_guesses_onnxruntime(monkeypatch, value):
    monkeypatch.setattr(runners, "prepare_onnxruntime", lambda *a: pytest.fail("sent to onnxruntime"))
    with pytest.raises(MnprofError, match=rf"^unknown backend {value!r}; accepted: {ACCEPTED}$"):
        backends.prepare(value, torch.nn.Identity(), torch.zeros(1, 3, 8, 8), threads=1)  # type: ignore[arg-type]
    with pytest.raises(MnprofError, match="^unknown backend"):
        backends.check_available(value, backends.Device.CPU)  # type: ignore[arg-type]


def test_prepare_refuses_a_member_the_registry_does_not_hold(monkeypatch):
    held = {b: info for b, info in REGISTRY.items() if b is not Backend.ONNXRUNTIME}
    monkeypatch.setattr(registry, "REGISTRY", held)
    monkeypatch.setattr(runners, "prepare_onnxruntime", lambda *a: pytest.fail("sent to onnxruntime"))
    with pytest.raises(MnprofError, match="^unknown backend 'onnxruntime'; accepted: eager, channels_last, fused, "):
        backends.prepare(Backend.ONNXRUNTIME, torch.nn.Identity(), torch.zeros(1, 3, 8, 8), threads=1)


def test_prepare_dispatches_through_the_entry(monkeypatch):
    seen = []
    monkeypatch.setattr(runners, "prepare_fused", lambda info, model, inputs, threads: seen.append(info) or "ran")
    assert backends.prepare("fused", torch.nn.Identity(), torch.zeros(1), threads=2) == "ran"  # type: ignore[arg-type]
    assert seen == [REGISTRY[Backend.FUSED]] and isinstance(seen[0], BackendInfo)


def test_backend_lists_in_errors_and_help_come_from_the_registry():
    with pytest.raises(MnprofError, match=rf"^unknown backend 'tpu'; accepted: {ACCEPTED}$"):
        backends.parse_backends("eager,tpu")
    with pytest.raises(MnprofError, match=rf"^backend list '' is empty or has an empty item; accepted: {ACCEPTED}$"):
        backends.parse_backends("")
    assert backend_info("torch_int8") is REGISTRY[Backend.TORCH_INT8]
    from mnprof.cli.timing_options import BACKEND_HELP

    assert all(f"{b.value} ({info.description}" in BACKEND_HELP for b, info in REGISTRY.items())
    assert "for onnxruntime_int8, bfloat16, float16 and torch_int8, agreeing" in BACKEND_HELP

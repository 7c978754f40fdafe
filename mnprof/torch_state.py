"""Torch's process-wide settings are mnprof's: the ones a measurement depends on, read before the user's code runs
and set back after it (:func:`snapshot`, :func:`restore`), so that no other model is measured under what that
code changed (a factory's ``torch.set_default_dtype(torch.float64)`` would double the bytes of every model
measured after it; a forward's ``torch.set_num_threads(1)`` would time every later model on one thread).

Kept: the default dtype and device, inference and grad mode, autocast (CPU and CUDA), torch's intra-op threads,
deterministic algorithms (and warn-only), cuDNN's and oneDNN's switches, the float32 matmul precision and CUDA's
reduced-precision switches, anomaly mode, global module hooks (``register_module_forward_hook`` and its kin: a
hook runs in every model's forward), and torch function and dispatch modes left entered (a ``with
torch.device(...)`` never left). The inter-op thread count is compared only: torch sets it once per process.
Denormal flushing (``torch.set_flush_denormal``) is kept too, read by a multiplication (torch has no getter).
Not kept: the random state (no figure mnprof measures depends on it).

torch is never imported here: where it is not loaded (``mnprof --help``), there is nothing to keep. A setting this
torch does not have is left out. The functions that read the settings are looked up once, when torch is first
seen (before any user code runs), so that a snapshot costs microseconds (it is taken around every timed call of a
user's model) and code that replaces ``torch.get_num_threads`` afterwards does not blind it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Snapshot", "restore", "snapshot"]

Reader = Callable[[], Any]


@dataclass(frozen=True)
class _Setting:
    name: str  # as a warning names it
    reader: Callable[[Any], Reader]  # torch -> a function that reads the value
    write: Callable[[Any, Any], None] | None  # (torch, value): set it back; None: compared only
    show: Callable[[Any], str] = str
    why_not: str = ""  # why it cannot be set back (write is None)


def _on_off(value: Any) -> str:
    if isinstance(value, tuple):  # cuBLAS's reduced-precision switches: (allowed, split-K allowed)
        return f"{_on_off(value[0])} (split-K {_on_off(value[1])})"
    return "on" if value else "off"


def _device(torch: Any) -> Reader:
    """The device ``torch.set_default_device`` set (None: none set, the CPU); a ``with torch.device(...)`` block
    left entered is a function mode, kept as such."""
    context = getattr(torch, "_GLOBAL_DEVICE_CONTEXT", None)
    if context is None:
        get_default_device = torch.get_default_device
        return lambda: str(get_default_device())

    def read() -> str | None:
        device = getattr(getattr(context, "device_context", None), "device", None)
        return None if device is None else str(device)

    return read


_GUARDS: list[Any] = []  # inference-mode guards entered to set the mode back (torch has no setter): kept alive


def _set_inference(torch: Any, enabled: bool) -> None:
    guard = torch._C._InferenceMode(enabled)
    guard.__enter__()
    _GUARDS.append(guard)  # its exit would set the mode the user's code left


def _pop_modes(length: Callable[[], int], pop: Callable[[], Any], keep: int) -> None:
    while length() > keep:
        pop()


def _backend(path: str, attribute: str, getter: str) -> _Setting:
    """A switch of ``torch.backends.<path>``: read by torch's own C getter ``getter`` (the attribute is a property
    that calls it), set as the attribute."""

    def module(torch: Any) -> Any:
        found = torch.backends
        for part in path.split("."):
            found = getattr(found, part)
        return found

    def reader(torch: Any) -> Reader:
        get = getattr(torch._C, getter, None)
        if get is not None:
            return get  # type: ignore[no-any-return]
        return lambda: getattr(module(torch), attribute)

    return _Setting(
        f"torch.backends.{path}.{attribute}",
        reader,
        lambda torch, value: setattr(module(torch), attribute, value),
        _on_off,
    )


def _autocast(device: str) -> _Setting:
    def reader(torch: Any) -> Reader:
        enabled, dtype = torch.is_autocast_enabled, torch.get_autocast_dtype
        return lambda: (enabled(device), dtype(device))

    return _Setting(
        f"{device} autocast",
        reader,
        lambda torch, value: (torch.set_autocast_enabled(device, value[0]), torch.set_autocast_dtype(device, value[1])),
        lambda value: f"on ({value[1]})" if value[0] else "off",
    )


def _pair(first: str, second: str) -> Callable[[Any], Reader]:
    def reader(torch: Any) -> Reader:
        one, other = getattr(torch, first), getattr(torch, second)
        return lambda: (bool(one()), bool(other()))

    return reader


_HOOKS = (  # torch.nn.modules.module's global hooks, each a dict keyed by its handle's id: every module runs them
    "_global_forward_pre_hooks",
    "_global_forward_hooks",
    "_global_forward_hooks_with_kwargs",
    "_global_forward_hooks_always_called",
    "_global_backward_pre_hooks",
    "_global_backward_hooks",
    "_global_module_registration_hooks",
    "_global_parameter_registration_hooks",
    "_global_buffer_registration_hooks",
)


def _hooks(torch: Any) -> Reader:
    """The ids of the global module hooks registered (``torch.nn.modules.module.register_module_forward_hook``
    and its kin): a hook the user's code leaves runs in every other model's forward."""
    module = torch.nn.modules.module
    tables = [(name, getattr(module, name)) for name in _HOOKS if isinstance(getattr(module, name, None), dict)]
    return lambda: tuple((name, tuple(table)) for name, table in tables)


def _remove_hooks(torch: Any, value: Any) -> None:
    """Remove the global module hooks registered since (those removed cannot be put back: mnprof registers none)."""
    module = torch.nn.modules.module
    for name, kept in value:
        table = getattr(module, name)
        for handle in [handle for handle in table if handle not in kept]:
            table.pop(handle, None)


def _hook_count(value: Any) -> str:
    return f"{sum(len(kept) for _, kept in value)} registered"


def _flush_denormal(torch: Any) -> Reader:
    """Whether denormal numbers are flushed to zero (``torch.set_flush_denormal``, the CPU's FTZ/DAZ bits), which
    torch cannot report: read by multiplying a float32 denormal by one, which gives zero only when flushing."""
    denormal = torch.tensor([1e-39], dtype=torch.float32, device="cpu")
    return lambda: bool(torch.mul(denormal, 1.0).item() == 0.0)


_SETTINGS = (  # in the order they are set back: the device before function modes, inference before grad mode
    _Setting(
        "default dtype", lambda torch: torch.get_default_dtype, lambda torch, value: torch.set_default_dtype(value)
    ),
    _Setting(
        "default device",
        _device,
        lambda torch, value: torch.set_default_device(value),
        lambda value: "cpu (unset)" if value is None else value,
    ),
    _Setting(
        "torch function modes entered",
        lambda torch: torch._C._len_torch_function_stack,
        lambda torch, value: _pop_modes(torch._C._len_torch_function_stack, torch._C._pop_torch_function_stack, value),
    ),
    _Setting(
        "torch dispatch modes entered",
        lambda torch: torch._C._len_torch_dispatch_stack,
        lambda torch, value: _pop_modes(torch._C._len_torch_dispatch_stack, torch._C._pop_torch_dispatch_stack, value),
    ),
    _Setting("inference mode", lambda torch: torch.is_inference_mode_enabled, _set_inference, _on_off),
    _Setting(
        "grad mode", lambda torch: torch.is_grad_enabled, lambda torch, value: torch.set_grad_enabled(value), _on_off
    ),
    _autocast("cpu"),
    _autocast("cuda"),
    _Setting("threads", lambda torch: torch.get_num_threads, lambda torch, value: torch.set_num_threads(value)),
    _Setting(
        "inter-op threads",
        lambda torch: torch.get_num_interop_threads,
        None,
        why_not="torch sets them once per process",
    ),
    _Setting(
        "deterministic algorithms",
        _pair("are_deterministic_algorithms_enabled", "is_deterministic_algorithms_warn_only_enabled"),
        lambda torch, value: torch.use_deterministic_algorithms(value[0], warn_only=value[1]),
        lambda value: ("on (warn only)" if value[1] else "on") if value[0] else "off",
    ),
    _backend("cudnn", "enabled", "_get_cudnn_enabled"),
    _backend("cudnn", "benchmark", "_get_cudnn_benchmark"),
    _backend("cudnn", "deterministic", "_get_cudnn_deterministic"),
    _backend("cudnn", "allow_tf32", "_get_cudnn_allow_tf32"),
    _backend("mkldnn", "enabled", "_get_mkldnn_enabled"),
    _backend("mkldnn", "deterministic", "_get_mkldnn_deterministic"),
    _Setting(
        "float32 matmul precision",
        lambda torch: torch.get_float32_matmul_precision,
        lambda torch, value: torch.set_float32_matmul_precision(value),
    ),
    _backend("cuda.matmul", "allow_tf32", "_get_cublas_allow_tf32"),
    _backend(
        "cuda.matmul",
        "allow_fp16_reduced_precision_reduction",
        "_get_cublas_allow_fp16_reduced_precision_reduction",
    ),
    _backend(
        "cuda.matmul",
        "allow_bf16_reduced_precision_reduction",
        "_get_cublas_allow_bf16_reduced_precision_reduction",
    ),
    _Setting("global module hooks", _hooks, _remove_hooks, _hook_count),
    _Setting("denormal flushing", _flush_denormal, lambda torch, value: torch.set_flush_denormal(value), _on_off),
    _Setting(
        "anomaly mode",
        _pair("is_anomaly_enabled", "is_anomaly_check_nan_enabled"),
        lambda torch, value: torch.set_anomaly_enabled(value[0], value[1]),
        lambda value: ("on (NaN check)" if value[1] else "on") if value[0] else "off",
    ),
)

_MISSING = object()  # a setting this torch does not have, or cannot read now


def _missing() -> object:
    return _MISSING


_bound: tuple[Any, tuple[Reader, ...]] | None = None  # (the torch module, a reader per setting)


def _readers(torch: Any) -> tuple[Reader, ...]:
    global _bound
    if _bound is None or _bound[0] is not torch:
        readers = []
        for setting in _SETTINGS:
            try:
                reader = setting.reader(torch)
                reader()
            except Exception:  # noqa: BLE001 - an older or newer torch without it
                reader = _missing
            readers.append(reader)
        _bound = (torch, tuple(readers))
    return _bound[1]


def _read(read: Reader) -> Any:
    try:
        return read()
    except Exception:  # noqa: BLE001 - unreadable now: compared as missing
        return _MISSING


def _values(torch: Any) -> tuple[Any, ...]:
    readers = _readers(torch)
    try:
        return tuple([read() for read in readers])
    except Exception:  # noqa: BLE001 - one reader failing: the others still count
        return tuple(_read(read) for read in readers)


@dataclass(frozen=True)
class Snapshot:
    """The settings as they were (one value per setting, :data:`_MISSING` where there is none)."""

    values: tuple[Any, ...]


def snapshot() -> Snapshot | None:
    """The settings now; None where torch is not loaded (nothing to keep)."""
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "get_default_dtype"):  # not loaded, or still being imported
        return None
    return Snapshot(_values(torch))


def restore(before: Snapshot | None) -> list[str]:
    """Set back every setting that differs from ``before``; returns what changed, one phrase each (``threads 2 ->
    1``), saying where one could not be set back. Nothing where ``before`` is None (torch was not loaded then)."""
    torch = sys.modules.get("torch")
    if before is None or torch is None or _values(torch) == before.values:
        return []
    changes = []
    for setting, read, was in zip(_SETTINGS, _readers(torch), before.values, strict=True):
        now = _read(read)  # after the settings before it were set back (the device pops its function mode)
        if was is _MISSING or now is _MISSING or now == was:
            continue
        change = f"{setting.name} {setting.show(was)} -> {setting.show(now)}"
        if setting.write is None:
            change += f" (not set back: {setting.why_not})"
        else:
            try:
                setting.write(torch, was)
                if _read(read) != was:
                    change += " (could not be set back)"
            except Exception as error:  # noqa: BLE001 - the user's code may have broken the setter itself
                change += f" (could not be set back: {type(error).__name__})"
        changes.append(change)
    return changes

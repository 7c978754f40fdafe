"""Every runtime mnprof times, and what each is and can do: one :class:`BackendInfo` per :class:`Backend`.

Adding a runtime is one entry in :data:`REGISTRY` (and the function in :mod:`mnprof.runtimes.runners` that builds its
runner). The sets the rest of mnprof asks about (:data:`LOSSY`, :data:`INT8`, :data:`ONNXRUNTIME_POOL`,
:data:`MEMORY_BACKENDS`, :data:`LAYER_BACKENDS`, :data:`ONNX_LAYER_BACKENDS`) are views of it, and so are the
accepted values that ``--help`` and error lines name.

No torch and no measuring code here: the results file's records and the views read it freely. That is why an entry
names its builder (``prepare``) and its dtype by name rather than holding them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from mnprof.errors import MnprofError

__all__ = [
    "INT8",
    "LAYER_BACKENDS",
    "LOSSY",
    "MEMORY_BACKENDS",
    "ONNXRUNTIME_POOL",
    "ONNX_LAYER_BACKENDS",
    "REGISTRY",
    "Backend",
    "BackendInfo",
    "LayerTiming",
    "backend_info",
    "listing",
    "parse_backend",
]


class Device(StrEnum):
    """Where a model runs."""

    CPU = "cpu"
    CUDA = "cuda"


class Backend(StrEnum):
    """Runtimes that run a built model; what each is and can do is its :data:`REGISTRY` entry."""

    EAGER = "eager"
    CHANNELS_LAST = "channels_last"
    FUSED = "fused"
    COMPILE = "compile"
    ONNXRUNTIME = "onnxruntime"
    ONNXRUNTIME_INT8 = "onnxruntime_int8"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    TORCH_INT8 = "torch_int8"


class LayerTiming(StrEnum):
    """How ``mnprof layers`` times a runtime's layers (:mod:`mnprof.timing.layers`)."""

    MODULES = "modules"  # forward hooks or torch.profiler around the PyTorch modules of each layer
    ONNXRUNTIME = "onnxruntime"  # onnxruntime's own profiler, each node attributed to its layer (timing.layer_onnx)


@dataclass(frozen=True)
class BackendInfo:
    """What one runtime is and can do."""

    backend: Backend
    description: str  # one line for people (``mnprof table --help``)
    prepare: str  # the function of mnprof.runtimes.runners that builds its Runner: (info, model, inputs, threads)
    # Its output differs from eager float32 by design: it posts a time on agreement, not equality.
    lossy: bool = False
    int8: bool = False  # integer arithmetic: its rows are a fraction of the integer GEMM's peak, not the float32 one
    onnxruntime_pool: bool = False  # runs in onnxruntime's thread pool (onnxruntime's CPU provider, its version)
    memory: bool = False  # PyTorch's allocator sees all its allocations: ``mnprof memory`` measures it
    channels_last: bool = False  # model and input in channels_last (NHWC) memory format
    dtype: str | None = None  # the reduced precision (a torch dtype's name) of its weights and input; None: float32
    native_needs: str | None = None  # with a dtype: the hardware that computes in it natively, for the refusal
    extra: str | None = None  # the pip extra that brings its optional packages (pip install 'mnprof[extra]')
    modules: tuple[str, ...] = ()  # the Python modules that extra brings, checked before anything is measured
    layers: LayerTiming | None = None  # how ``mnprof layers`` times its layers; None: it does not

    def __post_init__(self) -> None:
        if (self.dtype is None) != (self.native_needs is None):
            raise ValueError(f"{self.backend}: a reduced precision (dtype) goes with what computes it (native_needs)")
        if (self.extra is None) != (not self.modules):
            raise ValueError(f"{self.backend}: an extra goes with the modules it brings")
        if self.int8 and not self.lossy:
            raise ValueError(f"{self.backend}: an int8 runtime is lossy (checked by agreement)")


def _registry(entries: Iterable[BackendInfo]) -> Mapping[Backend, BackendInfo]:
    """The entries keyed by backend, in :class:`Backend`'s order; every member exactly once."""
    entries = tuple(entries)
    counts = {backend: sum(entry.backend is backend for entry in entries) for backend in Backend}
    wrong = {backend.value: count for backend, count in counts.items() if count != 1}
    if wrong or len(entries) != len(Backend):
        raise ValueError(f"every Backend needs exactly one registry entry; entries per backend: {wrong}")
    by_backend = {entry.backend: entry for entry in entries}
    return MappingProxyType({backend: by_backend[backend] for backend in Backend})


REGISTRY: Mapping[Backend, BackendInfo] = _registry(
    (
        BackendInfo(
            Backend.EAGER,
            "the model as built, NCHW, in inference mode; the default",
            prepare="prepare_module",
            memory=True,
            layers=LayerTiming.MODULES,
        ),
        BackendInfo(
            Backend.CHANNELS_LAST,
            "model and input in channels_last memory format, NHWC",
            prepare="prepare_module",
            memory=True,
            channels_last=True,
            layers=LayerTiming.MODULES,
        ),
        BackendInfo(
            Backend.FUSED,
            "BatchNorm folded into the convolutions, channels_last",
            prepare="prepare_fused",
            memory=True,
            channels_last=True,
        ),
        BackendInfo(
            Backend.COMPILE,
            "torch.compile: inductor, frozen weights, static shapes; opt-in: compiling takes tens of seconds per "
            "configuration and batch size, before any timing",
            prepare="prepare_compiled",
        ),
        BackendInfo(
            Backend.ONNXRUNTIME,
            "exported with torch.onnx, run by onnxruntime's CPU provider",
            prepare="prepare_onnxruntime",
            onnxruntime_pool=True,
            layers=LayerTiming.ONNXRUNTIME,
            extra="onnx",
            modules=("onnxruntime", "onnx"),
        ),
        BackendInfo(
            Backend.ONNXRUNTIME_INT8,
            "onnxruntime's model statically quantised: QDQ, per-channel int8 weights, uint8 activations calibrated "
            "on 16 seeded images",
            prepare="prepare_onnxruntime",
            lossy=True,
            int8=True,
            onnxruntime_pool=True,
            layers=LayerTiming.ONNXRUNTIME,
            extra="onnx",
            modules=("onnxruntime", "onnx"),
        ),
        BackendInfo(
            Backend.BFLOAT16,
            "eager PyTorch with weights and input in bfloat16; refused where the hardware would only emulate it",
            prepare="prepare_reduced_precision",
            lossy=True,
            memory=True,
            dtype="bfloat16",
            native_needs="CPUs need AVX-512 BF16 or AMX; GPUs compute capability 8.0 or later",
        ),
        BackendInfo(
            Backend.FLOAT16,
            "eager PyTorch with weights and input in float16; refused where the hardware would only emulate it",
            prepare="prepare_reduced_precision",
            lossy=True,
            memory=True,
            dtype="float16",
            native_needs="CPUs need AVX-512 FP16 or AMX-FP16; GPUs compute capability 5.3 or later",
        ),
        BackendInfo(
            Backend.TORCH_INT8,
            "PyTorch's own static int8: torch.ao.quantization in FX graph mode, oneDNN engine where the CPU has int8 "
            "dot products, else x86, calibrated on the same 16 seeded images",
            prepare="prepare_torch_int8",
            lossy=True,
            int8=True,
        ),
    )
)

# Views of the registry, in Backend's order where they are tuples (the order accepted values are listed in).
LOSSY = frozenset(backend for backend, info in REGISTRY.items() if info.lossy)
INT8 = frozenset(backend for backend, info in REGISTRY.items() if info.int8)
ONNXRUNTIME_POOL = frozenset(backend for backend, info in REGISTRY.items() if info.onnxruntime_pool)
MEMORY_BACKENDS = tuple(backend for backend, info in REGISTRY.items() if info.memory)
LAYER_BACKENDS = tuple(backend for backend, info in REGISTRY.items() if info.layers is not None)
ONNX_LAYER_BACKENDS = tuple(backend for backend, info in REGISTRY.items() if info.layers is LayerTiming.ONNXRUNTIME)


def listing(backends: Iterable[Backend] | None = None, last: str = ", ") -> str:
    """``"eager, channels_last, ..."``: the backends' names (every registered one by default), the last joined by
    ``last`` (``" and "`` in prose)."""
    names = [backend.value for backend in (REGISTRY if backends is None else backends)]
    return last.join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


def parse_backend(value: object) -> Backend:
    """The registered backend named ``value`` (a name or a member); anything else is a one-line error."""
    if isinstance(value, str) and value in REGISTRY:
        return REGISTRY[value].backend  # type: ignore[index]
    shown = value.value if isinstance(value, Backend) else value
    raise MnprofError(f"unknown backend {shown!r}; accepted: {listing()}")


def backend_info(backend: object) -> BackendInfo:
    """``backend``'s registry entry; an unregistered value is a one-line error, never a guess."""
    return REGISTRY[parse_backend(backend)]

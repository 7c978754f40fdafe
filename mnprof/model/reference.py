"""Published numbers: data copied from their sources, labelled with the source, never computed.

Sources:
- the paper: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile
  Vision Applications", arXiv:1704.04861 (2017), Tables 1 to 9;
- TF-slim: tensorflow/models, research/slim/nets/mobilenet_v1.md (1001-class checkpoints);
- TF-slim MobileNetV2: tensorflow/models, research/slim/nets/mobilenet/README.md (1001-class checkpoints,
  with Pixel 1 CPU latencies: phone figures, context for the shape of the trade-off, never this host's);
- MobileNetV3: Howard et al., "Searching for MobileNetV3", arXiv:1905.02244 (ICCV 2019), Table 3 (floating
  point, 224 pixels, Pixel 1 latency) in its final version and, where it differs, its early version; and the same
  TF-slim README's MobileNetV3 checkpoints (float);
- the seed note this project started from (its params / GFLOPS table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "PAPER",
    "PAPER_SOURCE",
    "SEED",
    "SEED_SOURCE",
    "TABLE1",
    "TABLE2",
    "TABLE3",
    "TFSLIM",
    "TFSLIM_SOURCE",
    "TFSLIM_V2",
    "TFSLIM_V2_SOURCE",
    "V3_EARLY_SOURCE",
    "V3_PAPER_SOURCE",
    "V3_PUBLISHED",
    "V3_TFSLIM_SOURCE",
    "Published",
    "SeedEntry",
    "ShareRow",
    "Table1Row",
    "Table3Row",
    "decimals",
    "delta_pct",
    "MILLION",
    "paper_entry",
    "tfslim_entry",
]

MILLION = 1e6  # published MACs and params are printed in millions

PAPER_SOURCE = "paper (Howard et al. 2017)"
TFSLIM_SOURCE = "TF-slim mobilenet_v1.md"
TFSLIM_V2_SOURCE = "TF-slim mobilenet/README.md (MobileNetV2)"
SEED_SOURCE = "seed note"
V3_PAPER_SOURCE = "paper (Howard et al. 2019, arXiv:1905.02244, final version)"
# The paper's first arXiv versions (their abstract: "reducing latency by 20%"), whose Table 3 differs for Small.
V3_EARLY_SOURCE = "paper (Howard et al. 2019, arXiv:1905.02244, early version)"
V3_TFSLIM_SOURCE = "TF-slim mobilenet/README.md (MobileNetV3)"


@dataclass(frozen=True)
class Published:
    """One published row. Numbers are kept as printed (strings would lose nothing; floats lose nothing here)."""

    source: str
    table: str  # "6", "7", ... for the paper; "" elsewhere
    model: str  # the model's name as the source prints it
    alpha: float | None  # None for non-MobileNet models (GoogleNet, VGG 16, ...)
    resolution: int | None
    variant: str  # "standard", "full", "shallow"
    top1: float | None  # ImageNet top-1 accuracy, percent
    macs_m: float | None  # million Mult-Adds (MACs)
    params_m: float | None  # million parameters
    top5: float | None = None
    family: str = "mobilenetv1"
    latency_ms: float | None = None  # published phone latency (TF-slim V2: Pixel 1 CPU), never this host's


def _paper(
    table: str,
    model: str,
    alpha: float | None,
    resolution: int | None,
    top1: float,
    macs_m: float,
    params_m: float,
    variant: str = "standard",
) -> Published:
    return Published(PAPER_SOURCE, table, model, alpha, resolution, variant, top1, macs_m, params_m)


PAPER: tuple[Published, ...] = (
    _paper("4", "Conv MobileNet", 1.0, 224, 71.7, 4866, 29.3, variant="full"),
    _paper("4", "MobileNet", 1.0, 224, 70.6, 569, 4.2),
    _paper("5", "0.75 MobileNet", 0.75, 224, 68.4, 325, 2.6),
    _paper("5", "Shallow MobileNet", 1.0, 224, 65.3, 307, 2.9, variant="shallow"),
    _paper("6", "1.0 MobileNet-224", 1.0, 224, 70.6, 569, 4.2),
    _paper("6", "0.75 MobileNet-224", 0.75, 224, 68.4, 325, 2.6),
    _paper("6", "0.5 MobileNet-224", 0.5, 224, 63.7, 149, 1.3),
    _paper("6", "0.25 MobileNet-224", 0.25, 224, 50.6, 41, 0.5),
    _paper("7", "1.0 MobileNet-224", 1.0, 224, 70.6, 569, 4.2),
    _paper("7", "1.0 MobileNet-192", 1.0, 192, 69.1, 418, 4.2),
    _paper("7", "1.0 MobileNet-160", 1.0, 160, 67.2, 290, 4.2),
    _paper("7", "1.0 MobileNet-128", 1.0, 128, 64.4, 186, 4.2),
    _paper("8", "1.0 MobileNet-224", 1.0, 224, 70.6, 569, 4.2),
    _paper("8", "GoogleNet", None, None, 69.8, 1550, 6.8),
    _paper("8", "VGG 16", None, None, 71.5, 15300, 138),
    _paper("9", "0.50 MobileNet-160", 0.5, 160, 60.2, 76, 1.32),
    _paper("9", "Squeezenet", None, None, 57.5, 1700, 1.25),
    _paper("9", "AlexNet", None, None, 57.2, 720, 60),
)


@dataclass(frozen=True)
class Table1Row:
    """One row of the paper's Table 1 (the body architecture at alpha 1, input 224), as printed.

    Shapes are written as the paper writes them, with ``x`` for its multiplication sign. The two
    rows of the paper's "5x" group carry ``repeat=5``: the pair repeats five times, dw then pw.
    """

    type_stride: str
    filter_shape: str
    input_size: str
    repeat: int = 1


TABLE1: tuple[Table1Row, ...] = (
    Table1Row("Conv / s2", "3x3x3x32", "224x224x3"),
    Table1Row("Conv dw / s1", "3x3x32 dw", "112x112x32"),
    Table1Row("Conv / s1", "1x1x32x64", "112x112x32"),
    Table1Row("Conv dw / s2", "3x3x64 dw", "112x112x64"),
    Table1Row("Conv / s1", "1x1x64x128", "56x56x64"),
    Table1Row("Conv dw / s1", "3x3x128 dw", "56x56x128"),
    Table1Row("Conv / s1", "1x1x128x128", "56x56x128"),
    Table1Row("Conv dw / s2", "3x3x128 dw", "56x56x128"),
    Table1Row("Conv / s1", "1x1x128x256", "28x28x128"),
    Table1Row("Conv dw / s1", "3x3x256 dw", "28x28x256"),
    Table1Row("Conv / s1", "1x1x256x256", "28x28x256"),
    Table1Row("Conv dw / s2", "3x3x256 dw", "28x28x256"),
    Table1Row("Conv / s1", "1x1x256x512", "14x14x256"),
    Table1Row("Conv dw / s1", "3x3x512 dw", "14x14x512", repeat=5),
    Table1Row("Conv / s1", "1x1x512x512", "14x14x512", repeat=5),
    Table1Row("Conv dw / s2", "3x3x512 dw", "14x14x512"),
    Table1Row("Conv / s1", "1x1x512x1024", "7x7x512"),
    Table1Row("Conv dw / s2", "3x3x1024 dw", "7x7x1024"),  # as printed; see mnprof paper's note on Table 1
    Table1Row("Conv / s1", "1x1x1024x1024", "7x7x1024"),
    Table1Row("Avg Pool / s1", "Pool 7x7", "7x7x1024"),
    Table1Row("FC / s1", "1024x1000", "1x1x1024"),
    Table1Row("Softmax / s1", "Classifier", "1x1x1000"),
)


@dataclass(frozen=True)
class ShareRow:
    """One row of the paper's Table 2: a layer type's share of 1.0 MobileNet-224's Mult-Adds and parameters."""

    layer_type: str
    kind: str  # mnprof's LayerKind value for that type
    macs_pct: float
    params_pct: float


TABLE2: tuple[ShareRow, ...] = (
    ShareRow("Conv 1x1", "pointwise", 94.86, 74.59),
    ShareRow("Conv DW 3x3", "depthwise", 3.06, 1.06),
    ShareRow("Conv 3x3", "conv", 1.19, 0.02),
    ShareRow("Fully Connected", "fc", 0.18, 24.33),
)


@dataclass(frozen=True)
class Table3Row:
    """One row of the paper's Table 3: one 14x14x512 layer with a 3x3x512x512 kernel, and its modifications."""

    layer: str
    macs_m: float  # million Mult-Adds
    params_m: float  # million parameters


TABLE3: tuple[Table3Row, ...] = (
    Table3Row("Convolution", 462, 2.36),
    Table3Row("Depthwise Separable Conv", 52.3, 0.27),
    Table3Row("alpha = 0.75", 29.6, 0.15),
    Table3Row("rho = 0.714", 15.1, 0.15),
)


def _tfslim(alpha: float, resolution: int, macs_m: float, params_m: float, top1: float, top5: float) -> Published:
    return Published(
        TFSLIM_SOURCE,
        "",
        f"MobileNet_v1_{alpha:g}_{resolution}",
        alpha,
        resolution,
        "standard",
        top1,
        macs_m,
        params_m,
        top5,
    )


TFSLIM: tuple[Published, ...] = (
    _tfslim(1.0, 224, 569, 4.24, 70.9, 89.9),
    _tfslim(1.0, 192, 418, 4.24, 70.0, 89.2),
    _tfslim(1.0, 160, 291, 4.24, 68.0, 87.7),
    _tfslim(1.0, 128, 186, 4.24, 65.2, 85.8),
    _tfslim(0.75, 224, 317, 2.59, 68.4, 88.2),
    _tfslim(0.75, 192, 233, 2.59, 67.2, 87.3),
    _tfslim(0.75, 160, 162, 2.59, 65.3, 86.0),
    _tfslim(0.75, 128, 104, 2.59, 62.1, 83.9),
    _tfslim(0.5, 224, 150, 1.34, 63.3, 84.9),
    _tfslim(0.5, 192, 110, 1.34, 61.7, 83.6),
    _tfslim(0.5, 160, 77, 1.34, 59.1, 81.9),
    _tfslim(0.5, 128, 49, 1.34, 56.3, 79.4),
    _tfslim(0.25, 224, 41, 0.47, 49.8, 74.2),
    _tfslim(0.25, 192, 34, 0.47, 47.7, 72.3),
    _tfslim(0.25, 160, 21, 0.47, 45.5, 70.3),
    _tfslim(0.25, 128, 14, 0.47, 41.5, 66.3),
)


def _tfslim_v2(
    alpha: float, resolution: int, macs_m: float, params_m: float, top1: float, top5: float, pixel1_ms: float
) -> Published:
    name = f"mobilenet_v2_{alpha:.2f}".rstrip("0") + ("0" if alpha == int(alpha) else "") + f"_{resolution}"
    return Published(TFSLIM_V2_SOURCE, "", name, alpha, resolution, "standard",
                     top1, macs_m, params_m, top5, family="mobilenetv2", latency_ms=pixel1_ms)  # fmt: skip


# The 22 TF-slim MobileNetV2 checkpoints: MACs (M), params (M), top-1 and top-5 %, Pixel 1 CPU ms.
TFSLIM_V2: tuple[Published, ...] = (
    _tfslim_v2(1.4, 224, 582, 6.06, 75.0, 92.5, 138.0),
    _tfslim_v2(1.3, 224, 509, 5.34, 74.4, 92.1, 123.0),
    _tfslim_v2(1.0, 224, 300, 3.47, 71.8, 91.0, 73.8),
    _tfslim_v2(1.0, 192, 221, 3.47, 70.7, 90.1, 55.1),
    _tfslim_v2(1.0, 160, 154, 3.47, 68.8, 89.0, 40.2),
    _tfslim_v2(1.0, 128, 99, 3.47, 65.3, 86.9, 27.6),
    _tfslim_v2(1.0, 96, 56, 3.47, 60.3, 83.2, 17.6),
    _tfslim_v2(0.75, 224, 209, 2.61, 69.8, 89.6, 55.8),
    _tfslim_v2(0.75, 192, 153, 2.61, 68.7, 88.9, 41.6),
    _tfslim_v2(0.75, 160, 107, 2.61, 66.4, 87.3, 30.4),
    _tfslim_v2(0.75, 128, 69, 2.61, 63.2, 85.3, 21.9),
    _tfslim_v2(0.75, 96, 39, 2.61, 58.8, 81.6, 14.2),
    _tfslim_v2(0.5, 224, 97, 1.95, 65.4, 86.4, 28.7),
    _tfslim_v2(0.5, 192, 71, 1.95, 63.9, 85.4, 21.1),
    _tfslim_v2(0.5, 160, 50, 1.95, 61.0, 83.2, 14.9),
    _tfslim_v2(0.5, 128, 32, 1.95, 57.7, 80.8, 9.9),
    _tfslim_v2(0.5, 96, 18, 1.95, 51.2, 75.8, 6.4),
    _tfslim_v2(0.35, 224, 59, 1.66, 60.3, 82.9, 19.7),
    _tfslim_v2(0.35, 192, 43, 1.66, 58.2, 81.2, 14.6),
    _tfslim_v2(0.35, 160, 30, 1.66, 55.7, 79.1, 10.5),
    _tfslim_v2(0.35, 128, 20, 1.66, 50.8, 75.0, 6.9),
    _tfslim_v2(0.35, 96, 11, 1.66, 45.5, 70.4, 4.5),
)


def _v3(
    source: str, family: str, alpha: float, top1: float, macs_m: float, params_m: float, pixel1_ms: float
) -> Published:
    size, width = family.rsplit("-", 1)[1].capitalize(), "1.0" if alpha == 1 else f"{alpha:g}"
    name = f"{size} dm={alpha:g} (float)" if source == V3_TFSLIM_SOURCE else f"V3-{size} {width}"
    name += " (early version)" if source == V3_EARLY_SOURCE else ""
    table = "" if source == V3_TFSLIM_SOURCE else "3"
    return Published(source, table, name, alpha, 224, "standard", top1, macs_m, params_m, None, family, pixel1_ms)


# MobileNetV3 at 224 pixels: top-1 %, million MAdds, million params, Pixel 1 ms (float). Table 3 of the paper's final
# version; the same table in its early version where that differs (MobileNetV3-Small only: its Large rows are the
# final ones); TF-slim's float checkpoints. The final version's Small 0.75 row is not kept here (not verified
# against the paper): that configuration has the early version's and TF-slim's rows.
V3_PUBLISHED: tuple[Published, ...] = (
    _v3(V3_PAPER_SOURCE, "mobilenetv3-large", 1.0, 75.2, 219, 5.4, 51),
    _v3(V3_PAPER_SOURCE, "mobilenetv3-large", 0.75, 73.3, 155, 4.0, 39),
    _v3(V3_PAPER_SOURCE, "mobilenetv3-small", 1.0, 67.4, 56, 2.5, 15.8),
    _v3(V3_EARLY_SOURCE, "mobilenetv3-small", 1.0, 67.4, 66, 2.9, 15.8),
    _v3(V3_EARLY_SOURCE, "mobilenetv3-small", 0.75, 65.4, 44, 2.4, 12.8),
    _v3(V3_TFSLIM_SOURCE, "mobilenetv3-large", 1.0, 75.2, 217, 5.4, 51.2),
    _v3(V3_TFSLIM_SOURCE, "mobilenetv3-large", 0.75, 73.3, 155, 4.0, 39.8),
    _v3(V3_TFSLIM_SOURCE, "mobilenetv3-small", 1.0, 67.5, 66, 2.9, 15.8),
    _v3(V3_TFSLIM_SOURCE, "mobilenetv3-small", 0.75, 65.4, 44, 2.4, 12.8),
)


@dataclass(frozen=True)
class SeedEntry:
    """One row of the seed note's table: params in millions and "GFLOPS" as printed."""

    model: str
    alpha: float
    resolution: int
    params_m: float
    gflops: float
    printed: str  # the GFLOPS value exactly as printed, to know its precision


SEED: tuple[SeedEntry, ...] = (
    SeedEntry("1.0 MobileNet-224", 1.0, 224, 4.24, 1.76, "1.76"),
    SeedEntry("0.75 MobileNet-224", 0.75, 224, 2.59, 1.02, "1.02"),
    SeedEntry("0.50 MobileNet-224", 0.5, 224, 1.34, 0.48, "0.48"),
    SeedEntry("0.25 MobileNet-224", 0.25, 224, 0.47, 0.14, "0.14"),
    SeedEntry("1.0 MobileNet-192", 1.0, 192, 4.24, 1.30, "1.30"),
    SeedEntry("1.0 MobileNet-160", 1.0, 160, 4.24, 0.90, "0.90"),
    SeedEntry("1.0 MobileNet-128", 1.0, 128, 4.24, 0.58, "0.58"),
)


def decimals(value: float) -> int:
    """Decimal places a published number was printed with (569 -> 0, 4.24 -> 2, 1.32 -> 2)."""
    text = repr(float(value))
    whole, _, fraction = text.partition(".")
    return 0 if fraction == "0" else len(fraction)


def _find(
    rows: tuple[Published, ...], alpha: float, resolution: int, tables: tuple[str, ...] = (), family: str = ""
) -> Published | None:
    for row in rows:
        wanted = (not tables or row.table in tables) and (not family or row.family == family)
        if (row.alpha, row.resolution, row.variant) == (alpha, resolution, "standard") and wanted:
            return row
    return None


V3_FAMILIES = ("mobilenetv3-large", "mobilenetv3-small")


def paper_entry(alpha: float, resolution: int, family: str = "mobilenetv1") -> Published | None:
    """The family's paper's row for a standard configuration (MobileNetV1: Tables 6, 7, then 9; MobileNetV3:
    Table 3), if it has one."""
    if family in V3_FAMILIES:
        final = tuple(row for row in V3_PUBLISHED if row.source == V3_PAPER_SOURCE)
        return _find(final, alpha, resolution, ("3",), family)
    return _find(PAPER, alpha, resolution, ("6", "7", "9")) if family == "mobilenetv1" else None


def tfslim_entry(alpha: float, resolution: int, family: str = "mobilenetv1") -> Published | None:
    """TF-slim's row for a configuration of ``family``, if it has one."""
    if family in V3_FAMILIES:
        return _find(V3_PUBLISHED, alpha, resolution, ("",), family)
    return _find(TFSLIM_V2 if family == "mobilenetv2" else TFSLIM, alpha, resolution)


def delta_pct(computed: float, published: float | None) -> float:
    """How far a computed number is from a published one: ``(computed - published) / published`` in percent;
    NaN without a published number (or with 0)."""
    if published is None or published == 0:
        return math.nan
    return (computed - published) / published * 100

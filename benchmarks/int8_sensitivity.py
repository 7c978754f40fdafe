"""Why int8 agreement with the seeded networks stops short of cosine 0.999: the networks' own sensitivity.

    python benchmarks/int8_sensitivity.py [--alpha 1.0,0.25] [--resolution 224,128]

For each configuration, two seeded networks with the same weights:

- ``shipped``: :func:`mnprof.model.seeded.calibrated_model`, what mnprof times (BatchNorm statistics taken on
  random images, then gamma and beta drawn);
- ``variant``: the shipped network's weights, gamma and beta unchanged, with its BatchNorm statistics taken
  again after them, so that eval mode sees the statistics of what it computes (every layer at unit scale).

and for each: the standard deviation of the last BatchNorm's output (the stem's is about 1), the share of the
logits' norm that differs from image to image (the rest is the same for every image), the *noise gain* (the
logits' relative change when the input gets 0.1% of Gaussian noise, divided by 0.1%), and the agreement of
onnxruntime's static int8 (``mnprof.runtimes.quantized``, exactly as ``--backend onnxruntime_int8``) with eager
float32: the mean cosine similarity of the logits over the 32 agreement images. Last, the Spearman rank
correlation of the noise gain with the int8 cosine's shortfall (1 - cosine), over the configurations and over
both networks pooled. Needs the ``[onnx]`` extra; one thread; about a second per network.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from mnprof.model.config import ModelConfig, default_grid, parse_alphas, parse_resolutions
from mnprof.model.seeded import SEED, calibrated_model, fixed_input, seeded_images
from mnprof.runtimes.backends import onnx_export, onnxruntime_session
from mnprof.runtimes.quantized import agreement, quantize_onnx

NOISE = 1e-3  # relative to the input's unit standard deviation


def statistics_after_affine(config: ModelConfig) -> nn.Module:
    """The shipped network with its BatchNorm statistics taken again, on 4 seeded images, after gamma and beta."""
    model = calibrated_model(config)
    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        model(seeded_images(config.resolution, 4, SEED + 3000))
    for norm in norms:
        norm.momentum = 0.1
    return model.eval()


def sensitivity(model: nn.Module, resolution: int) -> tuple[float, float, float]:
    """(last BatchNorm output's std, image-dependent share of the logits' norm, noise gain) on 16 seeded images."""
    images = seeded_images(resolution, 16, 77)
    noise = NOISE * torch.randn(images.shape, generator=torch.Generator().manual_seed(9))
    last: list[float] = []
    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    hook = norms[-1].register_forward_hook(lambda module, args, out: last.append(float(out.std())))
    with torch.inference_mode():
        clean = model(images).double()
        hook.remove()
        noisy = model(images + noise).double()
    varying = float((clean - clean.mean(0)).norm() / clean.norm())
    gain = float(((noisy - clean).norm(dim=1) / clean.norm(dim=1)).mean()) / NOISE
    return last[0], varying, gain


def int8_cosine(model: nn.Module, config: ModelConfig) -> float:
    """onnxruntime static int8's mean cosine with eager float32, as the onnxruntime_int8 runtime measures it."""
    inputs = fixed_input(config, 1)
    quantized, _ = quantize_onnx(onnx_export(model, inputs), config.resolution, 1)
    session = onnxruntime_session(quantized, 1)

    def infer(batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"x": batch.numpy()})[0])

    with torch.inference_mode():
        reference = model(inputs)
    return agreement(infer, model, infer(inputs), reference, 1, config.resolution).cosine


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(values: list[float]) -> torch.Tensor:
        order = sorted(range(len(values)), key=values.__getitem__)
        result = torch.empty(len(values), dtype=torch.float64)
        result[order] = torch.arange(len(values), dtype=torch.float64)
        return result

    return float(torch.corrcoef(torch.stack([ranks(a), ranks(b)]))[0, 1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alpha", default=None, help="comma-separated width multipliers [default: the paper's 16]")
    parser.add_argument("--resolution", default=None, help="comma-separated resolutions [default: the paper's 16]")
    args = parser.parse_args()
    configs = default_grid()
    if args.alpha or args.resolution:
        alphas = parse_alphas(args.alpha) if args.alpha else sorted({c.alpha for c in configs}, reverse=True)
        sizes = parse_resolutions(args.resolution) if args.resolution else sorted({c.resolution for c in configs})[::-1]
        configs = [ModelConfig(alpha, size) for alpha in alphas for size in sizes]
    torch.set_num_threads(1)
    gains: dict[str, list[float]] = {"shipped": [], "variant": []}
    shortfalls: dict[str, list[float]] = {"shipped": [], "variant": []}
    print("config    network  last std  varying  noise gain  int8 cosine")
    for config in configs:
        for name, make in (("shipped", calibrated_model), ("variant", statistics_after_affine)):
            model = make(config)
            std, varying, gain = sensitivity(model, config.resolution)
            cosine = int8_cosine(model, config)
            gains[name].append(gain)
            shortfalls[name].append(1 - cosine)
            print(f"{config.id:<9} {name:<8} {std:8.2f}  {varying:7.3f}  {gain:9.1f}x  {cosine:11.5f}", flush=True)
    if len(configs) > 2:
        for name in gains:
            rho = spearman(gains[name], shortfalls[name])
            print(f"{name}: Spearman(noise gain, 1 - int8 cosine) = {rho:.3f} over {len(configs)} configurations")
        rho = spearman(gains["shipped"] + gains["variant"], shortfalls["shipped"] + shortfalls["variant"])
        print(f"both networks pooled: {rho:.3f} over {2 * len(configs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

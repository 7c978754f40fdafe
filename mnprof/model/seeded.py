"""The one seeded preparation of a model and its input for timing: the same weights and images in every run."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from mnprof.model.config import ModelConfig
from mnprof.model.networks import build_model
from mnprof.user_code import user_code

__all__ = ["SEED", "calibrated_model", "fixed_input", "seeded_images"]

SEED = 0


def calibrated_model(config: ModelConfig, seed: int = SEED) -> nn.Module:
    """The model to time: seeded weights, BatchNorm statistics calibrated, random affine; eval mode.

    A freshly initialised MobileNetV1 shrinks its activations layer by layer (to about 1e-10 at the
    last block), so its output is the classifier's bias whatever the convolutions compute, and an
    output check could not tell a wrong runtime from a right one. Calibrating each BatchNorm's running
    statistics on random images, then drawing gamma and beta at random, keeps every activation from
    vanishing; the cost of a forward pass does not depend on the values.

    It is not a trained network (``benchmarks/int8_sensitivity.py`` measures what follows). Its
    statistics are taken before gamma and beta are drawn, so in eval mode each block's input is off
    its statistics and the scale grows block by block (standard deviation about 1 after the stem, 11
    to 64 after the last block), and only 10 to 22% of the logits' norm differs from image to image.
    Taking the statistics again after gamma and beta keeps every layer at unit scale, but that random
    network is chaotic: 0.1% of noise on the input moves its logits by 2.6 to 4.3% (this one's by 0.1
    to 0.6%). Lossy runtimes' agreement follows that sensitivity, not the runtime. Kept as is: timing
    does not depend on the values, and the output check still tells a wrong runtime from a right one.
    The statistics are summed on one thread, so the model is the same whatever the caller's count.
    """
    fence = nullcontext() if config.builtin else user_code(f"model {config.family} at {config.id}: calibration failed:")
    with torch.random.fork_rng(devices=[]), fence:
        torch.manual_seed(seed)
        model = build_model(config)
        norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
        for norm in norms:
            if norm.track_running_stats:
                norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the calibration batch
        model.train()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the statistics summed in one order, whatever the caller's thread count
        try:
            with torch.no_grad():
                model(torch.randn(4, 3, config.resolution, config.resolution))
        finally:
            torch.set_num_threads(threads)
        with torch.no_grad():
            for norm in norms:
                norm.momentum = 0.1
                if norm.affine:  # BatchNorm2d(affine=False) has no gamma and beta to draw
                    norm.weight.uniform_(0.5, 1.5)
                    norm.bias.uniform_(-0.2, 0.2)
        model.eval()
    return model


def fixed_input(config: ModelConfig, batch_size: int, seed: int = SEED) -> torch.Tensor:
    """The input every backend is timed and checked on: seeded standard normal images, NCHW float32."""
    return seeded_images(config.resolution, batch_size, seed)


def seeded_images(resolution: int, batch_size: int, seed: int = SEED) -> torch.Tensor:
    """``batch_size`` seeded standard normal images of ``resolution`` x ``resolution`` pixels, NCHW float32
    (also for models mnprof did not build, such as a user's factory in ``mnprof check``)."""
    generator = torch.Generator().manual_seed(seed + 1)
    return torch.randn(batch_size, 3, resolution, resolution, generator=generator)

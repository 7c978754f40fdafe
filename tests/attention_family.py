"""A small user family with attention, for the traced count of products of two tensors.

A 4x4 stem of stride 4 turns the image into tokens (one per output position, ``width`` channels each); then every
way mnprof counts attention: a hand-written single-head attention (``nn.Linear`` Q, K, V; ``q @ k^T``, softmax,
``@ v``), the same scores through ``torch.bmm`` and ``torch.baddbmm``, an ``einsum`` product,
``scaled_dot_product_attention`` over ``heads`` heads, and ``nn.MultiheadAttention`` (``batch_first=False``: the
path fvcore and FlopCounterMode see operator by operator); then a global pool and a classifier.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

HEADS = 4


class Attention(nn.Module):
    def __init__(self, alpha: float, num_classes: int) -> None:
        super().__init__()
        width = max(HEADS, int(16 * alpha) // HEADS * HEADS)
        self.width = width
        self.stem = nn.Sequential(nn.Conv2d(3, width, 4, 4, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.q, self.k, self.v = (nn.Linear(width, width) for _ in range(3))
        self.mha = nn.MultiheadAttention(width, HEADS)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stem(x)
        n, c, h, w = features.shape
        tokens = features.flatten(2).transpose(1, 2).contiguous()  # (N, L, C)
        length = tokens.shape[1]  # read, not computed: fvcore's trace records h * w as an aten::mul
        q, k, v = self.q(tokens), self.k(tokens), self.v(tokens)
        weights = (q @ k.transpose(1, 2)).softmax(-1)  # matmul: (N, L, C) @ (N, C, L)
        y = weights @ v
        y = y + torch.bmm(weights, v)
        y = y + torch.baddbmm(y, weights, v)
        y = y + torch.einsum("nlm,nmc->nlc", weights, v)
        heads = y.view(n, length, HEADS, c // HEADS).transpose(1, 2)  # (N, heads, L, C / heads)
        y = y + F.scaled_dot_product_attention(heads, heads, heads).transpose(1, 2).reshape(n, length, c)
        sequence = y.transpose(0, 1)  # (L, N, C): batch_first=False
        y = y + self.mha(sequence, sequence, sequence)[0].transpose(0, 1)
        pooled = self.pool(y.transpose(1, 2).reshape(n, c, h, w))
        return self.fc(torch.flatten(pooled, 1))


def attention(alpha: float, num_classes: int) -> nn.Module:
    return Attention(alpha, num_classes)


class FusedAttention(nn.Module):
    """``nn.MultiheadAttention`` with ``batch_first=True`` on one tensor (self-attention): in inference PyTorch runs
    its fused kernel, which fvcore and FlopCounterMode do not count."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, 4)
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.stem(x).flatten(2).transpose(1, 2)  # (N, L, C)
        return self.fc(self.mha(tokens, tokens, tokens, need_weights=False)[0][:, 0])


def fused(alpha: float, num_classes: int) -> nn.Module:
    return FusedAttention(num_classes)

"""Benchmark: conversion time of a ~1M-parameter CNN (target: under one second).

Run ``python benchmarks/bench_convert.py``. Conversion = private copy, ``torch.fx`` trace, one
example pass for shapes, graph construction and the verification against the original model
(float32, CPU).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from sknn_explain.convert import convert


def make_cnn() -> nn.Module:
    torch.manual_seed(0)

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(3, 32), *block(32, 64), *block(64, 128), nn.Dropout(0.2),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128 * 16, 384), nn.ReLU(),
        nn.Linear(384, 10), nn.Softmax(dim=1),
    ).eval()


def main(repeats: int = 5) -> float:
    model = make_cnn()
    n_params = sum(p.numel() for p in model.parameters())
    convert(model, input_shape=(3, 32, 32))  # warm-up (imports, first fx trace)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        graph = convert(model, input_shape=(3, 32, 32))
        times.append(time.perf_counter() - start)
    best = min(times)
    print(f"CNN with {n_params:,} parameters, {len(graph.nodes)} graph nodes, input (3, 32, 32)")
    print(f"conversion (copy + trace + shapes + build + verify): best {best * 1000:.1f} ms, "
          f"median {sorted(times)[len(times) // 2] * 1000:.1f} ms over {repeats} runs")
    return best


if __name__ == "__main__":
    main()

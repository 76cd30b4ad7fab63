"""The benchmark models and their data, at quick, standard and full sizes.

Every model is a plain ``nn.Sequential`` or small ``nn.Module`` with random (seeded) weights
in eval mode, built so that every peer can hook it: no in-place ReLUs, no module used twice
(captum's DeepLift and zennit's hooks need one module per use), residual sums written as
``a + b`` (the peer copy for zennit routes them through ``zennit.layer.Sum``, see
``peers.zennit_copy``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Case:
    """A model with its explained rows ``X``, reference rows ``X_ref`` and sizes."""

    name: str
    model: nn.Module
    X: torch.Tensor
    X_ref: torch.Tensor
    n_out: int
    n_steps: int  # steps / noise samples / references for the path methods
    tabular: bool  # KernelSHAP and LIME run on tabular models only
    quick: bool = False
    full: bool = False

    @property
    def outputs(self) -> list[int]:
        """The output counts benchmarked: 1, 10 and all (deduplicated)."""
        return sorted({1, min(10, self.n_out), self.n_out})


def mlp(widths: list[int]) -> nn.Sequential:
    """Dense ReLU network ``widths[0] -> ... -> widths[-1]``."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def small_cnn(n_out: int = 10) -> nn.Sequential:
    """The CNN of ``bench_gradient.py``: 3x32x32 -> two conv/pool stages -> 64 -> n_out."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, n_out),
    )


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the identity, then ReLU (ResNet's BasicBlock)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU()
        #: ``None``: ``branch + x``; the zennit copy sets a ``zennit.layer.Sum`` here, which
        #: sums ``stack([branch, x], -1)`` so that a rule can be registered on the merge
        self.merge: nn.Module | None = None

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merge is None:
            return self.relu2(self.branch(x) + x)
        return self.relu2(self.merge(torch.stack([self.branch(x), x], dim=-1)))


class SmallResNet(nn.Module):
    """Stem conv-BN-ReLU, two residual blocks with a strided conv between, avg-pool, linear."""

    def __init__(self, n_out: int = 10, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width),
                                  nn.ReLU())
        self.block1 = ResidualBlock(width)
        self.down = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
                                  nn.BatchNorm2d(2 * width), nn.ReLU())
        self.block2 = ResidualBlock(2 * width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block2(self.down(self.block1(self.stem(x))))
        return self.fc(self.flatten(self.pool(h)))


def signal_cnn(n_out: int = 10, channels: int = 4) -> nn.Sequential:
    """1D-conv signal model: ``channels x 256`` -> three conv/pool stages -> n_out."""
    return nn.Sequential(
        nn.Conv1d(channels, 16, 7, padding=3), nn.ReLU(), nn.MaxPool1d(4),
        nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool1d(4),
        nn.Conv1d(32, 32, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, n_out),
    )


def large_cnn(n_out: int = 100) -> nn.Sequential:
    """Larger image CNN: 3x64x64 -> four conv/pool stages -> 256 -> 100 classes."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128 * 4 * 4, 256), nn.ReLU(), nn.Linear(256, n_out),
    )


def _randomise_batchnorm(model: nn.Module) -> None:
    """Non-trivial running statistics and affine parameters, so BatchNorm is not the identity."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))


#: name -> (builder, input shape, n_out, rows full, rows quick, steps full, steps quick, tabular)
SPECS = {
    "MLP 100-256-256-10": (lambda: mlp([100, 256, 256, 10]), (100,), 10, 1000, 50, 20, 4, True),
    "wide MLP 200-3x512-10": (lambda: mlp([200, 512, 512, 512, 10]), (200,), 10, 1000, 50,
                              20, 4, True),
    "CNN 3x32x32": (small_cnn, (3, 32, 32), 10, 64, 4, 20, 4, False),
    "ResNet 3x24x24 (BN, residual)": (SmallResNet, (3, 24, 24), 10, 16, 2, 20, 4, False),
    "signal 1D-CNN 4x256": (signal_cnn, (4, 256), 10, 128, 4, 20, 4, False),
    "CNN 3x64x64, 100 classes": (large_cnn, (3, 64, 64), 100, 4, 1, 8, 2, False),
}


#: the default sizes (rows, steps): the whole suite in under 10 minutes on 2 idle cores;
#: ``--full`` runs the rows and steps of :data:`SPECS` (the issue's scale, about 45 minutes:
#: the peers' per-target loops over 100 outputs take minutes per cell)
STANDARD = {
    "MLP 100-256-256-10": (500, 20),
    "wide MLP 200-3x512-10": (250, 20),
    "CNN 3x32x32": (16, 20),
    "ResNet 3x24x24 (BN, residual)": (8, 20),
    "signal 1D-CNN 4x256": (32, 20),
    "CNN 3x64x64, 100 classes": (2, 4),
}
#: reference rows at the standard size (default: between 4 and 32): the 100-class CNN's
#: DeepSHAP peers run every image x reference x 100 targets
STANDARD_REFS = {"CNN 3x64x64, 100 classes": 2}


def make_case(name: str, quick: bool = False, seed: int = 0, full: bool = False) -> Case:
    """Build the model ``name`` of :data:`SPECS` with its data (seeded), at the quick, the
    standard (:data:`STANDARD`) or the full size."""
    build, shape, n_out, rows, rows_quick, steps, steps_quick, tabular = SPECS[name]
    torch.manual_seed(seed)
    model = build()
    _randomise_batchnorm(model)
    model.eval()
    if quick:
        n, steps = rows_quick, steps_quick
    elif not full:
        n, steps = STANDARD[name]
    else:
        n = rows
    X = torch.randn(n, *shape)
    n_ref = STANDARD_REFS.get(name) if not (quick or full) else None
    X_ref = torch.randn(n_ref or max(4, min(32, n)), *shape)
    return Case(name, model, X, X_ref, n_out, steps, tabular, quick, full)

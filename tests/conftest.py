"""Shared fixtures of the test suite.

The factories behind them live in helper modules with one job each, importable from any test
module (this directory is on ``sys.path`` because it holds this conftest):

- ``_torch_models.py``: seeded torch models (``mlp``, ``cnn``, ``cnn1d``, ``TwoInput``) and
  ``snapshot`` / ``assert_unchanged`` for model safety;
- ``_graphs.py``: hand-built Graphs independent of the converter (``sequential_graph``,
  ``ResidualNet``, ``ConcatNet``, ``odd_pooling_graph``);
- ``_explainers.py``: the catalogue of every explainer class with cheap arguments;
- ``_estimators.py``: ``quiet_fit`` for scikit-learn estimators.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _explainers import all_explainers, explainer_id
from _graphs import ResidualNet
from _torch_models import TwoInput, cnn, mlp


@pytest.fixture
def mlp_model() -> torch.nn.Module:
    """The default MLP: 5 features, 10 outputs, ReLU."""
    return mlp()


@pytest.fixture
def cnn_model() -> torch.nn.Module:
    """The default CNN on (3, 8, 8) images, 10 outputs."""
    return cnn()


@pytest.fixture
def batchnorm_cnn_model() -> torch.nn.Module:
    """The default CNN with an eval-mode BatchNorm after its first convolution."""
    return cnn(batchnorm=True)


@pytest.fixture
def residual_model() -> torch.nn.Module:
    """An MLP with a skip connection (and its hand-built graph, ``.graph()``)."""
    return ResidualNet()


@pytest.fixture
def multi_input_model() -> torch.nn.Module:
    """Image + tabular inputs, two output layers."""
    return TwoInput()


@pytest.fixture
def tabular_X() -> np.ndarray:
    """20 standard-normal rows of 5 features (seeded)."""
    return np.random.default_rng(0).normal(size=(20, 5))


@pytest.fixture
def image_X() -> torch.Tensor:
    """4 standard-normal (3, 8, 8) images (seeded)."""
    return torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.fixture(params=all_explainers(), ids=explainer_id)
def any_explainer(request):
    """Each explainer class of the catalogue in turn (cheap, unfitted instances)."""
    return request.param

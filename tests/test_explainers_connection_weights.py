"""Connection Weights against products of the weight matrices and a linearised Jacobian."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from _graphs import ConcatNet, ResidualNet
from _torch_models import assert_unchanged, cnn, mlp, snapshot
from torch import nn

from sknn_explain.explainers.connection_weights import ConnectionWeights


def _w(layer: nn.Linear) -> np.ndarray:
    return layer.weight.detach().numpy()


def test_global_equals_product_of_weight_matrices():
    model = mlp(act=nn.Tanh, batchnorm=False, seed=3).double()
    lin = [m for m in model if isinstance(m, nn.Linear)]
    product = (_w(lin[2]) @ _w(lin[1]) @ _w(lin[0])).T  # (in, out)
    res = ConnectionWeights(dtype="double").fit(model).explain()
    assert res.values.shape == (1, 5, 10)
    np.testing.assert_allclose(res.values[0], product, rtol=1e-12, atol=1e-14)
    assert np.isnan(res.predictions).all() and res.decomp_goal is None
    assert np.isnan(res.inputs).all()
    # a column selection picks the same columns
    sub = ConnectionWeights(dtype="double").fit(model).explain(output_idx=[7, 2])
    np.testing.assert_allclose(sub.values[0], product[:, [7, 2]], rtol=1e-12)


def test_batchnorm_scale_enters_the_product():
    model = mlp(batchnorm=True, seed=4).double()
    lin = [m for m in model if isinstance(m, nn.Linear)]
    bns = [m for m in model if isinstance(m, nn.BatchNorm1d)]
    scales = [(b.weight / torch.sqrt(b.running_var + b.eps)).detach().numpy() for b in bns]
    product = (_w(lin[2]) @ np.diag(scales[1]) @ _w(lin[1]) @ np.diag(scales[0])
               @ _w(lin[0])).T
    res = ConnectionWeights(dtype="double").fit(model).explain()
    np.testing.assert_allclose(res.values[0], product, rtol=1e-12, atol=1e-14)


def test_local_variants():
    model = mlp(seed=5).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    glob = ConnectionWeights(dtype="double").fit(model).explain().values
    same = ConnectionWeights(dtype="double").fit(model).explain(x)
    np.testing.assert_allclose(same.values, np.broadcast_to(glob, (4, 5, 10)))
    np.testing.assert_allclose(same.predictions, model(x).detach().numpy(), atol=1e-12)
    local = ConnectionWeights(times_input=True, dtype="double").fit(model).explain(x)
    np.testing.assert_allclose(local.values, glob * x.numpy()[:, :, None], atol=1e-14)
    # pandas input keeps the names; the global result uses the fitted names
    df = pd.DataFrame(x.numpy(), columns=list("abcde"))
    cw = ConnectionWeights(dtype="double").fit(model, df)
    assert cw.explain().to_frame()["feature"].cat.categories.tolist() == list("abcde")


def test_residual_paths_add_up():
    model = ResidualNet().double()
    w1, w2, w3, wo = (_w(m) for m in (model.l1, model.l2, model.l3, model.out))
    expected = (wo @ (w2 + w3) @ w1).T
    res = ConnectionWeights(dtype="double").fit(model).explain()
    np.testing.assert_allclose(res.values[0], expected, rtol=1e-12, atol=1e-14)


def test_two_inputs_two_outputs():
    model = ConcatNet().double()
    cw = ConnectionWeights(dtype="double").fit(model)  # signal input: shape unknown until data
    with pytest.raises(ValueError, match="input shape is unknown"):
        cw.explain()
    cw.explain([torch.randn(2, 5), torch.randn(2, 2, 6)])
    res = cw.explain(output_idx=[[0, 2], [1]])
    assert len(res.raw_values) == 2
    wt, wm = _w(model.t1), _w(model.mix)
    for layer, (head, idx) in enumerate(((model.heads[0], [0, 2]), (model.heads[1], [1]))):
        tab = (_w(head)[idx] @ wm[:, :6] @ wt).T
        np.testing.assert_allclose(res.raw_values[layer][0][0], tab, rtol=1e-12, atol=1e-14)
        assert res.raw_values[layer][1].shape == (1, 2, 6, len(idx))


def test_cnn_equals_jacobian_of_the_linearised_network():
    """Activations -> identity, biases -> 0, max pooling -> average pooling."""
    model = cnn(n_out=3, batchnorm=True).double()
    lin = copy.deepcopy(model)
    for i, m in enumerate(lin):
        if isinstance(m, (nn.ReLU, nn.Tanh)):
            lin[i] = nn.Identity()
        elif isinstance(m, nn.MaxPool2d):
            lin[i] = nn.AvgPool2d(m.kernel_size, m.stride)
        elif isinstance(m, nn.BatchNorm2d):
            m.bias.data.copy_(m.running_mean * m.weight / torch.sqrt(m.running_var + m.eps))
        elif getattr(m, "bias", None) is not None:
            m.bias.data.zero_()
    jac = torch.autograd.functional.jacobian(lambda t: lin(t)[0], torch.zeros(1, 3, 8, 8,
                                             dtype=torch.float64))  # (3, 1, 3, 8, 8)
    expected = jac[:, 0].permute(1, 2, 3, 0).numpy()
    res = ConnectionWeights(dtype="double").fit(model, torch.zeros(1, 3, 8, 8)).explain()
    np.testing.assert_allclose(res.values[0], expected, rtol=1e-10, atol=1e-14)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    local = ConnectionWeights(times_input=True, dtype="double").fit(model).explain(x)
    np.testing.assert_allclose(local.values, expected[None] * x.numpy()[..., None], atol=1e-13)


def test_channels_last_and_pickle():
    model = cnn(n_out=2)
    before = snapshot(model)
    cw = ConnectionWeights(channels_first=False).fit(model, np.zeros((1, 8, 8, 3)))
    res = cw.explain()
    assert res.values.shape == (1, 8, 8, 3, 2)
    assert_unchanged(model, before)
    again = pickle.loads(pickle.dumps(cw)).explain()
    np.testing.assert_array_equal(res.values, again.values)


def test_errors():
    model = cnn(n_out=2)
    with pytest.raises(ValueError, match="needs data"):
        ConnectionWeights(times_input=True).fit(model, torch.zeros(1, 3, 8, 8)).explain()
    with pytest.raises(ValueError, match="input shape is unknown"):
        ConnectionWeights().fit(model).explain()
    with pytest.raises(TypeError, match="'times_input' parameter of ConnectionWeights must be"):
        ConnectionWeights(times_input="no").fit(mlp())

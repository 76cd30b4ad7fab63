"""LSTM / GRU / Elman RNN (tanh, relu) classifiers (float sequences ``(n, T, F)``) in the layer
graph (issue #12).

Conversion exact against the module, the gradient family against captum on the module,
DeepLift / DeepSHAP summation-to-delta, LRP-LSTM against a slow per-time-step reference
written from Arras et al. (2017), conservation of a bias-free network, refusals, and the
user's model left untouched.
"""

from __future__ import annotations

import copy
import functools
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from sknn_explain import (
    LRP,
    ConnectionWeights,
    DeepLift,
    DeepSHAP,
    Gradient,
    IntegratedGradients,
)
from sknn_explain.convert import UnsupportedLayerError, convert
from sknn_explain.layers import Gather, Recurrent

T, F, H = 5, 3, 4


class SeqClassifier(nn.Module):
    """A recurrent encoder and a linear head on the last output step or on ``h_n[-1]``."""

    def __init__(self, cell=nn.LSTM, batch_first=True, bidirectional=False, num_layers=1,
                 bias=True, read="last", seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.lstm, self.batch_first, self.read = cell is nn.LSTM, batch_first, read
        self.rnn = cell(F, H, num_layers=num_layers, bidirectional=bidirectional,
                        batch_first=batch_first, bias=bias)
        width = H * (2 if bidirectional and read == "last" else 1)
        self.head = nn.Linear(width, 3, bias=bias)

    def forward(self, x):
        if not self.batch_first:
            x = x.transpose(0, 1)  # the model takes (n, T, F), the module (T, n, F)
        out, state = self.rnn(x)
        if self.read == "last":
            return self.head(out[:, -1] if self.batch_first else out[-1])
        h_n = state[0] if self.lstm else state
        return self.head(h_n[-1])


VARIANTS = [  # (batch_first, bidirectional, num_layers, read)
    (True, False, 1, "last"), (True, True, 2, "last"), (False, True, 2, "h_n"),
    (False, False, 2, "last"), (True, True, 1, "h_n"),
]
RNNRelu = functools.partial(nn.RNN, nonlinearity="relu")
CELLS = [nn.LSTM, nn.GRU, pytest.param(nn.RNN, id="RNN-tanh"),
         pytest.param(RNNRelu, id="RNN-relu")]


def _x(n=4, seed=1):
    return torch.randn(n, T, F, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():  # the "axis 1 is time" note of batch-first RNNs
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kwargs)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_conversion_is_exact_against_the_module(cell, variant):
    bf, bi, layers, read = variant
    model = SeqClassifier(cell, bf, bi, layers, read=read)
    graph = convert(model, input_shape=(T, F), dtype="double")
    assert sum(isinstance(n.layer, Recurrent) for n in graph.nodes) == 1
    assert any(isinstance(n.layer, Gather) for n in graph.nodes)
    x = _x()
    with torch.no_grad():
        expected = copy.deepcopy(model).double()(x)
        got = graph(x)[0]
    assert (got - expected).abs().max().item() < 1e-10


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_family_on_the_graph_equals_captum_on_the_module(cell):
    from captum.attr import IntegratedGradients as CaptumIG
    from captum.attr import Saliency

    model = SeqClassifier(cell, True, True, 2)
    x = _x()
    grad = _quiet(lambda: Gradient(dtype="double").fit(model, x))
    assert grad.model_.converted  # explained on the converted graph, not the module
    ours = _quiet(grad.explain, x, output_idx=[0, 2]).values
    module = copy.deepcopy(model).double()
    for j, k in enumerate([0, 2]):
        sal = Saliency(module).attribute(x.clone(), target=k, abs=False)
        np.testing.assert_allclose(ours[..., j], sal.numpy(), atol=1e-10)
    base = torch.zeros(1, T, F, dtype=torch.float64)
    ig = _quiet(lambda: IntegratedGradients(n=16, dtype="double").fit(model, base)
                .explain(x, output_idx=[1]))
    ref = CaptumIG(module).attribute(x.clone(), base, target=1, n_steps=16,
                                     method="riemann_right")
    np.testing.assert_allclose(ig.values[..., 0], ref.numpy(), atol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("variant", [(True, True, 2, "last"), (False, False, 2, "h_n")])
def test_deeplift_and_deepshap_sum_to_delta(cell, variant):
    bf, bi, layers, read = variant
    model = SeqClassifier(cell, bf, bi, layers, read=read)
    x, ref = _x(4, 1), _x(3, 2)
    for explainer, fit_ref in ((DeepLift(dtype="double"), ref[:1]),
                               (DeepLift(rule_name="reveal_cancel", dtype="double"), ref[:1]),
                               (DeepSHAP(dtype="double"), ref)):
        res = _quiet(lambda e=explainer, r=fit_ref: e.fit(model, r).explain(x))
        total = res.values.reshape(4, -1, 3).sum(1)
        assert np.abs(total - res.decomp_goal).max() < 1e-8
        assert np.abs(res.decomp_goal).max() > 1e-3  # a real difference was decomposed


def _stab(z, eps):
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def _lrp_lstm_reference(model, x, k, eps):
    """Arras et al. (2017), LRP-LSTM for one sample, a one-layer LSTM read at h_n: a plain
    loop over time steps in numpy (relevance of the head by the epsilon rule)."""
    p = {n: t.detach().double().numpy() for n, t in model.named_parameters()}
    w_ih, w_hh = p["rnn.weight_ih_l0"], p["rnn.weight_hh_l0"]
    b = p["rnn.bias_ih_l0"] + p["rnn.bias_hh_l0"]
    h, c = np.zeros(H), np.zeros(H)
    hs, cs, gates, pre_g = [h], [c], [], []
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for t in range(T):
        z = w_ih @ x[t] + w_hh @ h + b
        i, f, g, o = sig(z[:H]), sig(z[H:2 * H]), np.tanh(z[2 * H:3 * H]), sig(z[3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h), cs.append(c), gates.append((i, f, g, o)), pre_g.append(z[2 * H:3 * H])
    w, bh = p["head.weight"], p["head.bias"]
    y = w @ h + bh
    r_out = np.zeros(3)
    r_out[k] = y[k]
    r_h = h * (w.T @ (r_out / _stab(y, eps)))
    r_c = np.zeros(H)
    r_x = np.zeros((T, F))
    for t in reversed(range(T)):
        i, f, g, o = gates[t]
        r_c = r_c + r_h  # h_t = o * tanh(c_t): the gate o gets nothing
        den = _stab(cs[t + 1], eps)
        r_c_prev = f * cs[t] / den * r_c  # c_t = f * c_prev + i * g
        r_g = i * g / den * r_c
        s = r_g / _stab(pre_g[t], eps)  # z_g = W_ig x_t + W_hg h_prev + b
        r_x[t] = x[t] * (w_ih[2 * H:3 * H].T @ s)
        r_h = hs[t] * (w_hh[2 * H:3 * H].T @ s)
        r_c = r_c_prev
    return r_x


def test_lrp_lstm_matches_a_reference_written_from_arras_et_al():
    model = SeqClassifier(nn.LSTM, True, False, 1, read="h_n")
    x = _x(3)
    res = _quiet(lambda: LRP(rule_name="epsilon", rule_param=0.01, dtype="double")
                 .fit(model, x).explain(x, output_idx=[0, 1, 2]))
    for s in range(3):
        for k in range(3):
            ref = _lrp_lstm_reference(model, x[s].numpy(), k, 0.01)
            np.testing.assert_allclose(res.values[s, ..., k], ref, atol=1e-12)


def _lrp_rnn_reference(model, x, k, eps, act):
    """LRP of an Elman RNN for one sample, one layer read at h_n: ``h = act(z)`` passes
    relevance to ``z = W_ih x_t + W_hh h_prev + b``, split by the epsilon rule."""
    p = {n: t.detach().double().numpy() for n, t in model.named_parameters()}
    w_ih, w_hh = p["rnn.weight_ih_l0"], p["rnn.weight_hh_l0"]
    b = p["rnn.bias_ih_l0"] + p["rnn.bias_hh_l0"]
    h, hs, zs = np.zeros(H), [np.zeros(H)], []
    for t in range(T):
        z = w_ih @ x[t] + w_hh @ h + b
        h = act(z)
        hs.append(h), zs.append(z)
    w, bh = p["head.weight"], p["head.bias"]
    y = w @ h + bh
    r_out = np.zeros(3)
    r_out[k] = y[k]
    r_h = h * (w.T @ (r_out / _stab(y, eps)))
    r_x = np.zeros((T, F))
    for t in reversed(range(T)):
        s = r_h / _stab(zs[t], eps)
        r_x[t] = x[t] * (w_ih.T @ s)
        r_h = hs[t] * (w_hh.T @ s)
    return r_x


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_lrp_rnn_matches_a_per_step_reference(nonlinearity):
    cell = functools.partial(nn.RNN, nonlinearity=nonlinearity)
    model = SeqClassifier(cell, True, False, 1, read="h_n")
    x = _x(3)
    res = _quiet(lambda: LRP(rule_name="epsilon", rule_param=0.01, dtype="double")
                 .fit(model, x).explain(x, output_idx=[0, 1, 2]))
    act = np.tanh if nonlinearity == "tanh" else (lambda v: np.maximum(v, 0.0))
    for s in range(3):
        for k in range(3):
            ref = _lrp_rnn_reference(model, x[s].numpy(), k, 0.01, act)
            np.testing.assert_allclose(res.values[s, ..., k], ref, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_lrp_conserves_relevance_on_a_bias_free_network(cell):
    model = SeqClassifier(cell, True, True, 2, bias=False)
    x = _x()
    res = _quiet(lambda: LRP(rule_name="epsilon", rule_param=1e-12, dtype="double")
                 .fit(model, x).explain(x))
    with torch.no_grad():
        y = copy.deepcopy(model).double()(x).numpy()
    assert np.abs(res.values.reshape(4, -1, 3).sum(1) - y).max() < 1e-8
    # with biases, the biases (and the stabiliser) absorb relevance: not conserved
    biased = SeqClassifier(cell, True, True, 2, bias=True)
    res = _quiet(lambda: LRP(rule_name="epsilon", rule_param=1e-12, dtype="double")
                 .fit(biased, x).explain(x))
    with torch.no_grad():
        y = copy.deepcopy(biased).double()(x).numpy()
    assert np.abs(res.values.reshape(4, -1, 3).sum(1) - y).max() > 1e-4


def test_refusals_are_clear():
    model = SeqClassifier(nn.GRU, True, False, 1)
    x = _x()
    with pytest.raises(ValueError, match="Connection Weights is not defined for recurrent"):
        _quiet(lambda: ConnectionWeights().fit(model, x).explain(x))
    with pytest.raises(ValueError, match="epsilon rule on its linear parts"):
        _quiet(lambda: LRP(rule_name="alpha_beta").fit(model, x).explain(x))

    class TimeMajorOut(nn.Module):  # returns the (T, n, H) output as it is
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(F, H)

        def forward(self, x):
            return self.rnn(x.transpose(0, 1))[0]

    with pytest.raises(UnsupportedLayerError, match="samples are on axis 1"):
        convert(TimeMajorOut(), input_shape=(T, F))

    class WithState(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(F, H, batch_first=True)
            self.h0 = nn.Parameter(torch.zeros(1, 1, H))

        def forward(self, x):
            return self.rnn(x, self.h0.expand(1, x.shape[0], H).contiguous())[0][:, -1]

    with pytest.raises(UnsupportedLayerError, match="initial state"):
        convert(WithState(), input_shape=(T, F))


def _state(model):
    return ({k: v.detach().clone() for k, v in model.state_dict().items()},
            [p.requires_grad for p in model.parameters()],
            [m.training for m in model.modules()])


@pytest.mark.parametrize("cell", CELLS)
def test_the_users_model_is_not_mutated(cell):
    model = SeqClassifier(cell, False, True, 2)
    model.train()
    model.head.weight.requires_grad_(False)
    before = _state(model)
    x = _x().float()
    for explainer in (Gradient(), LRP(rule_name="epsilon"), DeepLift(), DeepSHAP(limit_ref=2)):
        _quiet(lambda e=explainer: e.fit(model, x).explain(x))
    after = _state(model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1:] == after[1:]


# ---------------------------------------------------------------- forward kwargs, dict outputs
class Keyed(nn.Module):
    """A sequence model with extra forward arguments and a dict / namedtuple output."""

    Out = __import__("collections").namedtuple("Out", ["logits", "probs"])

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.GRU(F, H, batch_first=True)
        self.head = nn.Linear(H, 3)

    def forward(self, x, mask=None, scale: float = 1.0, as_tuple=False):
        z = self.head(self.rnn(x * mask)[0][:, -1]) * scale
        if as_tuple:
            return self.Out(z, torch.softmax(z, -1))
        return {"logits": z, "probs": torch.softmax(z, -1)}


def _module_grad(model, x, k, **kwargs):
    xx = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(model(xx, **kwargs)["logits"][:, k].sum(), xx)
    return g.numpy()


def test_forward_kwargs_and_output_key_on_graph_and_module():
    model = Keyed().double()
    x = _x()
    mask = torch.tensor([[1.0], [0.0], [1.0], [1.0], [1.0]], dtype=torch.float64)  # (T, 1)
    fit_args = {"forward_kwargs": {"mask": mask, "scale": 2.0}, "output_key": "logits"}
    grad = _quiet(lambda: Gradient(dtype="double").fit(model, x, **fit_args))
    assert grad.model_.converted  # traced with the bound arguments fixed
    res = _quiet(grad.explain, x)
    assert res.output_names == [["logits[0]", "logits[1]", "logits[2]"]]
    np.testing.assert_allclose(res.values[..., 1], _module_grad(model, x, 1, mask=mask,
                                                                scale=2.0), atol=1e-12)
    assert np.all(res.values[:, 1] == 0)  # the masked time step
    dl = _quiet(lambda: DeepLift(dtype="double").fit(model, x[:1], **fit_args).explain(x))
    assert np.abs(dl.values.reshape(4, -1, 3).sum(1) - dl.decomp_goal).max() < 1e-8
    both = _quiet(lambda: LRP(rule_name="epsilon", dtype="double").fit(
        model, x, forward_kwargs={"mask": mask, "as_tuple": True},
        output_key=["probs", 0]).explain(x, output_idx=[[0], [0]]))
    assert both.output_names == [["probs[0]"], ["output_0[0]"]]


def test_forward_kwargs_and_output_key_errors():
    model = Keyed()
    x = _x().float()
    mask = torch.ones(T, 1)
    with pytest.raises(TypeError, match=r"\['maks'\] are not arguments of Keyed.forward"):
        Gradient().fit(model, x, forward_kwargs={"maks": mask})
    with pytest.raises(ValueError, match=r"keys \['logits', 'probs'\]; choose the output"):
        _quiet(lambda: Gradient().fit(model, x, forward_kwargs={"mask": mask}).explain(x))
    with pytest.raises(ValueError, match=r"'logit' is not an output.*\['logits', 'probs'\]"):
        _quiet(lambda: Gradient().fit(model, x, forward_kwargs={"mask": mask},
                                      output_key="logit").explain(x))
    with pytest.raises(ValueError, match="one row per reference sample"):
        Gradient().fit(model, x, forward_kwargs={"mask": torch.ones(4, T, F)},
                       output_key="logits")
    with pytest.raises(TypeError, match="need a torch nn.Module"):
        Gradient().fit({"layers": []}, x, output_key="logits")


def test_forward_kwargs_leave_the_model_untouched():
    model = Keyed()
    model.train()
    before = _state(model)
    x = _x().float()
    for explainer in (Gradient(), LRP(rule_name="epsilon"), DeepLift()):
        _quiet(lambda e=explainer: e.fit(model, x, forward_kwargs={"mask": torch.ones(T, 1)},
                                         output_key="probs").explain(x))
    after = _state(model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1:] == after[1:]

"""Neuron attribution (``neuron_graph``): hidden units explained w.r.t. the input, against
captum's NeuronGradient / NeuronIntegratedGradients / NeuronDeepLift."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from sknn_explain import (
    LRP,
    DeepLift,
    Gradient,
    IntegratedGradients,
    neuron_graph,
    neuron_index,
)

captum_attr = pytest.importorskip("captum.attr")


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(),
                         nn.Linear(6, 3)).double().eval()


def _cnn() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(3 * 36, 2)).double().eval()


def _state(net: nn.Module):
    return ({k: v.clone() for k, v in net.state_dict().items()}, net.training,
            [p.requires_grad for p in net.parameters()],
            [(len(m._forward_hooks), len(m._backward_hooks), len(m._forward_pre_hooks))
             for m in net.modules()])


def _assert_same_state(net, before):
    after = _state(net)
    for k, v in before[0].items():
        assert torch.equal(v, after[0][k]), k
    assert before[1:] == after[1:]


CASES = [
    # model, module path, input shape, units (captum neuron selectors)
    (_mlp, "3", (5,), [(0,), (4,), (5,)]),
    (_cnn, "3", (2, 8, 8), [(0, 1, 2), (2, 5, 5), (1, 0, 3)]),
]


def _captum(cls, net, layer, x, unit, **kwargs):
    explainer = cls(net, dict(net.named_modules())[layer])
    return explainer.attribute(x, neuron_selector=unit, **kwargs).detach().numpy()


@pytest.mark.parametrize("make, layer, shape, units", CASES, ids=["mlp", "cnn"])
@pytest.mark.parametrize("method", ["gradient", "integrated_gradients", "deeplift"])
def test_matches_captum_neuron_methods(make, layer, shape, units, method):
    net = _mlp() if make is _mlp else _cnn()
    before = _state(net)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, *shape, generator=gen, dtype=torch.double)
    ref = 0.1 * torch.randn(1, *shape, generator=gen, dtype=torch.double)
    graph = neuron_graph(net, layer, input_shape=shape, dtype="double")
    layer_shape = graph.node_shapes()[graph.outputs[0][: -len("_units")]]
    idx = [neuron_index(layer_shape, u) for u in units]
    if method == "gradient":
        ours = Gradient(dtype="double").fit(graph)
        theirs = [_captum(captum_attr.NeuronGradient, net, layer, x, u) for u in units]
    elif method == "integrated_gradients":
        ours = IntegratedGradients(n=16, dtype="double").fit(graph, ref.numpy())
        theirs = [_captum(captum_attr.NeuronIntegratedGradients, net, layer, x, u,
                          baselines=ref, n_steps=16, method="riemann_right") for u in units]
    else:
        ours = DeepLift(dtype="double").fit(graph, ref.numpy())
        theirs = [_captum(captum_attr.NeuronDeepLift, net, layer, x, u, baselines=ref)
                  for u in units]
    res = ours.explain(x.numpy(), output_idx=idx)
    np.testing.assert_allclose(res.values, np.stack(theirs, axis=-1), rtol=0, atol=1e-6)
    _assert_same_state(net, before)


def test_outputs_are_the_layer_units_and_relu_is_kept():
    net = _mlp()
    graph = neuron_graph(net, "1", dtype="double")
    x = torch.randn(6, 5, dtype=torch.double)
    with torch.no_grad():
        hidden = net[1](net[0](x))
    (out,) = graph(x)
    torch.testing.assert_close(out, hidden)
    assert graph.output_names[0][:2] == ["relu_1[0]", "relu_1[1]"]
    # the explained output is the ReLU's value, not the pre-activation (ignore_last_act)
    res = Gradient(dtype="double").fit(graph).explain(x.numpy(), output_idx=[0, 1])
    np.testing.assert_allclose(res.predictions, hidden[:, :2].numpy(), atol=1e-12)


def test_lrp_of_a_unit_conserves_on_bias_free_net():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(4, 6, bias=False), nn.ReLU(), nn.Linear(6, 5, bias=False),
                        nn.ReLU(), nn.Linear(5, 2, bias=False)).double()
    graph = neuron_graph(net, "3", dtype="double")
    x = torch.randn(7, 4, dtype=torch.double).numpy()
    res = LRP(rule_name="simple", dtype="double").fit(graph).explain(x, output_idx=[1, 3])
    np.testing.assert_allclose(res.values.sum(axis=1), res.predictions, atol=1e-8)


def test_bad_layer_and_unit_raise():
    net = _mlp()
    with pytest.raises(ValueError, match="unknown layer"):
        neuron_graph(net, "nope")
    with pytest.raises(TypeError, match="layer must be"):
        neuron_graph(net, 3)
    with pytest.raises(ValueError, match="not an index"):
        neuron_index((4, 3), (4, 0))
    with pytest.raises(ValueError, match="not an index"):
        neuron_index((4, 3), 1)
    assert neuron_index((4, 3), (1, 2)) == 5


def test_model_not_mutated_when_conversion_raises():
    net = _cnn()
    net.train()
    before = _state(copy.deepcopy(net))
    with pytest.raises(ValueError):
        neuron_graph(net, "does.not.exist", input_shape=(2, 8, 8))
    assert net.training
    net.eval()
    _assert_same_state(net, (before[0], False, *before[2:]))


def test_perturbation_methods_example_runs(monkeypatch, capsys):
    """Smoke test of examples/perturbation_methods.py (belongs in tests/test_examples.py once
    the examples' tests are reorganised)."""
    import runpy
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    script = Path(__file__).resolve().parents[1] / "examples" / "perturbation_methods.py"
    monkeypatch.setattr("matplotlib.pyplot.show", lambda *a, **k: None)
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    efficiency = float(out.split("max |sum - (f(x) - f(baseline))| =")[1].split()[0])
    assert efficiency < 1e-8
    assert "top features by permutation importance" in out

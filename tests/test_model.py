"""The model's path: one adapter protocol, one naming of outputs, one activation table, typed
conversion errors (issue #19)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from sknn_explain import Gradient
from sknn_explain._model import ModelAdapter, as_model
from sknn_explain._naming import class_names_for, default_output_names
from sknn_explain.convert import (
    ConversionError,
    ExampleInputsError,
    Graph,
    UnsupportedLayerError,
    convert,
    prepare_model,
)
from sknn_explain.convert.dispatch import make_source
from sknn_explain.convert.source import finish
from sknn_explain.explainers._predict_fn import FunctionModel, NativeInputs, as_predict_model
from sknn_explain.explainers.embedding import EmbeddingModel
from sknn_explain.functional import torch_grad
from sknn_explain.layers import TORCH_ACTIVATION_MODULES, Activation, torch_activation_modules

#: everything a caller may read from an explainer's ``model_`` without probing
PROTOCOL = [
    "n_inputs", "input_shapes", "input_names", "pending", "shapes_from_first_call",
    "conversion_error", "removed_activation", "graph", "preprocess", "column_groups",
    "raw_names", "output_names", "ensure", "check_inputs",
]

CPU, F32 = torch.device("cpu"), torch.float32


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 2), nn.Linear(4, 3)

    def forward(self, x):
        return self.a(x), self.b(x)


class Sorts(nn.Module):
    """torch.sort has no graph layer; the output ends with a softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.lin, self.act = nn.Linear(4, 3), nn.Softmax(dim=1)

    def forward(self, x):
        return self.act(self.lin(torch.sort(x, dim=1).values))


def _plain(x: np.ndarray) -> np.ndarray:
    return x.sum(axis=1)


def _adapters() -> dict[str, object]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    clf = LogisticRegression().fit(np.random.default_rng(0).normal(size=(20, 4)),
                                   np.arange(20) % 2)
    fallback = prepare_model(Sorts(), ignore_last_act=False, dtype=F32, device=CPU)
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    return {
        "graph": prepare_model(net, ignore_last_act=False, dtype=F32, device=CPU),
        "pending graph": prepare_model(cnn, ignore_last_act=False, dtype=F32, device=CPU),
        "torch": as_model(net, ignore_last_act=False, dtype=F32, device=CPU),
        "fallback": fallback,
        "sklearn": as_predict_model(clf),
        "function": FunctionModel(_plain, n_inputs=1),
        "embedding": EmbeddingModel(
            as_model(nn.Sequential(nn.Embedding(5, 2), nn.Flatten(), nn.Linear(2, 1)),
                     ignore_last_act=False, dtype=F32, device=CPU), ["0"], [True]),
        "native inputs": NativeInputs(as_model(net, ignore_last_act=False, dtype=F32,
                                               device=CPU), [None]),
    }


@pytest.mark.parametrize("kind", list(_adapters()))
def test_every_adapter_implements_the_protocol_in_full(kind):
    adapter = _adapters()[kind]
    assert isinstance(adapter, ModelAdapter)
    missing = [name for name in PROTOCOL if not hasattr(adapter, name)]
    assert missing == []
    assert isinstance(adapter.pending, bool)
    assert adapter.pending == (kind == "pending graph")
    assert (adapter.conversion_error is not None) == (kind == "fallback")


def test_check_inputs_never_finishes_a_pending_conversion():
    adapter = _adapters()["pending graph"]
    adapter.check_inputs([torch.zeros(2, 1, 5, 5)])
    assert adapter.pending and adapter.graph is None
    with pytest.raises(RuntimeError):
        adapter.check_inputs([torch.zeros(2, 3, 5, 5)])  # the model's own error, as it is


def test_default_output_names_are_the_same_on_every_path():
    torch.manual_seed(0)
    net, x = TwoHeads().eval(), torch.randn(3, 4)
    expected = [["Y1_1", "Y1_2"], ["Y2_1", "Y2_2", "Y2_3"]]
    assert default_output_names([2, 3]) == expected
    functional = torch_grad(net, x, output_idx=[[0, 1], [0, 1, 2]], return_object=True)
    explained = Gradient().fit(net).explain(x, output_idx=[[0, 1], [0, 1, 2]])
    assert functional.output_names == explained.output_names == expected
    for kind, adapter in _adapters().items():
        if kind != "sklearn":  # a classifier names its units by class
            assert adapter.output_names([2, 3]) == expected, kind
            assert adapter.output_names([2]) == [["Y1", "Y2"]], kind


def test_one_unit_of_a_binary_classifier_is_named_by_the_positive_class():
    assert class_names_for(["no", "yes"], 1) == ["yes"]
    assert class_names_for(["no", "yes"], 2) == ["no", "yes"]
    assert class_names_for(["a", "b", "c"], 1) is None and class_names_for(None, 1) is None
    clf = LogisticRegression().fit(np.eye(4), ["no", "yes", "no", "yes"])
    assert as_predict_model(clf, response_method="decision_function").output_names([1]) == [
        ["yes"]]


@pytest.mark.parametrize("cls", [c for c in torch_activation_modules(convertible=True)
                                 if c is not nn.Softmax2d])
def test_every_convertible_activation_module_becomes_its_table_entry(cls):
    kwargs = {"dim": 1} if cls in (nn.Softmax, nn.LogSoftmax) else {}
    graph = convert(nn.Sequential(nn.Linear(3, 3), cls(**kwargs)))
    layer = graph.nodes[-1].layer
    assert isinstance(layer, Activation) and layer.name == TORCH_ACTIVATION_MODULES[cls]


def test_activation_without_a_graph_layer_is_refused_and_still_stripped():
    with pytest.raises(UnsupportedLayerError, match="Softmin"):
        convert(nn.Sequential(nn.Linear(3, 3), nn.Softmin(1)))
    model = as_model(nn.Sequential(nn.Linear(3, 3), nn.Softmin(1)), ignore_last_act=True,
                     dtype=F32, device=CPU)
    assert model.removed_activation == "Softmin"


def test_an_unsupported_layer_error_says_whether_the_model_ends_with_an_activation():
    with pytest.raises(UnsupportedLayerError) as info:
        make_source(Sorts(), F32, CPU)
    assert info.value.ends_with_activation is True
    assert ConversionError("x").ends_with_activation is None  # declared, unknown by default


def test_a_wrong_inferred_input_shape_is_a_typed_error():
    source = make_source(nn.Sequential(nn.Linear(4, 2)), F32, CPU)
    with pytest.raises(ExampleInputsError):
        finish(source, [(5,)])
    assert issubclass(ExampleInputsError, ConversionError)


def test_graph_output_names_underscore_is_a_deprecated_alias():
    graph = convert(nn.Sequential(nn.Linear(3, 2)), output_names=[["a", "b"]])
    assert graph.output_names == [["a", "b"]]
    with pytest.warns(DeprecationWarning, match="output_names"):
        assert graph.output_names_ == [["a", "b"]]
    with pytest.warns(DeprecationWarning):
        graph.output_names_ = [["c", "d"]]
    assert graph.output_names == [["c", "d"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = pickle.loads(pickle.dumps(graph))
        assert again.output_names == [["c", "d"]] and again.to_dict()["output_names"] == [
            ["c", "d"]]


def test_a_graph_pickled_before_the_rename_loads_its_output_names():
    graph = convert(nn.Sequential(nn.Linear(3, 2)), output_names=[["a", "b"]])
    state = graph.__dict__.copy()
    state["output_names_"] = state.pop("output_names")  # the old attribute name
    old = Graph.__new__(Graph)
    old.__setstate__(state)
    assert old.output_names == [["a", "b"]]


def test_from_dict_refuses_an_unknown_or_unhashable_layer_type():
    for kind in ("LSTM", ["Dense"]):
        model = {"input_dim": 3, "input_nodes": [1], "output_nodes": [1],
                 "layers": [{"type": kind, "input_layers": 0}]}
        with pytest.raises(ValueError, match="unknown layer type"):
            Graph.from_dict(model)

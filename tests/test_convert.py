"""Converter: every source reproduces the original forward pass (float and double)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _estimators import quiet_fit
from _torch_models import TwoInput, assert_unchanged, cnn, mlp, snapshot
from torch import nn

from sknn_explain.convert import (
    ConversionError,
    Graph,
    UnsupportedLayerError,
    VerificationError,
    convert,
    dict_to_graph,
)
from sknn_explain.convert.source import verify
from sknn_explain.layers import (
    Activation,
    AdaptiveAvgPool,
    Add,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    ElementwiseAffine,
    MaxPool,
    Pad,
)

DTYPES = {"float": (torch.float32, 1e-5), "double": (torch.float64, 1e-10)}


def _outputs(out) -> list[torch.Tensor]:
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [o.reshape(o.shape[0], -1) for o in outs]


def assert_reproduces(graph: Graph, model: nn.Module, xs, dtype: str) -> None:
    """Graph vs the (cast, eval) original, computed here independently of the converter."""
    tdtype, tol = DTYPES[dtype]
    ref_model = __import__("copy").deepcopy(model).to(tdtype).eval()
    xs = [x.to(tdtype) for x in xs]
    with torch.no_grad():
        ref, got = _outputs(ref_model(*xs)), _outputs(graph(*xs))
    assert len(ref) == len(got)
    for r, g in zip(ref, got):
        assert g.dtype == tdtype
        assert (g - r).abs().max() <= tol * max(1.0, float(r.abs().max()))


def layer_types(graph: Graph) -> list[str]:
    return [type(n.layer).__name__ for n in graph.nodes]


# ---------------------------------------------------------------- models of the acceptance
class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(8), nn.Tanh(),
            nn.AvgPool2d(2), nn.Dropout(0.5),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 2 * 2, 5), nn.Softmax(dim=1))
        for bn in (self.features[1], self.features[5]):  # non-trivial running statistics
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.5, 0.5)

    def forward(self, x):
        return self.head(self.features(x))


class ResBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)
        self.bn1.running_var.fill_(1.7)
        self.bn2.running_mean.fill_(0.3)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = F.relu(out + x)  # residual connection
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


class ImageTabular(nn.Module):
    """Two inputs (image + tabular) joined by torch.cat; two outputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.conv = nn.Conv2d(2, 3, 3)
        self.tab = nn.Linear(5, 4)
        self.out_a = nn.Linear(3 * 4 * 4 + 4, 3)
        self.out_b = nn.Linear(3 * 4 * 4 + 4, 1)

    def forward(self, img, tab):
        h_img = torch.relu(self.conv(img)).view(img.size(0), -1)
        h = torch.cat([h_img, self.tab(tab).tanh()], dim=1)
        return F.softmax(self.out_a(h), dim=-1), torch.sigmoid(self.out_b(h))


@pytest.mark.parametrize("dtype", ["float", "double"])
def test_mlp(dtype):
    model = mlp(softmax=True)
    graph = convert(model, dtype=dtype)  # input shape inferred from the first Linear
    assert graph.input_shapes == [(5,)]
    assert layer_types(graph) == ["Dense", "Activation"] * 3
    assert graph.nodes[-1].layer.params == {"dim": 1}
    assert_reproduces(graph, model, [torch.randn(7, 5)], dtype)


@pytest.mark.parametrize("dtype", ["float", "double"])
def test_cnn_with_batchnorm_pooling_dropout(dtype):
    model = CNN()
    graph = convert(model, input_shape=(3, 8, 8), dtype=dtype)
    types = layer_types(graph)
    assert types.count("BatchNorm") == 2 and "MaxPool" in types and "AvgPool" in types
    assert "Dropout" not in types and len(graph.nodes) == 11  # dropout skipped
    assert_reproduces(graph, model, [torch.randn(6, 3, 8, 8)], dtype)
    bn = graph.nodes[1].layer
    ref = model.features[1]
    expected = ref.weight / torch.sqrt(ref.running_var + ref.eps)
    assert isinstance(bn, BatchNorm)
    assert torch.allclose(bn.scale.double(), expected.double(), atol=1e-6)


@pytest.mark.parametrize("dtype", ["float", "double"])
def test_resnet_block(dtype):
    model = ResBlock()
    graph = convert(model, input_shape=(4, 6, 6), dtype=dtype)
    add = [n for n in graph.nodes if isinstance(n.layer, Add)]
    assert len(add) == 1 and "input_0" in add[0].inputs  # the skip connection
    assert any(isinstance(n.layer, AdaptiveAvgPool) for n in graph.nodes)
    assert_reproduces(graph, model, [torch.randn(5, 4, 6, 6)], dtype)


@pytest.mark.parametrize("dtype", ["float", "double"])
def test_two_inputs_concat_and_two_outputs(dtype):
    model = ImageTabular()
    graph = convert(model, input_shape=[(2, 6, 6), (5,)], dtype=dtype)
    assert graph.n_inputs == 2 and len(graph.outputs) == 2
    cat = [n for n in graph.nodes if isinstance(n.layer, Concat)]
    assert len(cat) == 1 and cat[0].layer.dim == 1
    assert [graph.node(o).layer.name for o in graph.outputs] == ["softmax", "sigmoid"]
    assert_reproduces(graph, model, [torch.randn(4, 2, 6, 6), torch.randn(4, 5)], dtype)
    assert graph.node_shapes()[graph.outputs[1]] == (1,)


def test_two_output_model_from_tests_module():
    model = TwoInput()
    x = [torch.randn(3, 2, 6, 6), torch.randn(3, 4)]
    graph = convert(model, X_ref=x)
    assert graph.input_shapes == [(2, 6, 6), (4,)]
    assert_reproduces(graph, model, x, "float")


@pytest.mark.parametrize("dtype", ["float", "double"])
def test_skorch_classifier(dtype):
    from skorch import NeuralNetClassifier

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    net = NeuralNetClassifier(
        nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)),
        criterion=nn.CrossEntropyLoss, max_epochs=2, train_split=None, verbose=0,
    ).fit(X, y)
    graph = convert(net, dtype=dtype)
    # skorch's predict nonlinearity (softmax after CrossEntropyLoss) is the last activation
    assert graph.nodes[-1].layer.name == "softmax"
    assert graph.output_names == [[0, 1, 2]]
    with torch.no_grad():
        probs = graph(torch.as_tensor(X, dtype=DTYPES[dtype][0]))[0].numpy()
    assert np.allclose(probs, net.predict_proba(X), atol=1e-6)



@pytest.fixture(scope="module")
def tabular_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)) * [1.0, 10.0, 100.0, 0.1] + [0.0, 5.0, -50.0, 1.0]
    y = np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 5)]
    return X, y


@pytest.mark.parametrize("dtype", ["float", "double"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_sklearn_pipeline_standard_scaler_mlp(tabular_data, dtype, activation):
    import pandas as pd
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = tabular_data
    df = pd.DataFrame(X, columns=["age", "income", "debt", "rate"])
    pipe = quiet_fit(make_pipeline(
        StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(6, 5), activation=activation, max_iter=40,
                      random_state=0),
    ), df, y)
    graph = convert(pipe, dtype=dtype)
    assert isinstance(graph.nodes[0].layer, ElementwiseAffine)
    assert graph.input_names == [[["age", "income", "debt", "rate"]]]
    assert graph.output_names == [["a", "b", "c"]]
    hidden = ["Dense"] if activation == "identity" else ["Dense", "Activation"]
    assert layer_types(graph) == ["ElementwiseAffine", *hidden, *hidden, "Dense", "Activation"]
    if activation != "identity":
        expected = {"logistic": "sigmoid"}.get(activation, activation)
        assert graph.nodes[2].layer.name == expected
    tdtype, tol = DTYPES[dtype]
    with torch.no_grad():
        got = graph(torch.as_tensor(X, dtype=tdtype))[0].double().numpy()
    assert np.abs(got - pipe.predict_proba(df)).max() <= tol


def test_sklearn_binary_multilabel_and_regressors(tabular_data):
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler

    X, y = tabular_data
    binary = quiet_fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=30, random_state=0),
                          X, y == "a")
    g = convert(binary, dtype="double")
    assert g.output_names == [[True]]  # the single unit is P(classes_[1])
    assert g.nodes[-1].layer.name == "sigmoid"
    with torch.no_grad():
        p = g(torch.as_tensor(X, dtype=torch.float64))[0].numpy()
    assert np.abs(p[:, 0] - binary.predict_proba(X)[:, 1]).max() < 1e-10

    multilabel = quiet_fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=30,
                                            random_state=0),
                              X, np.c_[X[:, 0] > 0, X[:, 1] > 5].astype(int))
    g = convert(make_pipeline(MinMaxScaler().fit(X), multilabel), dtype="double")
    with torch.no_grad():
        p = g(torch.as_tensor(X, dtype=torch.float64))[0].numpy()
    assert np.abs(p - multilabel.predict_proba(MinMaxScaler().fit(X).transform(X))).max() < 1e-10

    for loss, out_act in [("squared_error", "Dense"), ("poisson", "Activation")]:
        target = np.c_[np.abs(X[:, 0]) + 1, np.abs(X[:, 1]) + 1] if loss == "poisson" else X[:, :2]
        pipe = quiet_fit(make_pipeline(
            RobustScaler(), MaxAbsScaler(), "passthrough",
            MLPRegressor(hidden_layer_sizes=(5,), loss=loss, max_iter=30, random_state=0)),
            X, target)
        g = convert(pipe, dtype="double")
        assert layer_types(g)[:2] == ["ElementwiseAffine", "ElementwiseAffine"]
        assert layer_types(g)[-1] == out_act
        with torch.no_grad():
            pred = g(torch.as_tensor(X, dtype=torch.float64))[0].numpy()
        assert np.abs(pred - pipe.predict(X)).max() <= 1e-10 * max(1, np.abs(pred).max())


def test_pipeline_with_skorch_net(tabular_data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from skorch import NeuralNetRegressor

    X, _ = tabular_data
    Xs = StandardScaler().fit_transform(X).astype(np.float32)
    torch.manual_seed(0)
    net = NeuralNetRegressor(nn.Sequential(nn.Linear(4, 6), nn.ELU(), nn.Linear(6, 1)),
                             max_epochs=2, train_split=None, verbose=0)
    net.fit(Xs, Xs[:, :1])
    pipe = make_pipeline(StandardScaler().fit(X), net)
    graph = convert(pipe, dtype="double")
    assert layer_types(graph) == ["ElementwiseAffine", "Dense", "Activation", "Dense"]
    with torch.no_grad():
        got = graph(torch.as_tensor(X))[0].numpy()
        ref = net.module_.double()(torch.as_tensor(pipe[0].transform(X))).numpy()
    assert np.abs(got - ref).max() < 1e-10


def _dict_model() -> dict:
    rng = np.random.default_rng(3)
    return {
        "input_dim": [[4], [2, 6, 6]],
        "input_nodes": [1, 2],
        "input_names": [[["a", "b", "c", "d"]],
                        [["C1", "C2"], [f"H{i}" for i in range(6)], [f"W{i}" for i in range(6)]]],
        "output_nodes": [7],
        "output_names": ["yes", "no"],
        "layers": [
            {"type": "Dense", "weight": rng.normal(size=(3, 4)), "bias": rng.normal(size=3),
             "activation_name": "tanh", "input_layers": 0, "output_layers": 6, "dim_in": [4],
             "dim_out": [3]},
            {"type": "Conv2D", "weight": rng.normal(size=(3, 2, 3, 3)), "bias": rng.normal(size=3),
             "activation_name": "relu", "padding": [1, 0, 0, 1], "input_layers": 0,
             "output_layers": 3},
            {"type": "BatchNorm", "num_features": 3, "eps": 1e-3, "gamma": [1.0, 0.5, 2.0],
             "beta": [0.1, 0.0, -0.1], "run_mean": [0.2, -0.1, 0.0], "run_var": [1.0, 2.0, 0.5],
             "input_layers": 2, "output_layers": 4},
            {"type": "MaxPooling2D", "kernel_size": [2, 2], "input_layers": 3,
             "output_layers": 5},
            {"type": "GlobalPooling", "method": "average", "input_layers": 4, "output_layers": 6,
             "dim_out": [3]},
            {"type": "Concatenate", "axis": 2, "input_layers": [1, 5], "output_layers": 7},
            {"type": "Dense", "weight": rng.normal(size=(2, 6)), "bias": np.zeros(2),
             "activation_name": "softmax", "input_layers": 6, "output_layers": -1},
        ],
    }


def _dict_reference(d: dict, tab: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """The dict model written out by hand with torch functions (float64)."""
    L = d["layers"]
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    h1 = torch.tanh(tab @ t(L[0]["weight"]).T + t(L[0]["bias"]))
    h2 = F.relu(F.conv2d(F.pad(img, (1, 0, 0, 1)), t(L[1]["weight"]), t(L[1]["bias"])))
    bn = L[2]
    h3 = (h2 - t(bn["run_mean"]).reshape(1, -1, 1, 1)) / torch.sqrt(
        t(bn["run_var"]).reshape(1, -1, 1, 1) + bn["eps"]) * t(bn["gamma"]).reshape(
        1, -1, 1, 1) + t(bn["beta"]).reshape(1, -1, 1, 1)
    h5 = F.max_pool2d(h3, 2).mean((2, 3))
    h6 = torch.cat([h1, h5], 1)
    return torch.softmax(h6 @ t(L[6]["weight"]).T + t(L[6]["bias"]), 1)


@pytest.mark.parametrize("dtype", ["float", "double"])
def test_dict_model_and_round_trip(dtype):
    d = _dict_model()
    tdtype, tol = DTYPES[dtype]
    graph = convert(d, dtype=dtype)
    assert graph.input_shapes == [(4,), (2, 6, 6)]
    assert graph.output_names == [["yes", "no"]]
    assert graph.input_names[0] == [["a", "b", "c", "d"]]
    assert isinstance(graph.node("conv2d_2_pad").layer, Pad)  # asymmetric padding
    torch.manual_seed(0)
    tab, img = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 2, 6, 6,
                                                                  dtype=torch.float64)
    with torch.no_grad():
        got = graph(tab.to(tdtype), img.to(tdtype))[0]
    ref = _dict_reference(d, tab, img)
    assert (got.double() - ref).abs().max() <= tol
    # to_dict -> from dict: same function, same names, innsight conventions
    exported = graph.to_dict()
    layers = exported["layers"]
    assert [layers[i - 1]["input_layers"] for i in exported["input_nodes"]] == [[0], [0]]
    assert exported["output_nodes"] == [len(layers)]
    assert exported["input_dim"] == [[4], [2, 6, 6]]
    assert [d["type"] for d in layers][:3] == ["Dense", "Activation", "Padding"]
    assert -1 in exported["layers"][-1]["output_layers"]
    again = dict_to_graph(exported, dtype=tdtype)
    assert again.output_names == graph.output_names and again.input_names == graph.input_names
    with torch.no_grad():
        assert torch.equal(again(tab.to(tdtype), img.to(tdtype))[0], got)


def test_round_trip_of_converted_torch_models():
    for model, shape in [(CNN(), [(3, 8, 8)]), (ResBlock(), [(4, 6, 6)]),
                         (ImageTabular(), [(2, 6, 6), (5,)])]:
        graph = convert(model, input_shape=shape, dtype="double")
        again = dict_to_graph(graph.to_dict(), dtype=torch.float64)
        xs = [torch.randn(3, *s, dtype=torch.float64) for s in shape]
        with torch.no_grad():
            for a, b in zip(graph(*xs), again(*xs)):
                assert torch.allclose(a, b, atol=1e-12)


# ---------------------------------------------------------------- layer coverage
class Everything(nn.Module):
    """Functional calls, tensor methods, padding modes, 1d layers, groups, constants."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.c1 = nn.Conv1d(4, 6, 3, stride=2, dilation=2, groups=2, padding=2,
                            padding_mode="circular")
        self.c2 = nn.Conv1d(6, 6, 4, padding="same")
        self.pads = nn.ModuleList([nn.ReflectionPad1d(1), nn.ReplicationPad1d((2, 0)),
                                   nn.ConstantPad1d(1, 0.5), nn.ZeroPad1d((0, 1))])
        self.bn = nn.BatchNorm1d(6)
        self.bn.running_mean.uniform_()
        self.pool = nn.MaxPool1d(3, stride=2, padding=1, ceil_mode=True)
        self.apool = nn.AdaptiveMaxPool1d(3)
        self.lin = nn.Linear(18, 8)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 8))
        self.acts = nn.ModuleList([nn.LeakyReLU(0.2), nn.ELU(0.7), nn.Softplus(beta=2.0),
                                   nn.GELU(approximate="tanh"), nn.SiLU(), nn.Identity()])

    def forward(self, x):
        h = self.c1(x)
        for pad in self.pads:
            h = pad(h)
        h = self.bn(F.leaky_relu(self.c2(h), negative_slope=0.3))
        h = F.avg_pool1d(self.pool(h), 1, ceil_mode=False)
        h = self.apool(F.pad(h, (1, 1), mode="replicate")).reshape(x.shape[0], 18)
        h = self.lin(F.dropout(h, 0.3, training=self.training)) * self.scale - 0.5
        for act in self.acts:
            h = act(h)
        h = 2.0 * h.sigmoid() + (-h).tanh() / 3 - torch.sub(h, 1.0) + F.softplus(h, beta=1.5)
        h = F.elu(h, alpha=0.5) + F.gelu(h) + h.relu() - F.silu(h)
        return torch.log_softmax(h.unsqueeze(-1).squeeze(-1), dim=1)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("dtype", ["float", "double"])
def test_many_layers_functions_and_methods(dtype):
    model = Everything()
    graph = convert(model, input_shape=(4, 20), dtype=dtype)
    types = set(layer_types(graph))
    assert {"Conv", "Pad", "BatchNorm", "MaxPool", "AdaptiveMaxPool", "Dense",
            "ElementwiseAffine", "Add", "Activation", "Reshape"} <= types
    pads = [n.layer for n in graph.nodes if isinstance(n.layer, Pad)]
    assert {p.mode for p in pads} == {"circular", "reflect", "replicate", "constant"}
    acts = {n.layer.name: n.layer.params for n in graph.nodes if isinstance(n.layer, Activation)}
    assert acts["leaky_relu"]["negative_slope"] in (0.2, 0.3)
    assert acts["log_softmax"] == {"dim": 1}
    conv = next(n.layer for n in graph.nodes if isinstance(n.layer, Conv))
    assert conv.groups == 2 and conv.dilation == (2,) and conv.stride == (2,)
    assert_reproduces(graph, model, [torch.randn(6, 4, 20)], dtype)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_pooling_variants_and_conv_padding_modes_2d():
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(2, 4, (3, 2), padding=(1, 0), padding_mode="reflect"), nn.Sigmoid(),
        nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
        nn.Conv2d(4, 4, 2, padding="same", dilation=1), nn.AdaptiveAvgPool2d((2, None)),
        nn.MaxPool2d(2, dilation=1, padding=1), nn.Softmax2d(), nn.Flatten(1, 2),
        nn.Flatten(),
    )
    graph = convert(model, input_shape=(2, 9, 8), dtype="double")
    avg = next(n.layer for n in graph.nodes if isinstance(n.layer, AvgPool))
    assert avg.padding == (1, 1) and not avg.count_include_pad
    assert any(isinstance(n.layer, MaxPool) and n.layer.padding == (1, 1) for n in graph.nodes)
    assert_reproduces(graph, model, [torch.randn(3, 2, 9, 8)], "double")


# ---------------------------------------------------------------- errors and checks
class WithLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.rnn = nn.RNNCell(3, 4)  # unsupported
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return torch.softmax(self.head(self.encoder.rnn(x[:, -1])), dim=-1)


def test_unsupported_module_is_named_with_its_position():
    with pytest.raises(UnsupportedLayerError, match=r"nn\.RNNCell at 'encoder\.rnn'") as info:
        convert(WithLSTM(), input_shape=(5, 3))
    assert info.value.what == "nn.RNNCell" and "gradient methods" in str(info.value)


def test_unsupported_function_and_slicing_name_the_node():
    class Sliced(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(x)[:, torch.tensor([0, 1])]

    class Rolled(nn.Module):
        def forward(self, x):
            return torch.roll(x, 1, dims=1)

    with pytest.raises(UnsupportedLayerError, match=r"indexing / slicing.*node 'getitem'"):
        convert(Sliced())
    with pytest.raises(UnsupportedLayerError, match=r"function torch\.roll at the model's"):
        convert(Rolled(), input_shape=(4,))


def test_untraceable_model_and_shape_errors():
    class DataDependent(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x

    with pytest.raises(ConversionError, match="torch.fx could not trace"):
        convert(DataDependent(), input_shape=(3,))
    with pytest.raises(ValueError, match="cannot infer the input shape"):
        convert(cnn())
    with pytest.raises(ConversionError, match="failed on example inputs"):
        convert(cnn(), input_shape=(2, 8, 8))
    with pytest.raises(TypeError, match="cannot explain a str"):
        convert("model")
    with pytest.raises(ValueError, match="input_shape must"):
        convert(cnn(), input_shape="3x8x8")


def test_batch_size_dependent_model_fails_verification():
    class BatchDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            return self.lin(x) * x.shape[0]  # baked in as a constant: caught by the check

    with pytest.raises(VerificationError, match="differs by"):
        convert(BatchDependent())


def test_verify_reports_the_difference():
    model = mlp()
    graph = convert(model, dtype="double")
    x = torch.randn(4, 5, dtype=torch.float64)
    with torch.no_grad():
        ref = [model.double()(x)]
    assert verify(graph, ref, [x], "mlp") < 1e-12
    graph.nodes[0].layer.bias += 1e-6
    with pytest.raises(VerificationError, match=r"differs by [0-9.e-]+ .*tolerance 1e-10"):
        verify(graph, ref, [x], "mlp")


def test_sklearn_errors(tabular_data):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, PolynomialFeatures

    X, y = tabular_data
    with pytest.raises(ValueError, match="MLPClassifier is not fitted"):
        convert(MLPClassifier())
    mlp_ = quiet_fit(MLPClassifier(hidden_layer_sizes=(3,), max_iter=5, random_state=0), X, y)
    with pytest.raises(UnsupportedLayerError, match=r"clip=True.*'minmaxscaler'"):
        convert(make_pipeline(MinMaxScaler(clip=True).fit(X), mlp_))
    with pytest.raises(UnsupportedLayerError, match="PolynomialFeatures at pipeline step"):
        convert(make_pipeline(PolynomialFeatures().fit(X), mlp_))


def test_user_model_untouched_by_conversion():
    model = CNN().train()
    model.features[0].weight.grad = torch.ones_like(model.features[0].weight)
    model.head[1].weight.requires_grad_(False)
    handle = model.register_forward_hook(lambda *a: None)
    before = snapshot(model)
    convert(model, input_shape=(3, 8, 8), dtype="double")
    with pytest.raises(ConversionError):
        convert(model, input_shape=(3, 5, 5))
    assert_unchanged(model, before)
    assert model.training and model.features[1].training
    handle.remove()


def test_summary_and_repr_like_innsight():
    graph = convert(ImageTabular(), input_shape=[(2, 6, 6), (5,)], output_names=[
        ["x", "y", "z"], ["p"]])
    text = graph.summary()
    lines = text.splitlines()
    assert lines[0].startswith("Graph: 2 input(s), 2 output(s)")
    assert len(lines) == 2 + 2 + len(graph.nodes) + 1
    assert "(*, 2, 6, 6)" in text and "(*, 52)" in text and "x, y, z" in text
    assert repr(graph) == text
    graph.input_shapes = None
    assert "?" in graph.summary()


def test_input_and_output_names_are_checked():
    with pytest.raises(ValueError, match="lengths"):
        convert(mlp(), input_names=["a", "b"])
    g = convert(mlp(n_out=3), input_names=list("abcde"), output_names=["u", "v", "w"])
    assert g.input_names == [[list("abcde")]] and g.output_names == [["u", "v", "w"]]

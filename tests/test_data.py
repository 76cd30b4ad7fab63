"""Issue #10, input coercion / output selection / layout hints (items 15 and 16).

Every test pins an error message (or a result) that used to be a raw torch / pandas / numpy
error, or a silently accepted input.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _torch_models import mlp as mlp_factory
from torch import nn

from sknn_explain import Gradient, IntegratedGradients
from sknn_explain._output_selection import resolve_outputs
from sknn_explain.functional import torch_expgrad, torch_grad, torch_intgrad


@pytest.fixture
def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


@pytest.fixture
def X() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(6, 4))


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


def _images(n: int = 2) -> np.ndarray:
    """``(n, 3, 8, 8)`` channels-first images."""
    return np.random.default_rng(1).normal(size=(n, 3, 8, 8)).astype(np.float32)


def _state(model: nn.Module) -> tuple:
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
    )


def _same_state(a: tuple, b: tuple) -> bool:
    return (
        a[0].keys() == b[0].keys()
        and all(torch.equal(a[0][k], b[0][k]) for k in a[0])
        and a[1:] == b[1:]
    )


# ---------------------------------------------------------------------------- item 15: data
def test_scipy_sparse_input_asks_for_a_dense_array(mlp, X):
    from scipy import sparse

    explainer = Gradient().fit(mlp, X)
    with pytest.raises(TypeError, match=r"scipy sparse csr_matrix.*X\.toarray\(\)"):
        explainer.explain(sparse.csr_matrix(X))
    with pytest.raises(TypeError, match=r"X_ref is a scipy sparse.*toarray"):
        Gradient().fit(mlp, sparse.csc_matrix(X))


@pytest.mark.filterwarnings("ignore:The PyTorch API of MaskedTensors")
def test_meta_and_sparse_tensors_are_rejected_clearly(mlp, X):
    explainer = Gradient().fit(mlp, X)
    with pytest.raises(ValueError, match="'meta' device.*no values"):
        explainer.explain(torch.empty(5, 4, device="meta"))
    with pytest.raises(TypeError, match=r"sparse_coo tensor.*to_dense\(\)"):
        explainer.explain(torch.tensor(X).to_sparse())
    with pytest.raises(ValueError, match="'meta' device"):
        torch_grad(mlp, torch.empty(5, 4, device="meta"))
    # any other tensor whose values cannot be read: a TypeError naming it, not a torch error
    masked = torch.masked.masked_tensor(torch.tensor(X), torch.ones(X.shape, dtype=torch.bool))
    with pytest.raises(TypeError, match="X is a MaskedTensor.*cannot be read as data"):
        explainer.explain(masked)


def test_duplicate_dataframe_columns_are_named(mlp, X):
    df = pd.DataFrame(X, columns=["a", "b", "a", "c"])
    with pytest.raises(ValueError, match=r"X_ref has duplicate column names \['a'\]"):
        Gradient().fit(mlp, df)
    explainer = Gradient().fit(mlp, X)
    with pytest.raises(ValueError, match=r"X has duplicate column names \['a'\]"):
        explainer.explain(df)


def test_masked_array_with_masked_elements_is_rejected(mlp, X):
    explainer = Gradient().fit(mlp, X)
    mask = np.zeros_like(X, dtype=bool)
    mask[2, 1] = True
    with pytest.raises(ValueError, match=r"masked array with 1 masked element.*rows: \[2\]"):
        explainer.explain(np.ma.masked_array(X, mask=mask))
    # nothing masked: the data are used as they are
    clean = explainer.explain(np.ma.masked_array(X, mask=np.zeros_like(mask)))
    np.testing.assert_array_equal(clean.values, explainer.explain(X).values)


def test_functional_x_ref_must_match_the_input_shape(mlp):
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"x_ref has per-sample shape \(3,\), but x has \(4,\)"):
        torch_intgrad(mlp, x, x_ref=torch.zeros(1, 3))
    # (1, 1) would broadcast silently against (n, 4): rejected too
    with pytest.raises(ValueError, match=r"x_ref has per-sample shape \(1,\)"):
        torch_intgrad(mlp, x, x_ref=torch.zeros(1, 1))
    with pytest.raises(ValueError, match="x_ref has 2 input"):
        torch_intgrad(mlp, x, x_ref=[torch.zeros(1, 4), torch.zeros(1, 4)])
    with pytest.raises(ValueError, match=r"data_ref has per-sample shape \(3,\)"):
        torch_expgrad(mlp, x, torch.zeros(4, 3), n=2, random_state=0)
    # a reference in another dtype is cast to x's dtype
    a = torch_intgrad(mlp, x, x_ref=torch.full((1, 4), 0.5, dtype=torch.float64), n=5)
    b = torch_intgrad(mlp, x, x_ref=torch.full((1, 4), 0.5), n=5)
    assert a.dtype == torch.float32
    torch.testing.assert_close(a, b)


# ------------------------------------------------------------------- item 15: output_label
@pytest.fixture(scope="module")
def float_class_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    y = np.array([0.0, 1.0, 2.0] * 10)
    return X, y


def _mlp_classifier(X, y):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)


def test_output_label_matches_float_classes_by_value(float_class_data):
    X, y = float_class_data
    clf = _mlp_classifier(X, y)
    explainer = Gradient(dtype="double").fit(clf, X)
    by_idx = explainer.explain(X[:3], output_idx=1)
    for label in (1, 1.0, np.int64(1), np.float32(1.0)):
        res = explainer.explain(X[:3], output_label=label)
        assert res.output_names == [[1.0]]
        np.testing.assert_array_equal(res.values, by_idx.values)
    res = explainer.explain(X[:3], output_label=[2, 0])
    assert res.output_names == [[2.0, 0.0]]
    # a string never matches a number; the message shows the labels with their real types
    with pytest.raises(ValueError, match=r"known labels: \[0\.0, 1\.0, 2\.0\]; '1' is a string"):
        explainer.explain(X[:3], output_label="1")


def test_output_label_message_quotes_int_classes_as_ints(float_class_data):
    X, y = float_class_data
    clf = _mlp_classifier(X, y.astype(int))
    explainer = Gradient().fit(clf, X)
    with pytest.raises(ValueError, match=r"'malignant'.*known labels: \[0, 1, 2\]") as err:
        explainer.explain(X[:2], output_label="malignant")
    assert "'0'" not in str(err.value)
    assert explainer.explain(X[:2], output_label=2.0).output_names == [[2]]


def test_label_matching_rules():
    from sknn_explain._output_selection import label_key

    assert label_key(1) == label_key(1.0) == label_key(np.int64(1)) == label_key(np.float32(1))
    assert label_key("1") != label_key(1)
    assert label_key(True) != label_key(1)
    sel = resolve_outputs(None, [np.str_("b")], [["a", "b"]])
    assert sel.indices[0].tolist() == [1]
    # two nodes with the same label: ambiguous, not silently the last one
    with pytest.raises(ValueError, match=r"matches several nodes.*indices \[0, 2\]"):
        resolve_outputs(None, "a", [["a", "b", "a"]])


# ------------------------------------------------------------------- item 16: layout hints
def test_channels_last_images_hint_channels_first_false():
    cnn = _cnn()
    before = _state(cnn)
    hwc = np.moveaxis(_images(), 1, -1)  # (2, 8, 8, 3)
    with pytest.raises(ValueError, match=r"did you mean channels_first=False\?"):
        Gradient().fit(cnn).explain(hwc)  # shapes unknown: the model fails
    with pytest.raises(ValueError, match=r"did you mean channels_first=False\?"):
        Gradient().fit(cnn, hwc)  # the model fails on X_ref
    fitted = Gradient().fit(cnn, _images())  # shapes known: caught before the model runs
    with pytest.raises(ValueError, match=r"per-sample shape \(8, 8, 3\).*channels_first=False"):
        fitted.explain(hwc)
    with pytest.raises(ValueError, match=r"did you mean channels_first=True"):
        Gradient(channels_first=False).fit(cnn, hwc).explain(_images())
    assert _same_state(before, _state(cnn))
    # and the hinted call works
    res = Gradient(channels_first=False).fit(cnn).explain(hwc)
    assert res.values.shape == (2, 8, 8, 3, 2)


def test_single_image_without_batch_axis_hints_x_none():
    cnn = _cnn()
    image = _images(1)[0]  # (3, 8, 8)
    with pytest.raises(ValueError, match=r"did you mean X\[None\]\?"):
        Gradient().fit(cnn).explain(image)
    with pytest.raises(ValueError, match=r"did you mean X_ref\[None\]\?"):
        IntegratedGradients(n=2).fit(cnn, image)
    fitted = Gradient().fit(cnn, _images())
    with pytest.raises(ValueError, match=r"shape of one sample: add the batch axis with X\[None\]"):
        fitted.explain(image)
    # channels-last single image with channels_first=False
    with pytest.raises(ValueError, match=r"did you mean X\[None\]\?"):
        Gradient(channels_first=False).fit(cnn).explain(np.moveaxis(image, 0, -1))
    # 1-D convolution, single (C, L) signal
    torch.manual_seed(0)
    conv1d = nn.Sequential(nn.Conv1d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 18, 2))
    with pytest.raises(ValueError, match=r"did you mean X\[None\]\?"):
        Gradient().fit(conv1d).explain(np.zeros((3, 20)))


def test_layout_hint_does_not_finish_a_pending_conversion():
    cnn = _cnn()
    explainer = Gradient().fit(cnn)
    with pytest.raises(ValueError, match=r"X\[None\]"):
        explainer.explain(_images(1)[0])
    assert explainer.model_.pending  # the trial ran on the reference copy only
    res = explainer.explain(_images())
    expected = Gradient().fit(cnn, _images()).explain(_images())
    np.testing.assert_allclose(res.values, expected.values, atol=1e-6)


class _SeqNet(nn.Module):
    def __init__(self, cell: type[nn.Module] = nn.LSTM) -> None:
        super().__init__()
        self.rnn = cell(3, 5, batch_first=True)
        self.out = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x)[0][:, -1])


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_batch_first_rnn_input_is_named_time_and_features(cell):
    torch.manual_seed(0)
    net = _SeqNet(cell)
    X = np.random.default_rng(0).normal(size=(2, 7, 3))
    with pytest.warns(UserWarning, match=rf"batch-first nn\.{cell.__name__}.*axis 1 is time"):
        res = Gradient().fit(net).explain(X)
    time_names, feature_names = res.input_names[0]
    assert time_names == [f"T{i}" for i in range(1, 8)]
    assert feature_names == ["F1", "F2", "F3"]
    obj = torch_grad(net, torch.tensor(X, dtype=torch.float32), return_object=True)
    assert obj.input_names[0][0][0] == "T1"
    # a plain conv1d signal model keeps innsight's channel / position names
    torch.manual_seed(0)
    conv1d = nn.Sequential(nn.Conv1d(7, 2, 3), nn.Flatten(), nn.Linear(2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = Gradient().fit(conv1d).explain(X)
    assert plain.input_names[0][0][0] == "C1"


def test_model_state_untouched_after_failed_layout_trials():
    cnn = _cnn()
    cnn.train()
    snapshot = copy.deepcopy(_state(cnn))
    for X in (_images(1)[0], np.moveaxis(_images(), 1, -1)):
        with pytest.raises(ValueError):
            Gradient().fit(cnn).explain(X)
    assert _same_state(snapshot, _state(cnn))


# ---------------------------------------------------------------- input coercion (QA findings)
# (former tests/test_qa_foundation.py)
# non-regression: foundation QA finding (named by the test)
def test_all_numeric_input_types_give_the_float_result():
    model = mlp_factory(4, 3)
    explainer = Gradient(times_input=True).fit(model)
    ints = np.arange(20).reshape(5, 4)
    ref = explainer.explain(ints.astype(np.float64)).values
    cols = list("abcd")
    same = [
        ints, ints.astype(np.uint8), ints.astype(np.float16), torch.tensor(ints),
        torch.tensor(ints, dtype=torch.float16), torch.tensor(ints, dtype=torch.bfloat16),
        pd.DataFrame(ints, columns=cols).astype("Int64"),
        pd.DataFrame(ints, columns=cols).astype("Float64"), ints.tolist(),
        [torch.tensor(r) for r in ints],  # a list of rows, single-input model
        [r for r in ints],
    ]
    for inp in same:
        np.testing.assert_allclose(explainer.explain(inp).values, ref, err_msg=repr(type(inp)))
    bools = ints % 3 == 0
    ref_bool = explainer.explain(bools.astype(float)).values
    for inp in (bools, torch.tensor(bools), pd.DataFrame(bools, columns=cols).astype("boolean")):
        np.testing.assert_allclose(explainer.explain(inp).values, ref_bool)
    one = explainer.explain(ints[:1])
    assert one.values.shape == (1, 4, 3) and one.n_samples == 1


# non-regression: foundation QA finding (named by the test)
def test_pandas_missing_values_and_bad_columns_are_named():
    explainer = Gradient().fit(mlp_factory(4, 3))
    df = pd.DataFrame(np.arange(20).reshape(5, 4), columns=list("abcd")).astype("Int64")
    with pytest.raises(ValueError, match=r"1 NaN.*first rows: \[2\]"):
        explainer.explain(df.mask(df == 9))
    with pytest.raises(TypeError, match="column 'b' has non-numeric dtype"):
        explainer.explain(df.assign(b=pd.date_range("2020", periods=5)))
    with pytest.raises(ValueError, match="leading sample axis"):
        explainer.explain(np.zeros(4))
    fitted = Gradient().fit(mlp_factory(4, 3), df.astype(float))
    with pytest.raises(ValueError, match="same columns in the same order"):
        fitted.explain(df[["b", "a", "c", "d"]])

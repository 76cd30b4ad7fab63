"""Explainer API: inputs, output selection, errors, model safety, sklearn protocol."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from _torch_models import TwoInput, assert_unchanged, cnn, mlp, snapshot
from sklearn.base import clone
from torch import nn

from sknn_explain import (
    Attribution,
    ExpectedGradients,
    Gradient,
    IntegratedGradients,
    SmoothGrad,
    torch_grad,
)

ALL = [
    Gradient(),
    Gradient(times_input=True),
    SmoothGrad(n=4, random_state=0),
    IntegratedGradients(n=4),
    ExpectedGradients(n=4, random_state=0),
]
IDS = ["grad", "gradxinput", "smoothgrad", "intgrad", "expgrad"]


@pytest.fixture
def tabular():
    torch.manual_seed(0)
    return mlp(softmax=True), np.random.default_rng(0).normal(size=(20, 5))


# ---------------------------------------------------------------- model safety
@pytest.mark.parametrize("explainer", ALL, ids=IDS)
def test_model_untouched_after_fit_and_explain(explainer, tabular):
    model, X = tabular
    model.train()  # a user model in training mode with a hook and a stale grad
    model[0].weight.grad = torch.ones_like(model[0].weight)
    model[2].weight.requires_grad_(False)
    handle = model.register_forward_hook(lambda *a: None)
    before = snapshot(model)
    clone(explainer).set_params(dtype="double").fit(model, X).explain(X[:3])
    assert_unchanged(model, before)
    handle.remove()


@pytest.mark.parametrize("explainer", ALL, ids=IDS)
def test_model_untouched_when_explain_raises(explainer, tabular):
    model, X = tabular
    before = snapshot(model)
    fitted = clone(explainer).fit(model, X)
    with pytest.raises(ValueError):
        fitted.explain(X[:, :3])
    with pytest.raises(ValueError):
        fitted.explain(X, output_idx=99)
    assert_unchanged(model, before)


def test_functional_api_restores_training_flag_also_on_error(tabular):
    model, X = tabular
    model.train()
    before = snapshot(model)
    torch_grad(model, torch.as_tensor(X[:2], dtype=torch.float32))
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match="failed on input"):
        torch_grad(model, torch.zeros(2, 3))
    assert_unchanged(model, before)


def test_dropout_is_off_while_explaining():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 50), nn.Dropout(0.9), nn.Linear(50, 2)).train()
    X = torch.randn(6, 4)
    a = Gradient().fit(model).explain(X).values
    b = Gradient().fit(model).explain(X).values
    assert np.array_equal(a, b)
    assert model.training


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (np.zeros((3, 4)), ValueError, "has 4 features, but the explainer was fitted with 5"),
        (np.zeros((3, 5, 1)), ValueError, "rank"),
        (np.zeros(5), ValueError, r"reshape\(1, -1\)"),
        (np.array([[np.nan, 0, 0, 0, 0]]), ValueError, "1 NaN"),
        (np.array([[np.inf, 0, 0, 0, 0]]), ValueError, "infinite"),
        (np.zeros((0, 5)), ValueError, "empty"),
        (np.array([["a"] * 5]), TypeError, "dtype"),
        (pd.DataFrame({"a": [1.0], "b": ["x"], "c": [1], "d": [1], "e": [1]}), TypeError,
         "column 'b'"),
        (pd.Series([1.0, 2.0]), ValueError, "Series"),
    ],
    ids=["features", "rank", "1d", "nan", "inf", "empty", "strings", "df-column", "series"],
)
def test_bad_input_gives_clear_error(tabular, bad, error, match):
    model, X = tabular
    explainer = Gradient().fit(model, X)
    with pytest.raises(error, match=match):
        explainer.explain(bad)


def test_bad_reference_data_is_checked(tabular):
    model, X = tabular
    X_nan = X.copy()
    X_nan[2, 1] = np.nan
    with pytest.raises(ValueError, match="X_ref contains 1 NaN"):
        IntegratedGradients().fit(model, X_nan)
    with pytest.raises(ValueError, match="needs reference data"):
        ExpectedGradients().fit(model)


def test_unfitted_explainer_raises():
    with pytest.raises(ValueError, match="not fitted"):
        Gradient().explain(np.zeros((2, 5)))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"dtype": "half"}, "dtype"),
        ({"device": "tpu"}, "device"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_hyperparameters(tabular, params, match):
    model, X = tabular
    with pytest.raises(ValueError, match=match):
        Gradient(**params).fit(model, X)
    with pytest.raises(ValueError, match="'n' parameter of SmoothGrad must be"):
        SmoothGrad(n=0).fit(model, X)
    with pytest.raises(ValueError, match="noise_level"):
        SmoothGrad(noise_level=-1).fit(model, X)


def test_not_a_model():
    with pytest.raises(TypeError, match="cannot explain a str"):
        Gradient().fit("model")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"output_idx": 10}, ValueError, r"out of range .* 10 node"),
        ({"output_idx": [0, 0]}, ValueError, "duplicates"),
        ({"output_idx": 1.5}, TypeError, "integers"),
        ({"output_label": "nope"}, ValueError, "unknown output_label 'nope'"),
        ({"output_idx": 0, "output_label": "Y1"}, ValueError, "not both"),
        ({"output_idx": [[0], [1]]}, ValueError, "2 output layers, but the model has 1"),
    ],
)
def test_bad_output_selection(tabular, kwargs, error, match):
    model, X = tabular
    with pytest.raises(error, match=match):
        Gradient().fit(model, X).explain(X[:2], **kwargs)


# ---------------------------------------------------------------- selection & names
def test_default_selects_first_ten_outputs():
    model = mlp(n_out=12)
    res = Gradient().fit(model).explain(torch.randn(2, 5))
    assert res.values.shape == (2, 5, 10)
    assert res.output_names == [[f"Y{i}" for i in range(1, 11)]]


def test_output_idx_and_label_select_the_same_columns(tabular):
    model, X = tabular
    full = Gradient().fit(model).explain(X)
    by_idx = Gradient().fit(model).explain(X, output_idx=[3, 1])
    by_label = Gradient().fit(model).explain(X, output_label=["Y4", "Y2"])
    assert np.array_equal(by_idx.values, full.values[..., [3, 1]])
    assert np.array_equal(by_label.values, by_idx.values)


def test_pandas_column_names_become_feature_names(tabular):
    model, X = tabular
    df = pd.DataFrame(X, columns=list("abcde"))
    explainer = Gradient().fit(model, df)
    assert list(explainer.feature_names_in_) == list("abcde")
    res = explainer.explain(X[:2])  # numpy at explain time keeps the fitted names
    assert res.input_names == [[list("abcde")]]
    frame = res.to_frame()
    assert list(frame["feature"].cat.categories) == list("abcde")
    with pytest.raises(ValueError, match="feature names"):
        explainer.explain(df.rename(columns={"a": "z"}))


def test_ignore_last_act_drops_trailing_softmax(tabular):
    model, X = tabular
    logits = model[:-1]
    with_act = Gradient(ignore_last_act=False).fit(model).explain(X).values
    without = Gradient().fit(model).explain(X).values
    ref = Gradient().fit(logits).explain(X).values
    assert np.allclose(without, ref)
    assert not np.allclose(with_act, ref)
    probs = Gradient(ignore_last_act=False).fit(model).explain(X).predictions
    assert np.allclose(probs.sum(1), 1, atol=1e-5)


def test_multi_input_multi_output_model():
    model = TwoInput()
    torch.manual_seed(0)
    img, tab = torch.randn(3, 2, 6, 6), torch.randn(3, 4)
    res = IntegratedGradients(n=30, dtype="double").fit(model).explain(
        [img, tab], output_idx=[[0, 2], [1]]
    )
    values = res.values
    assert len(values) == 2 and len(values[0]) == 2
    assert values[0][0].shape == (3, 2, 6, 6, 2) and values[0][1].shape == (3, 4, 2)
    assert values[1][0].shape == (3, 2, 6, 6, 1)
    # reference: torch autograd on the right output node
    x = [img.double().requires_grad_(), tab.double().requires_grad_()]
    m = model.double()
    out = m(*x)[1][:, 1].sum()
    g = torch.autograd.grad(out, x)
    plain = Gradient(dtype="double").fit(model).explain([img, tab], output_idx=[None, [1]])
    assert np.allclose(plain.values[0][..., 0], g[0].numpy())
    assert np.allclose(plain.values[1][..., 0], g[1].numpy())
    frame = res.to_frame()
    assert set(frame["model_output"]) == {"Output_1", "Output_2"}
    assert set(frame["input_dimension"]) == {1, 3}
    assert np.allclose(res.decomp_sum[0], res.decomp_goal[0], atol=1e-2)


def test_channels_last_layout_round_trips():
    model = cnn()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    first = Gradient().fit(model).explain(x)
    last = Gradient(channels_first=False).fit(model).explain(x.permute(0, 2, 3, 1))
    assert last.values.shape == (2, 8, 8, 3, 10)
    assert np.allclose(np.moveaxis(last.values, 3, 1), first.values)
    f1, f2 = first.to_frame(), last.to_frame()
    pd.testing.assert_frame_equal(
        f1.sort_values(["data", "channel", "feature", "feature_2", "output_node"]).reset_index(
            drop=True),
        f2.sort_values(["data", "channel", "feature", "feature_2", "output_node"]).reset_index(
            drop=True),
        rtol=1e-4,
    )


# ---------------------------------------------------------------- skorch
@pytest.fixture(scope="module")
def skorch_net():
    from skorch import NeuralNetClassifier

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
    from sklearn.preprocessing import LabelEncoder

    enc = LabelEncoder().fit(y)
    net = NeuralNetClassifier(
        nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)),
        criterion=nn.CrossEntropyLoss, max_epochs=3, train_split=None, verbose=0,
    )
    net.fit(X, enc.transform(y).astype(np.int64))
    return net, X


def test_skorch_net_with_class_names(skorch_net):
    net, X = skorch_net
    res = Gradient().fit(net, X).explain(X[:4], output_label=[2, 0])
    assert res.output_names == [[2, 0]]
    direct = Gradient().fit(net.module_, X).explain(X[:4], output_idx=[2, 0])
    assert np.allclose(res.values, direct.values)
    probs = Gradient(ignore_last_act=False).fit(net, X).explain(X[:4], output_idx=[0, 1, 2])
    assert np.allclose(probs.predictions, net.predict_proba(X[:4]), atol=1e-5)


def test_unfitted_skorch_net_raises():
    from skorch import NeuralNetClassifier

    net = NeuralNetClassifier(nn.Linear(4, 2))
    with pytest.raises(ValueError, match="not fitted"):
        Gradient().fit(net)


# ---------------------------------------------------------------- sklearn protocol
@pytest.mark.parametrize("explainer", ALL, ids=IDS)
def test_clone_pickle_and_repr(explainer, tabular):
    model, X = tabular
    est = clone(explainer)
    assert est.get_params() == explainer.get_params()
    assert type(est).__name__ in repr(est)
    fitted = est.fit(model, X)
    restored = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(restored.explain(X[:3]).values, fitted.explain(X[:3]).values)


def test_set_params_changes_result(tabular):
    model, X = tabular
    est = IntegratedGradients(n=2).fit(model, X)
    a = est.explain(X[:2]).values
    b = est.set_params(n=40).explain(X[:2]).values
    assert not np.allclose(a, b)


# ---------------------------------------------------------------- Attribution
def test_attribution_frame_and_repr(tabular):
    model, X = tabular
    res = IntegratedGradients(n=10).fit(model, X).explain(X[:3], output_idx=[0, 4])
    assert isinstance(res, Attribution)
    frame = res.to_frame()
    assert list(frame.columns) == [
        "data", "model_input", "model_output", "feature", "feature_2", "channel",
        "output_node", "value", "pred", "decomp_sum", "decomp_goal", "input_dimension",
        "index",
    ]
    assert len(frame) == 3 * 5 * 2
    row = frame[(frame["data"] == "data_2") & (frame["feature"] == "X3")
                & (frame["output_node"] == "Y5")]
    assert row["value"].item() == pytest.approx(res.values[1, 2, 1])
    assert row["pred"].item() == pytest.approx(res.predictions[1, 1])
    assert row["decomp_goal"].item() == pytest.approx(res.decomp_goal[1, 1])
    assert frame.groupby(["data", "output_node"], observed=True)["value"].sum().to_numpy() \
        == pytest.approx(res.decomp_sum.reshape(-1), rel=1e-5)
    text = repr(res)
    assert "IntegratedGradients" in text and "(3, 5, 2)" in text and "nan=0" in text
    assert isinstance(res.to_tensor(), torch.Tensor)


def test_signal_frame_uses_channel_and_position_names():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6, 2))
    res = Gradient().fit(model).explain(torch.randn(2, 2, 8))
    frame = res.to_frame()
    assert set(frame["channel"]) == {"C1", "C2"}
    assert list(frame["feature"].cat.categories) == [f"L{i}" for i in range(1, 9)]
    assert frame["feature_2"].isna().all()
    assert (frame["input_dimension"] == 2).all()


def test_verbose_shows_a_progress_bar(tabular, capsys):
    model, X = tabular
    IntegratedGradients(n=5, batch_size=10, verbose=True).fit(model).explain(X)
    err = capsys.readouterr().err
    assert "IntegratedGradients" in err and "10/10" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_is_a_clear_error(tabular):
    model, X = tabular
    with pytest.raises(ValueError, match="no CUDA device"):
        Gradient(device="cuda").fit(model, X)
    assert Gradient(device="auto").fit(model, X).device_.type == "cpu"


def test_skorch_net_in_pipeline_keeps_class_names_and_feature_space(skorch_net):
    import warnings

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    net, X = skorch_net
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    scaler = StandardScaler().fit(df)
    pipe = make_pipeline(scaler, net)  # net was trained on raw X; only the maths matter here
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names" noise
        res = Gradient(dtype="double", space="raw").fit(pipe, df).explain(
            df.iloc[:3], output_label=[2])
    assert res.output_names == [[2]]
    assert res.input_names == [[["a", "b", "c", "d"]]]
    # chain rule through the folded scaler: d/dx f((x - m) / s) = f'((x - m) / s) / s
    inner = Gradient(dtype="double").fit(net.module_).explain(
        scaler.transform(df.iloc[:3]), output_idx=[2])
    assert np.allclose(res.values, inner.values / scaler.scale_[None, :, None], atol=1e-6)


def test_pipeline_and_gridsearch_misuse_point_to_attribution_transformer():
    """make_pipeline(scaler, explainer) and GridSearchCV(explainer) say what to use instead."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sknn_explain import IntegratedGradients

    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    with pytest.raises(TypeError, match="AttributionTransformer"):
        make_pipeline(StandardScaler(), IntegratedGradients()).fit(X, y)
    with pytest.raises(TypeError, match="takes the model to explain first"):
        IntegratedGradients().fit(torch.zeros(3, 3))
    with pytest.raises(TypeError, match="AttributionTransformer"):
        IntegratedGradients().score(X)
    search = GridSearchCV(IntegratedGradients(), {"n": [5, 10]}, cv=2, error_score="raise")
    with pytest.raises(TypeError, match="AttributionTransformer"):
        search.fit(X, y)



def test_to_frame_keeps_the_dataframe_index_for_joins(tabular):
    model, X = tabular
    df = pd.DataFrame(np.asarray(X[:4]), index=["a", "b", "c", "d"],
                      columns=[f"c{j}" for j in range(np.asarray(X).shape[1])])
    res = IntegratedGradients(n=5).fit(model, df).explain(df.iloc[1:3], output_idx=[0])
    frame = res.to_frame()
    assert set(frame["index"]) == {"b", "c"}
    joined = frame.merge(df, left_on="index", right_index=True)
    row = joined[(joined["index"] == "c") & (joined["feature"] == "c0")]
    assert row["c0"].item() == df.loc["c", "c0"]
    plain = IntegratedGradients(n=5).fit(model, X).explain(X[:3], output_idx=[0]).to_frame()
    assert sorted(set(plain["index"])) == [0, 1, 2]

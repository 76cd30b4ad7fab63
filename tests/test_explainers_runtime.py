"""Issue #10, runtime part: non-finite outputs, threads, the functional API, squeezed outputs,
bounded model calls of the agnostic methods, result arrays that do not alias user data, and
bool / integer model inputs."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch
from _torch_models import assert_unchanged, mlp, snapshot
from sklearn.base import clone
from torch import nn

from sknn_explain import (
    LIME,
    LRP,
    DeepLift,
    ExpectedGradients,
    Gradient,
    IntegratedGradients,
    KernelSHAP,
    SmoothGrad,
    torch_expgrad,
    torch_grad,
    torch_intgrad,
    torch_smoothgrad,
)


def _run_threads(fn, n_threads: int) -> list:
    """Run ``fn(i)`` in ``n_threads`` threads started together; re-raise the first error."""
    results: list = [None] * n_threads
    errors: list = []
    barrier = threading.Barrier(n_threads)

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


# ---------------------------------------------------------------------------- item 7
def _bn_train_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3)
    )
    with torch.no_grad():  # non-trivial running statistics
        model[1].running_mean.normal_()
        model[1].running_var.uniform_(0.5, 2.0)
    return model.train()


@pytest.mark.parametrize("fn", [
    lambda m, x: torch_grad(m, x, times_input=True),
    lambda m, x: torch_smoothgrad(m, x, n=4, random_state=0),
    lambda m, x: torch_intgrad(m, x, n=6),
    lambda m, x: torch_expgrad(m, x, x, n=4, random_state=0),
], ids=["grad", "smoothgrad", "intgrad", "expgrad"])
def test_functional_threads_never_touch_a_train_mode_bn_model(fn):
    model = _bn_train_model()
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(1))
    before = snapshot(model)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    threaded = _run_threads(lambda i: fn(model, x), 6)
    assert_unchanged(model, before)
    assert all(m.training for m in model.modules())
    for k, v in model.named_buffers():
        assert torch.equal(v, buffers[k]), k
    sequential = fn(model, x)
    assert_unchanged(model, before)
    for r in threaded:
        assert torch.equal(r, sequential)
    # eval semantics: the same as explaining an eval-mode copy
    evaluated = _bn_train_model().eval()
    assert torch.equal(fn(evaluated, x), sequential)


def test_functional_never_switches_the_users_module_during_a_call():
    """Deterministic form of the thread race: the user's module is never in eval mode while
    the explanation runs (another thread could run or switch it in between)."""
    model = _bn_train_model()
    seen = []
    handle = model.register_forward_pre_hook(
        lambda m, args: seen.append((m is model, m.training, model.training))
    )
    try:
        torch_intgrad(model, torch.randn(6, 4), n=3)
    finally:
        handle.remove()
    assert seen
    assert all(user_flag for _, _, user_flag in seen)  # the user's flag stayed True throughout
    assert all(not training for _, training, _ in seen)  # yet the forward ran in eval mode


def test_functional_on_an_eval_model_uses_it_without_changes():
    model = _bn_train_model().eval()
    before = snapshot(model)
    torch_intgrad(model, torch.randn(5, 4), n=4)
    assert_unchanged(model, before)
    assert not any(m.training for m in model.modules())


# ---------------------------------------------------------------------------- item 8
_THREAD_EXPLAINERS = [
    Gradient(times_input=True),
    SmoothGrad(n=4, random_state=0),
    IntegratedGradients(n=8),
    ExpectedGradients(n=4, random_state=0),
    LRP(rule_name="epsilon"),
    DeepLift(),
    KernelSHAP(random_state=0),
    LIME(n_samples=50, random_state=0),
]


def test_one_fitted_explainer_per_method_explains_from_threads():
    """Several fitted explainers, each used from several threads at once: the results equal
    the sequential ones (seeded methods draw the same numbers in every call)."""
    model = mlp(5, 3)
    rng = np.random.default_rng(0)
    X_ref = rng.normal(size=(20, 5)).astype(np.float32)
    batches = [rng.normal(size=(6, 5)).astype(np.float32) for _ in range(4)]
    fitted = [e.fit(model, X_ref) for e in _THREAD_EXPLAINERS]
    sequential = [[e.explain(X).values for X in batches] for e in fitted]
    jobs = [(i, j) for i in range(len(fitted)) for j in range(len(batches))] * 2

    def run(t: int):
        i, j = jobs[t]
        return fitted[i].explain(batches[j]).values

    for t, values in enumerate(_run_threads(run, len(jobs))):
        i, j = jobs[t]
        np.testing.assert_array_equal(values, sequential[i][j])


def test_first_explain_of_a_pending_conversion_from_threads():
    """A CNN fitted without X_ref converts on the first explain; threads race to it."""
    from _torch_models import cnn

    model = cnn(4)
    X = np.random.default_rng(0).normal(size=(3, 3, 8, 8)).astype(np.float32)
    expected = LRP().fit(model).explain(X).values
    lrp = LRP().fit(model)
    for values in _run_threads(lambda i: lrp.explain(X).values, 6):
        np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------- item 9
class _SqueezedUntraceable(nn.Module):
    """One output node, ``forward`` ends in ``.squeeze()``; data-dependent control flow keeps
    torch.fx from converting it, so explainers run the module itself."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 1e9:
            x = x * 2
        return self.lin(x).squeeze()


_SQUEEZE_EXPLAINERS = [
    Gradient(times_input=True),
    SmoothGrad(n=3, random_state=0),
    IntegratedGradients(n=5),
    ExpectedGradients(n=3, random_state=0),
    KernelSHAP(random_state=0),
    LIME(n_samples=40, random_state=0),
]


@pytest.mark.parametrize("explainer", _SQUEEZE_EXPLAINERS,
                         ids=[type(e).__name__ for e in _SQUEEZE_EXPLAINERS])
@pytest.mark.parametrize("n", [1, 5])
def test_squeezed_one_output_model_is_explained(explainer, n):
    model = _SqueezedUntraceable()
    X = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    res = explainer.fit(model, X).explain(X[:n])
    assert res.values.shape == (n, 4, 1)
    expected = model(X[:n]).detach().reshape(n, 1).numpy()
    np.testing.assert_allclose(res.predictions, expected, rtol=1e-5, atol=1e-6)
    if isinstance(explainer, Gradient):  # linear model: gradient x input = w * x
        w = model.lin.weight.detach().numpy()[0]
        np.testing.assert_allclose(res.values[..., 0], X[:n].numpy() * w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [1, 3])
def test_functional_api_with_a_squeezed_output(n):
    model = _SqueezedUntraceable()
    x = torch.randn(n, 4)
    g = torch_grad(model, x)
    assert g.shape == (n, 4, 1)
    torch.testing.assert_close(g[..., 0], model.lin.weight.detach().expand(n, 4))


def test_squeezed_multi_output_one_row():
    """A (1, k) output squeezed to (k,) for a one-row batch is one row of k outputs."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.lin = nn.Linear(4, 3)

        def forward(self, x):
            if x.sum() > 1e9:
                x = x * 2
            return self.lin(x).squeeze()

    model = Net()
    X = torch.randn(5, 4)
    for n in (1, 5):
        res = Gradient().fit(model, X).explain(X[:n])
        assert res.values.shape == (n, 4, 3)
        np.testing.assert_allclose(res.values[0], model.lin.weight.detach().numpy().T, rtol=1e-6)


# ---------------------------------------------------------------------------- item 10
class _CountingFunction:
    """A prediction function that records the number of rows of every call."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.w = np.array([1.0, -2.0, 0.5, 3.0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.rows.append(x.shape[0])
        return np.stack([np.tanh(x @ self.w), x[:, 0] * x[:, 1]], axis=1)


@pytest.mark.parametrize("make", [
    lambda bs: KernelSHAP(limit_ref=None, random_state=0, batch_size=bs),
    lambda bs: KernelSHAP(limit_ref=150, random_state=0, batch_size=bs),
    lambda bs: LIME(n_samples=120, baseline="sample", random_state=0, batch_size=bs),
    lambda bs: LIME(n_samples=120, baseline="mean", random_state=0, batch_size=bs),
], ids=["kernelshap-all-ref", "kernelshap-limit", "lime-sample", "lime-mean"])
@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_agnostic_model_calls_respect_batch_size(make, batch_size):
    rng = np.random.default_rng(0)
    X_ref, X = rng.normal(size=(300, 4)), rng.normal(size=(3, 4))
    fn = _CountingFunction()
    res = make(batch_size).fit(fn, X_ref).explain(X)
    assert fn.rows and max(fn.rows) <= batch_size
    big = make(None).fit(_CountingFunction(), X_ref).explain(X)  # default: larger chunks
    np.testing.assert_allclose(res.values, big.values, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(res.predictions, big.predictions, rtol=1e-12)


# ---------------------------------------------------------------------------- item 13
_ALIAS_EXPLAINERS = [
    Gradient(times_input=True, dtype="double"),
    IntegratedGradients(n=3, dtype="double"),
    LRP(dtype="double"),
    DeepLift(dtype="double"),
    KernelSHAP(random_state=0),
    LIME(n_samples=30, random_state=0),
]


@pytest.mark.parametrize("explainer", _ALIAS_EXPLAINERS,
                         ids=[type(e).__name__ for e in _ALIAS_EXPLAINERS])
@pytest.mark.parametrize("kind", ["numpy", "tensor", "numpy32", "tensor32"])
def test_attribution_arrays_never_alias_user_data(explainer, kind):
    model = mlp(4, 3).double()
    X_np = np.random.default_rng(0).normal(size=(6, 4))
    if kind.endswith("32"):
        X_np = X_np.astype(np.float32)
    X = X_np if kind.startswith("numpy") else torch.tensor(X_np)
    view = X if kind.startswith("numpy") else X.numpy()
    original = view.copy()
    res = explainer.fit(model, X).explain(X)
    for arr in (res.values, res.predictions, res.to_numpy()):
        assert not np.shares_memory(arr, view)
    # inputs view X as given (float32 and float64: no copy of a large input) but can never
    # write into it
    if not isinstance(explainer, (KernelSHAP, LIME)):
        assert np.shares_memory(res.inputs, view) and res.inputs.dtype == view.dtype
    with pytest.raises(ValueError, match="read-only"):
        res.inputs[:] = 123.0
    res.values[:] = 7.0
    np.testing.assert_array_equal(view, original)
    np.testing.assert_array_equal(res.inputs, original)
    if kind.endswith("32"):  # float32 data are converted exactly: float64's answer
        wide = clone(explainer).fit(model, original.astype(np.float64)).explain(
            original.astype(np.float64))
        np.testing.assert_array_equal(explainer.explain(X).values, wide.values)


def test_functional_attribution_inputs_are_read_only():
    x = torch.randn(4, 3, dtype=torch.float64)
    original = x.clone()
    res = torch_grad(nn.Linear(3, 2).double(), x, return_object=True)
    with pytest.raises(ValueError, match="read-only"):
        res.inputs[:] = 0.0
    assert torch.equal(x, original)


# ---------------------------------------------------------------------------- item 5
class _LogModel(nn.Module):
    """``w.x + log(x_0 + 1)``: NaN where ``x_0 < -1``, although its gradient is finite."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + torch.log(x[:, :1] + 1.0)


def _overflow_model() -> nn.Sequential:
    """Plain layers (converted to a graph) whose float32 output overflows to inf where
    ``x_0 >= 1000`` (and stays finite on the converter's example inputs)."""
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1e18, 0.0], [0.0, 1.0]]))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[1e18, 1.0]]))
        model[2].bias.zero_()
    return model


def _nan_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X_ref = rng.uniform(0.0, 1.0, size=(20, 4))
    X = rng.uniform(0.0, 1.0, size=(5, 4))
    X[[1, 3], 0] = -3.0  # the model returns NaN on rows 1 and 3
    return X_ref, X


_NAN_EXPLAINERS = [
    Gradient(dtype="double"),
    Gradient(times_input=True, dtype="double"),
    SmoothGrad(n=3, noise_level=0.01, random_state=0, dtype="double"),
    IntegratedGradients(n=4, dtype="double"),
    ExpectedGradients(n=4, random_state=0, dtype="double"),
    KernelSHAP(random_state=0),
    LIME(n_samples=40, random_state=0),
]


@pytest.mark.parametrize("explainer", _NAN_EXPLAINERS,
                         ids=[type(e).__name__ for e in _NAN_EXPLAINERS])
def test_nan_model_outputs_are_named_and_give_nan_attributions(explainer):
    X_ref, X = _nan_data()
    explainer.fit(_LogModel(), X_ref)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        res = explainer.explain(X)
    messages = [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]
    assert any("the model returned NaN/inf for rows [1, 3] of X (outputs ['Y1', 'Y2'])" in m
               for m in messages), messages
    good = [0, 2, 4]
    assert np.isnan(res.values[[1, 3]]).all()
    assert np.isfinite(res.values[good]).all()
    assert np.isnan(res.predictions[[1, 3]]).all()
    # the finite rows are exactly what explaining them alone gives
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        alone = explainer.explain(X[good])
    if not isinstance(explainer, (SmoothGrad, ExpectedGradients, LIME)):  # random draws
        np.testing.assert_allclose(res.values[good], alone.values, rtol=1e-10, atol=1e-12)


def test_inf_outputs_of_a_propagation_method_are_named():
    model = _overflow_model()
    X = np.array([[0.0, 1.0], [1e3, 1.0], [0.0, 2.0], [1e3, 0.0]])
    with pytest.warns(RuntimeWarning, match=r"NaN/inf for rows \[1, 3\] of X \(output 'Y1'\)"):
        res = LRP(rule_name="epsilon").fit(model, X[[0, 2]]).explain(X)
    assert np.isnan(res.values[[1, 3]]).all()
    assert np.isfinite(res.values[[0, 2]]).all()


def test_functional_api_names_nan_rows():
    _, X = _nan_data()
    with pytest.warns(RuntimeWarning, match=r"rows \[1, 3\] of X"):
        g = torch_grad(_LogModel().double(), torch.tensor(X))
    assert torch.isnan(g[[1, 3]]).all() and torch.isfinite(g[[0, 2, 4]]).all()


def test_nan_on_the_integration_path_and_at_the_baseline_is_reported():
    model = _LogModel()
    X = np.full((3, 4), 0.5)
    X_ref = np.full((1, 4), 0.5)
    X_ref[0, 0] = -3.0  # f(x_ref) is NaN, and so are the first path points
    ig = IntegratedGradients(n=4, dtype="double").fit(model, X_ref)
    with pytest.warns(RuntimeWarning) as record:
        res = ig.explain(X)
    messages = " | ".join(str(w.message) for w in record)
    assert "rows [0, 1, 2] at the IntegratedGradients evaluation points" in messages
    assert "decomposition goal is NaN/inf" in messages
    assert np.isnan(res.values).all()
    assert np.isfinite(res.predictions).all()


def test_nan_on_perturbed_copies_is_reported():
    X_ref, X = _nan_data()
    X = X[[0, 2, 4]]  # finite outputs at X itself
    X_ref[[4, 9], 0] = -3.0  # but some reference rows give NaN
    lime = LIME(n_samples=60, baseline="sample", random_state=0).fit(_LogModel(), X_ref)
    with pytest.warns(RuntimeWarning, match=r"rows \[0, 1, 2\] of X on perturbed copies"):
        res = lime.explain(X)
    assert np.isnan(res.values).all() and np.isfinite(res.predictions).all()


def test_kernelshap_rejects_nan_background_outputs():
    X_ref, _ = _nan_data()
    X_ref[[4, 9], 0] = -3.0
    with pytest.raises(ValueError, match=r"NaN/inf for rows \[4, 9\] of X_ref"):
        KernelSHAP().fit(_LogModel(), X_ref)
    with pytest.raises(ValueError, match=r"rows \[4, 9\] of X_ref"):  # rows of the user's X_ref
        KernelSHAP(limit_ref=19, random_state=0).fit(_LogModel(), X_ref)


# ---------------------------------------------------------------------------- item 14
class _BoolNet(nn.Module):
    """Needs bool inputs (``~`` and ``&`` are not defined for floats)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin((x & ~x[:, :1]).float()))


class _FloatTwin(_BoolNet):
    """The same function on 0 / 1 floats."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(x * (1 - x[:, :1])))


class _EmbeddingNet(nn.Module):
    """Needs integer inputs (embedding indices)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(10, 3)
        self.lin = nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.emb(x).flatten(1))


def _bool_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((30, 4)) > 0.5, rng.random((4, 4)) > 0.5


@pytest.mark.parametrize("make", [
    lambda: KernelSHAP(random_state=0),
    lambda: LIME(n_samples=60, baseline="sample", random_state=0),
], ids=["kernelshap", "lime"])
@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_agnostic_methods_feed_bool_inputs_unchanged(make, kind):
    X_ref, X = _bool_data()
    if kind == "tensor":
        X_ref, X = torch.as_tensor(X_ref), torch.as_tensor(X)
    model = _BoolNet()
    before = snapshot(model)
    res = make().fit(model, X_ref).explain(X)
    assert_unchanged(model, before)
    expected = model(torch.as_tensor(np.asarray(X))).detach().numpy()
    np.testing.assert_allclose(res.predictions, expected, rtol=1e-6)
    twin = make().fit(_FloatTwin(), np.asarray(X_ref, dtype=float)).explain(
        np.asarray(X, dtype=float))
    np.testing.assert_allclose(res.values, twin.values, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("make", [
    lambda: KernelSHAP(random_state=0),
    lambda: LIME(n_samples=60, baseline="sample", random_state=0),
], ids=["kernelshap", "lime"])
def test_agnostic_methods_feed_integer_inputs_unchanged(make):
    rng = np.random.default_rng(1)
    X_ref, X = rng.integers(0, 10, (25, 4)), rng.integers(0, 10, (3, 4))
    model = _EmbeddingNet()
    res = make().fit(model, X_ref).explain(X)
    expected = model(torch.as_tensor(X)).detach().numpy()
    np.testing.assert_allclose(res.predictions, expected, rtol=1e-6)
    if isinstance(make(), KernelSHAP):
        np.testing.assert_allclose(res.decomp_sum, res.decomp_goal, atol=1e-6)


def test_bool_model_inputs_are_checked():
    X_ref, X = _bool_data()
    shap = KernelSHAP(random_state=0).fit(_BoolNet(), X_ref)
    with pytest.raises(ValueError, match="values other than 0 / 1.*bool inputs"):
        shap.explain(np.where(X, 0.5, 0.0))
    with pytest.raises(ValueError, match="baseline='sample'"):
        LIME(baseline="mean").fit(_BoolNet(), X_ref)
    rng = np.random.default_rng(1)
    lime = LIME(n_samples=20, baseline="sample").fit(_EmbeddingNet(), rng.integers(0, 10, (9, 4)))
    with pytest.raises(ValueError, match="non-integer values.*int64"):
        lime.explain(np.full((2, 4), 1.5))


@pytest.mark.parametrize("model", [_BoolNet(), _EmbeddingNet()], ids=["bool", "embedding"])
@pytest.mark.parametrize("make", [
    lambda: Gradient(ignore_last_act=False),
    lambda: IntegratedGradients(n=3, ignore_last_act=False),
    lambda: SmoothGrad(n=2, ignore_last_act=False),
], ids=["gradient", "intgrad", "smoothgrad"])
def test_gradient_methods_say_they_need_float_inputs(model, make):
    X = np.random.default_rng(0).integers(0, 2, (5, 4))
    explainer = make()
    if isinstance(model, _EmbeddingNet):  # by default attributed per code column (embeddings)
        explainer.set_params(embeddings=None)
    with pytest.raises(TypeError, match="need float inputs.*KernelSHAP or LIME"):
        explainer.fit(model, X).explain(X)


def test_bool_input_explainer_pickles():
    import pickle

    X_ref, X = _bool_data()
    shap = KernelSHAP(random_state=0).fit(_BoolNet(), X_ref)
    again = pickle.loads(pickle.dumps(shap))
    np.testing.assert_array_equal(again.explain(X).values, shap.explain(X).values)

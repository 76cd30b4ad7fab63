"""Dask integration: lazy results on a real LocalCluster equal the in-process results."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from sknn_explain import (  # noqa: E402
    AttributionTransformer,
    DeepLift,
    ExpectedGradients,
    Gradient,
    IntegratedGradients,
    KernelSHAP,
    SmoothGrad,
)
from sknn_explain.dask import LazyAttribution, ShippedEstimator, feature_importances  # noqa: E402

N, P = 37, 5
CHUNKS = ((7, 15, 4, 11), P)  # uneven, mixed chunk layout


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
        dashboard_address=None, silence_logs=40,
    )
    cl = distributed.Client(cluster, set_as_default=True)
    try:
        yield cl
    finally:
        cl.close()
        cluster.close()


def _net(seed: int = 0, k: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(P, 8), torch.nn.Tanh(), torch.nn.Linear(8, k))


def _data(seed: int = 0, n: int = N) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, P))


EXACT = {
    "Gradient": lambda: Gradient(times_input=True, dtype="double"),
    "IntegratedGradients": lambda: IntegratedGradients(n=8, dtype="double"),
    "DeepLift": lambda: DeepLift(dtype="double"),
    "SmoothGrad": lambda: SmoothGrad(n=6, random_state=3, dtype="double", batch_size=10),
    "ExpectedGradients": lambda: ExpectedGradients(n=6, random_state=4, dtype="double",
                                                   batch_size=9),
}


def _computed(lazy: LazyAttribution):
    goal = lazy.decomp_goal
    parts = (lazy.values, lazy.predictions) + (() if goal is None else (goal,))
    return dask.compute(*parts)


def _same_as_in_process(got, want) -> None:
    """Chunked vs whole-batch results of a net: equal up to the rounding of its matrix
    products, which may take another kernel for a chunk of rows than for the whole batch
    (seen on AMD EPYC: 1-2 ulp). Every draw and every reference row is the same; a wrong
    chunk offset or draw would differ by far more than ``rtol=1e-12``."""
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def _linear() -> torch.nn.Module:
    """A linear model: its gradients carry no rounding, so equality must be exact."""
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(P, 3))


@pytest.mark.parametrize("name", sorted(EXACT))
@pytest.mark.parametrize("net", ["linear", "tanh"])
def test_dask_array_equals_in_process(client, name, net):
    """Same random draws, same numbers. A Dask block groups rows into other matrix products
    than one process does, and BLAS may round a row's output differently (last bit,
    ~1e-16); the gradients of the linear net involve no such product, so its attributions
    must be bit-identical (a different random draw would show as a large difference)."""
    X = _data()
    explainer = EXACT[name]().fit(_linear() if net == "linear" else _net(), X[:12])
    ref = explainer.explain(X)
    lazy = explainer.explain(da.from_array(X, chunks=CHUNKS))
    assert isinstance(lazy, LazyAttribution)
    assert lazy.values.chunks[0] == CHUNKS[0] and lazy.values.shape == ref.values.shape
    got = _computed(lazy)
    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)

    (np.testing.assert_array_equal if net == "linear" else close)(got[0], ref.values)
    check = close  # model outputs go through a matrix product on both nets
    check(got[1], ref.predictions)
    if ref.decomp_goal is not None:
        check(got[2], ref.decomp_goal)
    assert lazy.output_names == ref.output_names


def test_random_methods_do_not_depend_on_batching_in_process():
    """Row-keyed draws: a sample's noise / references do not depend on its neighbours
    (a linear model: no rounding of matrix products, so bit-identical)."""
    X = _data()
    for make in (EXACT["SmoothGrad"], EXACT["ExpectedGradients"]):
        e = make().fit(_linear(), X[:12])
        whole = e.explain(X).values
        e.set_params(batch_size=7)
        np.testing.assert_array_equal(e.explain(X).values, whole)
    sg = SmoothGrad(n=6, random_state=0, dtype="double").fit(_net())
    a, b = sg.explain(X).values, sg.explain(X).values
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, SmoothGrad(n=6, random_state=1, dtype="double").fit(
        _net()).explain(X).values)


def test_kernelshap_same_draws_distributed(client):
    """KernelSHAP's coalitions are drawn once per call: distributed == in-process up to the
    rounding of the least-squares solve (BLAS may round a column block differently) and of
    the net's matrix products (a chunk of rows may take another kernel than the whole batch:
    seen on AMD EPYC, 1 ulp)."""
    X = _data(1)
    ks = KernelSHAP(n_samples=40, random_state=0, dtype="double").fit(_net(), X[:10])
    ref = ks.explain(X)
    got = _computed(ks.explain(da.from_array(X, chunks=CHUNKS)))
    for a, b in zip(got, (ref.values, ref.predictions, ref.decomp_goal)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_random_state_instance_and_none(client):
    X = _data(2)
    ref = SmoothGrad(n=5, random_state=np.random.RandomState(7), dtype="double").fit(
        _net()).explain(X).values
    rs = np.random.RandomState(7)
    sg = SmoothGrad(n=5, random_state=rs, dtype="double").fit(_net())
    lazy = sg.explain(da.from_array(X, chunks=CHUNKS))
    assert sg.random_state is rs  # the user's explainer is not changed (a copy is shipped)
    _same_as_in_process(lazy.values.compute(), ref)
    # None: one seed is drawn for the whole collection, so values are self-consistent
    lazy = SmoothGrad(n=5, dtype="double").fit(_net()).explain(da.from_array(X, chunks=10))
    v1, v2 = dask.compute(lazy.values, lazy.values)
    np.testing.assert_array_equal(v1, v2)


def test_dask_dataframe_input_and_long_frame(client):
    X = _data(3)
    cols = [f"f{i}" for i in range(P)]
    df = pd.DataFrame(X, columns=cols)
    ddf = dd.from_pandas(df, npartitions=3)
    ig = IntegratedGradients(n=8, dtype="double").fit(_net(), df.iloc[:10])
    ref = ig.explain(df)
    lazy = ig.explain(ddf)
    assert lazy.input_names == ref.input_names
    _same_as_in_process(lazy.values.compute(), ref.values)
    frame = lazy.to_frame()
    assert isinstance(frame, dd.DataFrame) and frame.npartitions == 3
    got, want = frame.compute(), ref.to_frame()
    assert list(got.columns) == list(want.columns)
    assert got["data"].tolist() == want["data"].astype(str).tolist()
    for col in ("feature", "output_node", "model_input"):
        assert got[col].astype(str).tolist() == want[col].astype(str).tolist()
    _same_as_in_process(got["value"].to_numpy(), want["value"].to_numpy())
    _same_as_in_process(got["decomp_goal"].to_numpy(), want["decomp_goal"].to_numpy())
    sg = SmoothGrad(n=4, random_state=5, dtype="double").fit(_net(), df.iloc[:10])
    _same_as_in_process(sg.explain(ddf).values.compute(), sg.explain(df).values)


def test_compute_gives_in_memory_attribution(client):
    X = _data(4)
    dl = DeepLift(dtype="double").fit(_net(), X[:5])
    res = dl.explain(da.from_array(X, chunks=CHUNKS)).compute()
    ref = dl.explain(X)
    _same_as_in_process(res.values, ref.values)
    np.testing.assert_array_equal(res.inputs, X)
    _same_as_in_process(res.decomp_sum, ref.decomp_sum)


def _boom(*_):
    raise RuntimeError("a task ran")


def _never_computed(shape=(N, P)) -> da.Array:
    part = dask.delayed(_boom)()
    return da.from_delayed(part, shape=shape, dtype=np.float64)


def test_lazy_until_computed():
    X = _never_computed()
    lazy = Gradient(dtype="double").fit(_net(), _data()[:5]).explain(X)
    lazy.to_frame()
    _ = lazy.values, lazy.predictions, lazy.decomp_sum
    with pytest.raises(RuntimeError, match="a task ran"):
        lazy.values.compute()


def test_bad_input_fails_before_any_task():
    X = _never_computed()
    ig = IntegratedGradients(dtype="double").fit(_net(), _data()[:5])
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        ig.explain(X[X[:, 0] > 0])
    with pytest.raises(NotFittedError):
        IntegratedGradients().explain(X)
    with pytest.raises(ValueError, match="shape|feature"):
        ig.explain(_never_computed((N, P + 1)))
    cols = [f"f{i}" for i in range(P)]
    ig_df = IntegratedGradients(dtype="double").fit(_net(), pd.DataFrame(_data()[:5],
                                                                         columns=cols))
    meta = pd.DataFrame({c: np.zeros(0) for c in reversed(cols)})
    ddf = dd.from_delayed([dask.delayed(_boom)()], meta=meta, verify_meta=False)
    with pytest.raises(ValueError, match="feature names|same columns"):
        ig_df.explain(ddf)
    with pytest.raises(ValueError, match="output"):
        ig.explain(X, output_idx=[7])


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_transformer_on_dask(client):
    X = _data(5, n=40)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    cols = [f"f{i}" for i in range(P)]
    df = pd.DataFrame(X, columns=cols)
    tr = AttributionTransformer(explainer=IntegratedGradients(n=8), random_state=0,
                                max_reference=20).fit(df, y)
    ref = tr.transform(df)
    out = tr.transform(dd.from_pandas(df, npartitions=3))
    assert isinstance(out, dd.DataFrame)
    assert list(out.columns) == list(tr.get_feature_names_out())
    _same_as_in_process(out.compute().to_numpy(), ref)
    arr = tr.transform(da.from_array(X, chunks=((13, 27), P)))
    _same_as_in_process(arr.compute(), tr.transform(X))
    imp = feature_importances(tr, da.from_array(X, chunks=11))
    np.testing.assert_allclose(imp, np.abs(tr.transform(X)).mean(axis=0), rtol=1e-12)
    with pytest.raises(ValueError, match="features"):
        tr.transform(da.zeros((10, P + 2), chunks=5))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_transformer_random_explainer_matches_in_process(client):
    """SmoothGrad inside the transformer: row-keyed noise and the whole-data noise scale."""
    X = _data(9, n=30)
    y = X[:, 0] - X[:, 2]
    tr = AttributionTransformer(explainer=SmoothGrad(n=5, random_state=1, dtype="double"),
                                random_state=0).fit(X, y)
    got = tr.transform(da.from_array(X, chunks=((4, 20, 6), P))).compute()
    np.testing.assert_allclose(got, tr.transform(X), rtol=1e-12, atol=1e-14)


def test_parallel_post_fit(client):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X = _data(6, n=40)
    y = (X[:, 0] > 0).astype(int)
    tr = AttributionTransformer(explainer=IntegratedGradients(n=8), random_state=0)
    ppf = wrappers.ParallelPostFit(tr).fit(X, y)
    out = ppf.transform(da.from_array(X, chunks=((13, 27), P)))
    _same_as_in_process(np.asarray(out.compute()), ppf.estimator.transform(X))


def test_zarr_and_parquet_round_trip(client, tmp_path):
    zarr = pytest.importorskip("zarr")
    pytest.importorskip("pyarrow")
    X = _data(7)
    ig = IntegratedGradients(n=8, dtype="double").fit(_net(), X[:10])
    ref = ig.explain(X)
    lazy = ig.explain(da.from_array(X, chunks=CHUNKS))
    lazy.to_zarr(str(tmp_path / "a.zarr"))
    group = zarr.open_group(str(tmp_path / "a.zarr"), mode="r")
    _same_as_in_process(group["values"][:], ref.values)
    _same_as_in_process(group["predictions"][:], ref.predictions)
    _same_as_in_process(group["decomp_goal"][:], ref.decomp_goal)
    assert group.attrs["method"] == "IntegratedGradients"
    with pytest.raises(Exception, match="exist|contains"):
        lazy.to_zarr(str(tmp_path / "a.zarr"))  # never overwrites unless asked
    lazy.to_parquet(str(tmp_path / "a.parquet"))
    back = pd.read_parquet(tmp_path / "a.parquet")
    _same_as_in_process(back["value"].to_numpy(), ref.to_frame()["value"].to_numpy())


def _die_once(block, marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # the worker process dies mid-computation
    return block


def test_worker_killed_mid_computation(client, tmp_path):
    zarr = pytest.importorskip("zarr")
    X = _data(8)
    marker = str(tmp_path / "died")
    Xd = da.from_array(X, chunks=CHUNKS).map_blocks(_die_once, marker, dtype=X.dtype,
                                                        meta=np.empty((0, 0)))
    sg = SmoothGrad(n=5, random_state=2, dtype="double").fit(_net(), X[:5])
    sg.explain(Xd).to_zarr(str(tmp_path / "k.zarr"))
    assert os.path.exists(marker)  # a worker was killed, the scheduler re-ran its tasks
    group = zarr.open_group(str(tmp_path / "k.zarr"), mode="r")
    _same_as_in_process(group["values"][:], sg.explain(X).values)


def test_explainer_is_one_task_shared_by_all_chunks():
    X = da.from_array(_data(), chunks=CHUNKS)
    lazy = IntegratedGradients(n=4).fit(_net(), _data()[:5]).explain(X)
    graph = dict(lazy.values.__dask_graph__())
    shipped = [k for k in graph if "sknn-explainer" in str(k)]
    assert len(shipped) == 1  # shipped once, not per chunk
    assert sum("sknn-integratedgradients" in str(k) for k in graph) >= len(CHUNKS[0])


def test_shipped_estimator_loads_once_on_cpu():
    e = IntegratedGradients(n=4, device="auto").fit(_net(), _data()[:5])
    import pickle

    shipped = pickle.loads(pickle.dumps(ShippedEstimator(e)))
    loaded = shipped.get()
    assert loaded is shipped.get()  # cached: one deserialization per worker
    assert loaded.device_ == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    np.testing.assert_array_equal(loaded.explain(_data()).values, e.explain(_data()).values)


def test_import_does_not_import_dask():
    code = ("import sys, sknn_explain; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('dask', 'distributed', 'zarr', 'dask_ml')]; assert not bad, bad")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root,
                   env={**os.environ, "PYTHONPATH": root})


def test_configure_workers_sets_the_malloc_environment_of_new_workers():
    import dask

    from sknn_explain.dask import WORKER_MALLOC_ENV, configure_workers

    key = "distributed.nanny.pre-spawn-environ"
    before = dict(dask.config.get(key))
    try:
        configure_workers()
        environ = dask.config.get(key)
        for name, value in WORKER_MALLOC_ENV.items():
            assert environ[name] == value
        assert environ["OMP_NUM_THREADS"] == before["OMP_NUM_THREADS"]  # the rest is kept
    finally:
        dask.config.set({key: before})

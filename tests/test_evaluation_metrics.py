"""Evaluation metrics from the literature: region perturbation / AOPC, ROAD, IROF, MPRT,
ShapleyValueSampling with reference rows - each against a slow reference written from the
paper's formula (and against Quantus when it can be imported)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from _stub_imports import import_without_torchvision
from scipy.stats import spearmanr
from sklearn.linear_model import LinearRegression
from sklearn.neural_network import MLPRegressor

from sknn_explain import Gradient, ShapleyValueSampling
from sknn_explain import metrics as M
from sknn_explain._segmentation import grid_segments
from sknn_explain.plotting import plot_perturbation_curves, plot_randomisation
from sknn_explain.transformer import AttributionTransformer


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def images():
    """A fixed random linear 'image model' f(Z) = <Z, W_t> + b_t with 3 outputs."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 2, 8, 8))
    W = rng.normal(size=(3, 2, 8, 8))
    b = rng.normal(size=3)

    def f(Z):
        return np.einsum("nchw,kchw->nk", Z, W) + b

    target = np.array([0, 1, 2, 0])
    exact = X * W[target]  # attributions against a zero reference
    return X, f, target, exact


def _patch_sums_slow(a, size):
    """Relevance of each size x size patch: sum over the patch and all channels."""
    c, h, w = a.shape
    return np.array([a[:, i:i + size, j:j + size].sum()
                     for i in range(0, h, size) for j in range(0, w, size)])


def _region_curve_slow(f, X, A, target, size, order, fill):
    """Samek et al. (2017): remove patches cumulatively, most / least relevant first."""
    out = []
    for x, a, t in zip(X, A, target):
        sums = _patch_sums_slow(a, size)
        idx = np.argsort(-sums if order == "morf" else sums, kind="stable")
        cells = [(i, j) for i in range(0, x.shape[1], size) for j in range(0, x.shape[2], size)]
        z, row = x.copy(), [f(x[None])[0, t]]
        for k in idx:
            i, j = cells[k]
            z[:, i:i + size, j:j + size] = fill
            row.append(f(z[None])[0, t])
        out.append(row)
    return np.array(out)


# ------------------------------------------------------------------- region perturbation
@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_region_perturbation_matches_the_slow_reference(images, order):
    X, f, target, exact = images
    steps, curves = M.region_perturbation_curve(
        f, X, exact, target=target, order=order, region_size=2, reference=0.0, batch_size=7)
    ref = _region_curve_slow(f, X, exact, target, 2, order, 0.0)
    assert steps.tolist() == list(range(17))
    np.testing.assert_allclose(curves, ref, rtol=0, atol=1e-10)
    aopc = M.aopc(f, X, exact, target=target, order=order, region_size=2, reference=0.0)
    assert aopc == pytest.approx(np.mean(ref[:, :1] - ref), abs=1e-12)


def test_aopc_ranks_exact_above_random_above_reversed(images):
    X, f, target, exact = images
    kw = dict(target=target, region_size=2, reference=0.0)
    good = M.aopc(f, X, exact, **kw)
    rand = M.aopc(f, X, exact, order="random", random_state=0, **kw)
    lerf = M.aopc(f, X, exact, order="lerf", **kw)
    assert good > rand > lerf
    # exact attributions of a linear model: MoRF removes the largest contributions first,
    # which maximises AOPC over all orders
    noisy = exact + np.random.default_rng(1).normal(scale=exact.std(), size=exact.shape)
    assert good > M.aopc(f, X, noisy, **kw)


def test_region_perturbation_on_signals_tabular_and_spatial_attributions(images):
    rng = np.random.default_rng(2)
    S = rng.normal(size=(3, 2, 12))
    w = rng.normal(size=(2, 12))
    steps, curves = M.region_perturbation_curve(
        lambda Z: (Z * w).sum((1, 2)), S, (S * w).sum(1), region_size=3, reference=0.0)
    assert steps.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(curves[:, -1], 0.0, atol=1e-12)  # everything removed
    T = rng.normal(size=(5, 4))
    _, c = M.region_perturbation_curve(lambda Z: Z.sum(1), T, T, n_regions=2)
    assert c.shape == (5, 3)


def test_uniform_perturbation_is_seeded_and_in_range(images):
    X, f, target, exact = images
    kw = dict(target=target, region_size=4, perturbation="uniform", value_range=(-1, 1))
    a = M.region_perturbation_curve(f, X, exact, random_state=3, **kw)[1]
    b = M.region_perturbation_curve(f, X, exact, random_state=3, **kw)[1]
    np.testing.assert_array_equal(a, b)
    c = M.region_perturbation_curve(f, X, exact, random_state=4, **kw)[1]
    assert not np.allclose(a[:, 1:], c[:, 1:])


def test_region_inputs_are_checked(images):
    X, f, target, exact = images
    with pytest.raises(ValueError, match="order must be"):
        M.aopc(f, X, exact, target=target, order="best")
    with pytest.raises(ValueError, match="attributions have shape"):
        M.aopc(f, X, exact[:, :, :4], target=target)
    with pytest.raises(ValueError, match="n_regions"):
        M.aopc(f, X, exact, target=target, region_size=4, n_regions=5)
    with pytest.raises(ValueError, match="perturbation must be"):
        M.aopc(f, X, exact, target=target, perturbation="blur")
    with pytest.raises(ValueError, match="segments has shape"):
        M.irof(f, X, exact, target=target, segments=np.zeros((3, 3), dtype=int))


# --------------------------------------------------------------------------------- IROF
def test_irof_matches_the_slow_reference_with_per_image_segments(images):
    X, f, target, exact = images
    rng = np.random.default_rng(5)
    segs = rng.integers(0, 6, size=(4, 8, 8))  # "superpixels", one map per image
    probs = lambda Z: 1.0 / (1.0 + np.exp(-f(Z) / 10))  # noqa: E731 - positive outputs
    got = M.irof(probs, X, exact, target=target, segments=segs)
    scores = []
    for x, a, t, s in zip(X, exact, target, segs):
        labels = np.unique(s)
        means = np.array([a[:, s == k].mean() for k in labels])  # mean relevance (paper)
        fill = x.mean(axis=(1, 2))  # the image's mean per channel
        z, y0, ratio = x.copy(), probs(x[None])[0, t], [1.0]
        for k in labels[np.argsort(-means, kind="stable")]:
            z[:, s == k] = fill[:, None]
            ratio.append(probs(z[None])[0, t] / y0)
        scores.append(1 - np.trapezoid(ratio, np.linspace(0, 1, len(ratio))))
    assert got == pytest.approx(np.mean(scores), abs=1e-12)


# --------------------------------------------------------------------------------- ROAD
def test_noisy_linear_imputation_solves_the_neighbour_mean_equations():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 9, 7))
    removed = rng.random((9, 7)) < 0.4
    out = M.noisy_linear_imputation(x, removed, noise=0.0)
    np.testing.assert_array_equal(out[:, ~removed], x[:, ~removed])
    weights = {(1, 1): 1 / 12, (0, 1): 1 / 6, (-1, 1): 1 / 12, (1, -1): 1 / 12,
               (0, -1): 1 / 6, (-1, -1): 1 / 12, (1, 0): 1 / 6, (-1, 0): 1 / 6}
    for i, j in zip(*np.nonzero(removed)):  # Rong et al.: x_i = weighted mean of neighbours
        num, den = np.zeros(3), 0.0
        for (di, dj), w in weights.items():
            if 0 <= i + di < 9 and 0 <= j + dj < 7:
                num += w * out[:, i + di, j + dj]
                den += w
        np.testing.assert_allclose(out[:, i, j], num / den, atol=1e-10)
    noisy = M.noisy_linear_imputation(x, removed, noise=0.5, random_state=0)
    assert np.std(noisy[:, removed] - out[:, removed]) == pytest.approx(0.5, rel=0.2)


def test_road_curve_imputes_the_ranked_pixels(images):
    X, f, target, exact = images
    q, curves = M.road_curve(f, X, exact, target=target, fractions=[0.0, 0.25, 0.5],
                             noise=0.0)
    # slow reference: rank pixels by channel-summed attribution, impute, evaluate
    for i, (x, a, t) in enumerate(zip(X, exact, target)):
        order = np.argsort(-a.sum(0).reshape(-1), kind="stable")
        for j, frac in enumerate(q):
            removed = np.zeros(64, dtype=bool)
            removed[order[: int(frac * 64)]] = True
            z = M.noisy_linear_imputation(x, removed.reshape(8, 8), noise=0.0)
            assert curves[i, j] == pytest.approx(f(z[None])[0, t], abs=1e-10)
    assert (curves[:, 2] < curves[:, 0]).mean() >= 0.75  # MoRF removes evidence
    with pytest.raises(ValueError, match="signals"):
        M.road_curve(f, X.reshape(4, -1), exact.reshape(4, -1), target=target)
    with pytest.raises(ValueError, match="fractions"):
        M.road_curve(f, X, exact, target=target, fractions=[0.5, 1.0])


# --------------------------------------------------------------------------------- MPRT
def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, 3),
    ).double()


def _gradient(model, X):
    return Gradient().fit(model).explain(X, output_idx=[0]).values[..., 0]


def test_mprt_leaves_the_model_and_global_rng_alone_and_is_tidy():
    net = _net().train()
    net[0].weight.requires_grad_(False)
    before = copy.deepcopy(net.state_dict())
    X = torch.as_tensor(np.random.default_rng(0).normal(size=(3, 1, 8, 8)))
    state = torch.get_rng_state()
    df = M.model_parameter_randomisation(net, X, _gradient, similarity=("spearman", "ssim"),
                                         random_state=0)
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.training and not net[0].weight.requires_grad
    assert list(df.columns) == ["step", "layer", "sample", "similarity", "value"]
    assert df.drop_duplicates("step")["layer"].tolist() == ["3", "0"]  # output layer first
    assert len(df) == 2 * 3 * 2
    again = M.model_parameter_randomisation(net, X, _gradient, similarity=("spearman", "ssim"),
                                            random_state=0)
    pd.testing.assert_frame_equal(df, again)
    assert (df["value"] < 0.99).all()  # randomising changes the gradient


def test_mprt_similarities_match_references():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 1, 9, 9)), rng.normal(size=(4, 1, 9, 9))
    b[0] = 2 * a[0]
    got = M.spearman_similarity(a, b)
    ref = [spearmanr(np.abs(x).ravel(), np.abs(y).ravel())[0] for x, y in zip(a, b)]
    np.testing.assert_allclose(got, ref, atol=1e-12)
    assert got[0] == pytest.approx(1.0)
    # SSIM (Wang et al., 2004) with 7x7 uniform windows and sample covariance, slow loops
    ssim = M.ssim_similarity(a, b)
    for x, y, s in zip(a[:, 0], b[:, 0], ssim):
        rng_ = max(x.max(), y.max()) - min(x.min(), y.min())
        c1, c2 = (0.01 * rng_) ** 2, (0.03 * rng_) ** 2
        vals = []
        for i in range(3, 6):
            for j in range(3, 6):
                u, v = x[i - 3:i + 4, j - 3:j + 4].ravel(), y[i - 3:i + 4, j - 3:j + 4].ravel()
                cov = np.cov(u, v)  # sample covariance (ddof=1)
                vals.append((2 * u.mean() * v.mean() + c1) * (2 * cov[0, 1] + c2)
                            / ((u.mean() ** 2 + v.mean() ** 2 + c1) * (cov[0, 0] + cov[1, 1] + c2)))
        assert s == pytest.approx(np.mean(vals), abs=1e-10)


def test_mprt_checks_arguments():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        M.model_parameter_randomisation(LinearRegression(), np.zeros((2, 2)), _gradient)
    with pytest.raises(ValueError, match="similarity"):
        M.model_parameter_randomisation(_net(), np.zeros((2, 1, 8, 8)), _gradient,
                                        similarity="pearson")
    with pytest.raises(ValueError, match="reset_parameters"):
        M.model_parameter_randomisation(_net(), np.zeros((2, 1, 8, 8)), _gradient,
                                        layers=["1"])


# ---------------------------------------------------------------- plots and scorers
def test_plots_return_grids_with_tidy_data(images):
    import matplotlib.pyplot as plt

    X, f, target, exact = images
    curves = {o: M.region_perturbation_curve(f, X, exact, target=target, order=o,
                                             region_size=4, reference=0.0)
              for o in ("morf", "lerf")}
    grid = plot_perturbation_curves(curves)
    assert set(grid.data["curve"]) == {"morf", "lerf"} and len(grid.data) == 2 * 4 * 5
    fig, ax = plt.subplots()
    assert plot_perturbation_curves(curves, ax=ax) is ax
    df = M.model_parameter_randomisation(_net(), np.zeros((2, 1, 8, 8)) + 1.0, _gradient,
                                         random_state=0)
    grid = plot_randomisation(df)
    labels = [t.get_text() for t in grid.axes.flat[0].get_xticklabels()]
    assert labels == ["3", "0"]
    with pytest.raises(TypeError, match="columns"):
        plot_randomisation(pd.DataFrame({"x": [1]}))
    plt.close("all")


def test_aopc_and_irof_scorers_prefer_the_explainer_over_noise():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    y = X @ np.array([3.0, -2.0, 1.0, 0.0, 0.5])
    mlp = MLPRegressor(hidden_layer_sizes=(8,), max_iter=400, random_state=0)
    tr = AttributionTransformer(mlp, Gradient(times_input=True)).fit(X, y)
    for name in ("aopc", "irof"):
        scorer = M.get_explanation_scorer(name)
        assert np.isfinite(scorer(tr, X[:20]))
    rows = tr.explained_rows(X[:20])
    f, kw = tr.explained_output, dict(target=rows.target, reference=tr.reference_)
    noise = rng.normal(size=rows.values.shape)
    assert M.aopc(f, rows.X, rows.values, **kw) > M.aopc(f, rows.X, noise, **kw)
    with pytest.raises(ValueError, match="morf"):
        M.make_explanation_scorer("aopc", order="lerf")(tr, X[:5])


# ------------------------------------------- ShapleyValueSampling with reference rows
def _mlp():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                               torch.nn.Linear(8, 2)).double()


def test_shapley_reference_rows_are_the_average_of_per_row_shapley_values():
    net = _mlp()
    rng = np.random.default_rng(0)
    X, R = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    got = ShapleyValueSampling(n_samples="all", baselines="rows").fit(net, R).explain(X)
    ref = np.mean([ShapleyValueSampling(n_samples="all", baselines=r).fit(net).explain(X)
                   .values for r in R], axis=0)
    np.testing.assert_allclose(got.values, ref, atol=1e-12)
    with torch.no_grad():
        goal = net(torch.as_tensor(X)).numpy() - net(torch.as_tensor(R)).numpy().mean(0)
    np.testing.assert_allclose(got.decomp_goal, goal, atol=1e-12)
    np.testing.assert_allclose(got.values.sum(1), goal, atol=1e-12)


def test_shapley_reference_rows_efficiency_in_expectation():
    net = _mlp()
    rng = np.random.default_rng(1)
    X, R = rng.normal(size=(2, 4)), rng.normal(size=(7, 4))
    sums = []
    for seed in range(40):  # 3 permutations each: fewer than the 7 rows, so rows are drawn
        res = ShapleyValueSampling(n_samples=3, baselines="rows", random_state=seed,
                                   antithetic=seed % 2 == 0).fit(net, R).explain(X)
        sums.append(res.values.sum(1))
    goal = res.decomp_goal
    spread = np.std(sums, axis=0)
    assert spread.max() > 1e-3  # single runs do not hit the goal ...
    np.testing.assert_allclose(np.mean(sums, axis=0), goal, atol=4 * spread.max() / np.sqrt(40))
    exact = ShapleyValueSampling(n_samples=14, baselines="rows", random_state=0).fit(
        net, R).explain(X)  # a multiple of len(R): every row used equally
    np.testing.assert_allclose(exact.values.sum(1), exact.decomp_goal, atol=1e-12)


def test_reference_rows_need_x_ref_and_are_for_shapley_only():
    from sknn_explain import FeatureAblation

    X = np.zeros((2, 4))
    with pytest.raises(ValueError, match="X_ref"):
        ShapleyValueSampling(baselines="rows").fit(_mlp()).explain(X)
    with pytest.raises(ValueError, match="ShapleyValueSampling only"):
        FeatureAblation(baselines="rows").fit(_mlp(), X).explain(X)


# ------------------------------------------------------------------------ Quantus
def _quantus():
    """Quantus (optional; it imports zennit, hence torchvision is stubbed for the import)."""
    (quantus,) = import_without_torchvision("quantus")
    return quantus


def _quantus_case():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)).eval()  # float32
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 1, 8, 8))
    A = rng.normal(size=(4, 1, 8, 8))
    y = np.array([0, 1, 2, 0])

    def f(Z):
        with torch.no_grad():
            return torch.softmax(net(torch.as_tensor(Z, dtype=torch.float32)), 1).numpy()

    return net, X, A, y, f


def test_region_perturbation_and_irof_agree_with_quantus(monkeypatch):
    quantus = _quantus()
    net, X, A, y, f = _quantus_case()
    q = quantus.RegionPerturbation(patch_size=2, regions_evaluation=10, order="morf",
                                   perturb_baseline=0.0, normalise=False,
                                   disable_warnings=True, display_progressbar=False)
    theirs = np.array(q(model=net, x_batch=X, y_batch=y, a_batch=A, device="cpu",
                        softmax=True))
    _, curves = M.region_perturbation_curve(f, X, A, target=y, region_size=2, n_regions=10,
                                            reference=0.0)
    np.testing.assert_allclose(curves[:, :1] - curves[:, 1:], theirs, atol=1e-6)
    segs = np.repeat(np.repeat(np.arange(16).reshape(4, 4), 2, 0), 2, 1)
    qi = quantus.IROF(perturb_baseline=0.0, normalise=False, disable_warnings=True,
                      display_progressbar=False)
    qi.segmentation_method = "slic"
    import quantus.helpers.utils as qu

    # fixed segments instead of SLIC; numpy 2 renamed Quantus's np.trapz
    monkeypatch.setattr(qu, "get_superpixel_segments", lambda img, segmentation_method: segs)
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)
    theirs = np.array(qi(model=net, x_batch=X, y_batch=y, a_batch=A, device="cpu",
                         softmax=True))
    _, ratio = M.irof_curve(f, X, A, target=y, segments=segs, perturbation="reference",
                            reference=0.0)
    mine_quantus_style = 16 - np.trapezoid(ratio[:, 1:], axis=1)  # unnormalised, dx=1
    # Quantus returns the mean over the batch
    np.testing.assert_allclose(mine_quantus_style.mean(), theirs.mean(), atol=1e-6)


def test_noisy_linear_imputation_agrees_with_quantus():
    quantus = _quantus()
    from quantus.functions.perturb_func import noisy_linear_imputation

    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 8, 8))
    idx = rng.choice(64, 20, replace=False)
    removed = np.zeros(64, dtype=bool)
    removed[idx] = True
    theirs = noisy_linear_imputation(x, np.sort(idx), noise=0.0)
    assert quantus is not None
    np.testing.assert_allclose(
        M.noisy_linear_imputation(x, removed.reshape(8, 8), noise=0.0), theirs, atol=1e-8)


def test_grid_regions_are_the_segmentation_grid():
    lab = grid_segments((2, 8, 8), 4)
    assert np.unique(lab).tolist() == [0, 1, 2, 3]

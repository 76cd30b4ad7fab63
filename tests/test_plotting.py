"""Plots of Attribution results: what is drawn, not only that drawing works.

Real results come from the gradient explainers on tiny seeded torch models (tabular
Linear, Conv1d signals, Conv2d images, an image + tabular model with two output heads).
Rendering is headless (Agg); every figure is closed after each test.
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection, QuadMesh  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from torch import nn  # noqa: E402

from sknn_explain import Gradient, IntegratedGradients  # noqa: E402
from sknn_explain.plotting import (  # noqa: E402
    HIGHLIGHT_COLOR,
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    plot_dependence,
    plot_global,
    plot_image_grid,
    plot_local,
)
from sknn_explain.plotting._layout import beeswarm_offsets  # noqa: E402

FEATURES = ["age", "income", "debt", "score"]
RED, BLUE = to_rgba(POSITIVE_COLOR), to_rgba(NEGATIVE_COLOR)
# seaborn's heatmap calls Colormap.set_bad, which matplotlib 3.11 marks as pending deprecation
# and its boxplot passes ``vert``, deprecated in matplotlib 3.11: not ours to fix
pytestmark = [
    pytest.mark.filterwarnings("ignore:The set_bad function:PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore:vert. bool was deprecated"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------------- models / results
class ImageAndTable(nn.Module):
    """Two inputs (image, table), two output layers (a tuple)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(2, 2, 3), nn.Tanh(), nn.Flatten())
        self.tab = nn.Linear(3, 4)
        self.head1 = nn.Linear(2 * 3 * 3 + 4, 3)
        self.head2 = nn.Linear(2 * 3 * 3 + 4, 2)

    def forward(self, img: torch.Tensor, tab: torch.Tensor):
        h = torch.cat([self.conv(img), torch.tanh(self.tab(tab))], dim=1)
        return self.head1(h), self.head2(h)


class TwoHeads(nn.Module):
    """Tabular input, two output layers."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 2)
        self.b = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor):
        return self.a(x), self.b(x)


@pytest.fixture(scope="module")
def tab_data():
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(12, 4)), columns=FEATURES)


@pytest.fixture(scope="module")
def tab_model():
    torch.manual_seed(0)
    return nn.Linear(4, 3)


@pytest.fixture(scope="module")
def tab(tab_model, tab_data):
    return Gradient(times_input=True).fit(tab_model, tab_data).explain(
        tab_data, output_idx=[0, 1, 2]
    )


@pytest.fixture(scope="module")
def sig():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 8, 2))
    x = torch.randn(8, 2, 10)
    return Gradient(times_input=True).fit(net).explain(x, output_idx=[0, 1])


@pytest.fixture(scope="module")
def img_net():
    torch.manual_seed(2)
    return nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 5, 2))


@pytest.fixture(scope="module")
def img_x():
    torch.manual_seed(3)
    return torch.randn(5, 3, 6, 7)


@pytest.fixture(scope="module")
def img(img_net, img_x):
    return Gradient(times_input=True).fit(img_net).explain(img_x, output_idx=[0, 1])


@pytest.fixture(scope="module")
def multi():
    torch.manual_seed(4)
    x = [torch.randn(4, 2, 5, 5), torch.randn(4, 3)]
    return IntegratedGradients(n=4).fit(ImageAndTable()).explain(x, output_idx=[[0, 2], [1]])


@pytest.fixture(scope="module")
def heads(tab_data):
    torch.manual_seed(5)
    return Gradient().fit(TwoHeads(), tab_data).explain(tab_data, output_idx=[[1], [0, 2]])


# ---------------------------------------------------------------------- helpers
def hbars(ax):
    """Horizontal bars, top to bottom."""
    return sorted(ax.patches, key=lambda p: p.get_y())


def vbars(ax):
    return sorted(ax.patches, key=lambda p: p.get_x())


def ticklabels(ax, axis="y"):
    ticks = ax.get_yticklabels() if axis == "y" else ax.get_xticklabels()
    return [t.get_text() for t in ticks]


def mesh_of(ax) -> QuadMesh:
    meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 1
    return meshes[0]


def labelled(ax, label):
    return [c for c in ax.collections if isinstance(c, PathCollection) and c.get_label() == label]


def image_values(res, data, k, aggr=np.sum):
    v = res.raw_values[0][0][data, ..., k]
    if not res.channels_first:
        v = np.moveaxis(v, -1, 0)
    return aggr(v, axis=0)


# ---------------------------------------------------------------------- local: tabular
def test_tabular_local_bars_values_colours_and_labels(tab, tab_data):
    grid = plot_local(tab, data_idx=[0, 3], output_idx=[0, 2], sort=False, show_input=False)
    assert isinstance(grid, sns.FacetGrid)
    assert grid.axes.shape == (2, 2)
    values = tab.to_numpy()
    for r, d in enumerate([0, 3]):
        for c, k in enumerate([0, 2]):
            ax = grid.axes[r, c]
            bars = hbars(ax)
            assert len(bars) == 4
            widths = np.array([b.get_width() for b in bars])
            np.testing.assert_allclose(widths, values[d, :, k], rtol=1e-6)
            for b, w in zip(bars, widths):
                assert b.get_facecolor() == (RED if w > 0 else BLUE)
            assert ticklabels(ax) == FEATURES
            lo, hi = ax.get_xlim()
            assert lo == pytest.approx(-hi) and hi >= np.abs(widths).max()
            title = ax.get_title()
            assert title.startswith(f"Gradient · sample {d} · output {k}\n")
            pred = tab.predictions[d, k]
            goal = tab.decomp_goal[d, k]
            assert f"pred: {pred:.3g}" in title
            assert f"sum: {tab.decomp_sum[d, k]:.3g}" in title
            assert f"goal: {goal:.3g}" in title
    # one value scale for all panels of an input
    assert len({ax.get_xlim() for ax in grid.axes.flat}) == 1
    # the tidy data behind the grid, with to_frame's column names
    data = grid.data
    assert {"data", "feature", "value", "output_node", "facet_row", "facet_col"} <= set(data)
    assert len(data) == 2 * 2 * 4


def test_tabular_local_show_input_and_no_preds(tab, tab_data):
    ax = plot_local(tab, data_idx=5, output_idx=1, show_input=True, show_preds=False,
                    sort=False, ax=plt.figure().gca())
    expected = [f"{f} = {tab_data.iloc[5][f]:.3g}" for f in FEATURES]
    assert ticklabels(ax) == expected
    assert "pred" not in ax.get_title()


def test_plot_is_plot_local_and_default_is_every_computed_node(tab):
    a = tab.plot(sort=False)
    b = tab.plot_local(data_idx=0, output_idx=0, sort=False)
    assert a.axes.shape == (1, 3) and b.axes.shape == (1, 1)
    wa = [p.get_width() for p in hbars(a.axes[0, 0])]
    wb = [p.get_width() for p in hbars(b.axes[0, 0])]
    assert wa == wb
    np.testing.assert_allclose(wa, tab.to_numpy()[0, :, 0], rtol=1e-6)
    assert a.axes[0, 0].get_title().startswith("Gradient · sample 0 · output 0")
    assert a.axes[0, 2].get_title().startswith("Gradient · sample 0 · output 2")


def test_ax_argument_single_panel_only(tab):
    fig, ax = plt.subplots()
    assert plot_local(tab, output_idx=2, ax=ax) is ax
    assert len(hbars(ax)) == 4
    with pytest.raises(ValueError, match="single panel"):
        plot_local(tab, data_idx=[0, 1], ax=ax)
    with pytest.raises(TypeError, match="Axes"):
        plot_local(tab, ax="not an axes")


def test_height_and_aspect(tab):
    grid = plot_local(tab, data_idx=[0, 1], output_idx=0, height=2.0, aspect=1.5)
    w, h = grid.figure.get_size_inches()
    assert h == pytest.approx(4.0) and w == pytest.approx(3.0)
    with pytest.raises(ValueError, match="height"):
        plot_local(tab, height=-1)


# ---------------------------------------------------------------------- local: signals
def test_signal_local_bars_aggregate_channels(sig):
    v = sig.to_numpy()  # (8, 2, 10, 2)
    cases = {"sum": v.sum(axis=1), "mean": v.mean(axis=1),
             "norm": np.sqrt((v ** 2).sum(axis=1)), np.max: v.max(axis=1)}
    for aggr, expected in cases.items():
        ax = plot_local(sig, data_idx=2, output_idx=1, aggr_channels=aggr,
                        ax=plt.figure().gca())
        bars = vbars(ax)
        assert len(bars) == 10
        heights = np.array([b.get_height() for b in bars])
        np.testing.assert_allclose(heights, expected[2, :, 1], rtol=1e-5, atol=1e-7)
        for b, h in zip(bars, heights):
            if h != 0:
                assert b.get_facecolor() == (RED if h > 0 else BLUE)
        lo, hi = ax.get_ylim()
        assert lo == pytest.approx(-hi)
        assert ax.get_xlabel() == "position"
        assert ticklabels(ax, "x")[0] == "L1"


def test_signal_local_lines_per_channel_and_input_overlay(sig):
    ax = plot_local(sig, data_idx=0, aggr_channels=None, ax=plt.figure().gca())
    v = sig.to_numpy()[0, :, :, 0]
    drawn = [ln for ln in ax.lines if len(ln.get_ydata()) == 10]
    assert len(drawn) == 2
    for ln, ch in zip(drawn, v):
        np.testing.assert_allclose(ln.get_ydata(), ch, rtol=1e-6)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["C1", "C2"]

    grid = plot_local(sig, data_idx=1, output_idx=0, show_input=True)
    twins = [a for a in grid.figure.axes if a.get_label() == "input"]
    assert len(twins) == 1
    assert len(twins[0].lines) == 2  # one line per input channel
    np.testing.assert_allclose(twins[0].lines[0].get_ydata(), sig.inputs[1, 0], rtol=1e-6)


# ---------------------------------------------------------------------- local: images
def test_image_local_heatmap(img):
    grid = plot_local(img, data_idx=[1, 4], output_idx=[0, 1])
    assert grid.axes.shape == (2, 3)  # the input image, then one heatmap per output
    vmaxes = set()
    for r, d in enumerate([1, 4]):
        for c, k in enumerate([0, 1]):
            ax = grid.axes[r, c + 1]
            mesh = mesh_of(ax)
            expected = image_values(img, d, k)
            np.testing.assert_allclose(
                np.asarray(mesh.get_array()).reshape(6, 7), expected, rtol=1e-5, atol=1e-7
            )
            assert mesh.cmap.name == "RdBu_r"
            assert mesh.norm.vmin == pytest.approx(-mesh.norm.vmax)
            vmaxes.add(mesh.norm.vmax)
            # sign -> colour: the largest cell is red, the smallest blue
            rgba = mesh.to_rgba(np.array([expected.max(), expected.min()]))
            assert rgba[0, 0] > rgba[0, 2] and rgba[1, 2] > rgba[1, 0]
            assert ticklabels(ax) == [] and ticklabels(ax, "x") == []  # no pixel ticks
            assert "pred:" in ax.get_title()
    assert len(vmaxes) == 1  # shared scale within the input


def test_image_channels_last_matches_channels_first(img_net, img_x, img):
    last = Gradient(times_input=True, channels_first=False).fit(img_net).explain(
        img_x.permute(0, 2, 3, 1), output_idx=[0, 1]
    )
    a = plot_local(img, data_idx=3, output_idx=1, ax=plt.figure().gca())
    b = plot_local(last, data_idx=3, output_idx=1, ax=plt.figure().gca(), show_input=True)
    np.testing.assert_allclose(
        np.asarray(mesh_of(a).get_array()), np.asarray(mesh_of(b).get_array()), rtol=1e-5,
        atol=1e-7,
    )
    grid = plot_local(last, data_idx=3, output_idx=1)  # the RGB input beside the heatmap
    images = [im for im in grid.axes[0, 0].get_images() if isinstance(im, AxesImage)]
    assert len(images) == 1
    rgb = img_x[3].numpy()
    rgb = np.moveaxis((rgb - rgb.min()) / (rgb.max() - rgb.min()), 0, -1)
    np.testing.assert_allclose(images[0].get_array(), rgb, rtol=1e-5, atol=1e-6)


def test_image_aggr_channels_none_needs_one_channel(img):
    with pytest.raises(ValueError, match="aggr_channels=None"):
        plot_local(img, aggr_channels=None)


# ---------------------------------------------------------------------- several inputs / outputs
def test_multi_input_grid(multi):
    grid = plot_local(multi, data_idx=[0, 2], output_idx=[[0, 2], [1]], show_input=False,
                      sort=False)
    assert grid.axes.shape == (2 * 3, 2)  # rows: data x outputs, cols: inputs
    img_vals = multi.raw_values
    row = 0
    for d in [0, 2]:
        for pos, k, label in [(0, 0, "output 0 of layer 0"), (0, 1, "output 2 of layer 0"),
                              (1, 0, "output 1 of layer 1")]:
            left, right = grid.axes[row]
            np.testing.assert_allclose(
                np.asarray(mesh_of(left).get_array()).reshape(5, 5),
                img_vals[pos][0][d, ..., k].sum(axis=0), rtol=1e-5, atol=1e-7,
            )
            widths = [b.get_width() for b in hbars(right)]
            np.testing.assert_allclose(widths, img_vals[pos][1][d, :, k], rtol=1e-5, atol=1e-7)
            assert ticklabels(right) == ["X1", "X2", "X3"]
            assert left.get_title().startswith(f"IntegratedGradients · sample {d} · {label} · "
                                               f"input 0")
            assert right.get_title().startswith(f"IntegratedGradients · sample {d} · {label} · "
                                                f"input 1")
            # prediction / sum / goal once per row, sum over both inputs
            total = multi.decomp_sum[pos][d, k]
            assert f"sum: {total:.3g}" in left.get_title()
            assert "pred" not in right.get_title()
            row += 1


def test_same_scale_across_inputs(multi):
    sep = plot_local(multi, output_idx=[[0], None], show_input=False)
    shared = plot_local(multi, output_idx=[[0], None], same_scale=True, show_input=False)
    vals = [np.abs(v[0, ..., 0]).max() for v in multi.raw_values[0]]
    img_sum = np.abs(multi.raw_values[0][0][0, ..., 0].sum(axis=0)).max()
    tab_max = np.abs(multi.raw_values[0][1][0, :, 0]).max()
    assert vals  # both inputs have attributions
    assert mesh_of(sep.axes[0, 0]).norm.vmax == pytest.approx(img_sum)
    assert sep.axes[0, 1].get_xlim()[1] == pytest.approx(tab_max * 1.08)
    m = max(img_sum, tab_max)
    assert mesh_of(shared.axes[0, 0]).norm.vmax == pytest.approx(m)
    assert shared.axes[0, 1].get_xlim()[1] == pytest.approx(m * 1.08)


def test_input_idx_selects_inputs(multi):
    grid = plot_local(multi, output_idx=[[2], None], input_idx=1)
    assert grid.axes.shape == (1, 1)
    assert len(hbars(grid.axes[0, 0])) == 3
    with pytest.raises(ValueError, match="input_idx 2 is out of range"):
        plot_local(multi, input_idx=2)


def test_multi_output_layers_by_index_and_label(heads):
    grid = plot_local(heads, output_idx=[[1], [2, 0]], sort=False)
    assert grid.axes.shape == (1, 3)
    titles = [ax.get_title().split("\n")[0] for ax in grid.axes.flat]
    assert titles == ["Gradient · sample 0 · output 1 of layer 0",
                      "Gradient · sample 0 · output 2 of layer 1",
                      "Gradient · sample 0 · output 0 of layer 1"]
    raw = heads.raw_values
    for ax, (pos, k) in zip(grid.axes.flat, [(0, 0), (1, 1), (1, 0)]):
        np.testing.assert_allclose([b.get_width() for b in hbars(ax)], raw[pos][0][0, :, k],
                                   rtol=1e-6)
    by_label = plot_local(heads, output_label=[None, ["Y2_3"]], sort=False)
    np.testing.assert_allclose([b.get_width() for b in hbars(by_label.axes[0, 0])],
                               raw[1][0][0, :, 1], rtol=1e-6)


# ---------------------------------------------------------------------- bad arguments
def test_local_bad_arguments(tab, heads, img):
    with pytest.raises(ValueError, match="data_idx 12 is out of range.*12 sample"):
        plot_local(tab, data_idx=12)
    with pytest.raises(ValueError, match="data_idx -1 is out of range"):
        plot_local(tab, data_idx=[0, -1])
    with pytest.raises(ValueError, match="duplicates"):
        plot_local(tab, data_idx=[1, 1])
    with pytest.raises(TypeError, match="data_idx"):
        plot_local(tab, data_idx=1.5)
    with pytest.raises(ValueError, match="data_idx"):
        plot_local(tab, data_idx="all")
    with pytest.raises(ValueError, match=r"output node 5 of output layer 1 was not computed"):
        plot_local(tab, output_idx=5)
    with pytest.raises(ValueError, match=r"computed: output layer 1: \[1\]"):
        plot_local(heads, output_idx=0)
    with pytest.raises(ValueError, match="output layer 3 was not computed"):
        plot_local(heads, output_idx=[None, None, [0]])
    with pytest.raises(ValueError, match="output_label 'cat'"):
        plot_local(tab, output_label="cat")
    with pytest.raises(ValueError, match="either output_idx or output_label"):
        plot_local(tab, output_idx=0, output_label="Y1")
    with pytest.raises(ValueError, match="unknown aggr_channels 'max'"):
        plot_local(img, aggr_channels="max")
    with pytest.raises(ValueError, match="must reduce the channel axis"):
        plot_local(img, aggr_channels=lambda a, axis: a)
    with pytest.raises(TypeError, match="show_preds"):
        plot_local(tab, show_preds="yes")
    with pytest.raises(TypeError, match="Attribution"):
        plot_local(np.zeros((3, 4)))


# ---------------------------------------------------------------------- global: tabular
def test_global_box_with_reference(tab):
    grid = plot_global(tab, output_idx=[0, 1], ref_data_idx=3, sort=False)
    assert grid.axes.shape == (1, 2)
    vals = np.abs(tab.to_numpy())
    for c, k in enumerate([0, 1]):
        ax = grid.axes[0, c]
        assert len(ax.patches) == 4  # one box per feature
        assert ticklabels(ax) == FEATURES
        assert ax.get_xlabel() == "|attribution|"
        assert ax.get_xlim()[0] == 0.0
        (ref,) = labelled(ax, "data_4")
        np.testing.assert_allclose(ref.get_offsets()[:, 0], vals[3, :, k], rtol=1e-6)
        np.testing.assert_allclose(ref.get_offsets()[:, 1], np.arange(4))
        assert tuple(ref.get_facecolor()[0]) == to_rgba(HIGHLIGHT_COLOR)
        # box medians are the per-feature medians of |attribution|
        medians = [ln.get_xdata()[0] for ln in ax.lines if len(ln.get_xdata()) == 2
                   and ln.get_xdata()[0] == ln.get_xdata()[1]]
        for f in range(4):
            assert any(np.isclose(m, np.median(vals[:, f, k])) for m in medians)
        assert "12 sample(s)" in ax.get_title()


def test_global_kinds_draw_one_element_per_feature(tab):
    vals = np.abs(tab.to_numpy()[:, :, 0])
    ax = plot_global(tab, kind="violin", ax=plt.figure().gca())
    assert len([c for c in ax.collections if not isinstance(c, PathCollection)]) == 4
    ax = plot_global(tab, kind="strip", sort=False, ax=plt.figure().gca())
    (strip,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    xy = strip.get_offsets()
    for f in range(4):  # one row of jittered points per feature
        row = np.abs(xy[:, 1] - f) <= 0.25
        np.testing.assert_allclose(np.sort(xy[row, 0]), np.sort(vals[:, f]), rtol=1e-6)
    ax = plot_global(tab, kind="bar", sort=False, ax=plt.figure().gca())
    np.testing.assert_allclose([b.get_width() for b in hbars(ax)], vals.mean(axis=0),
                               rtol=1e-6)


def test_global_preprocess_and_data_idx(tab):
    v = tab.to_numpy()[:, :, 2]
    ax = plot_global(tab, output_idx=2, data_idx=[0, 1, 2], preprocess=None, kind="bar",
                     sort=False, ax=plt.figure().gca())
    np.testing.assert_allclose([b.get_width() for b in hbars(ax)], v[:3].mean(axis=0),
                               rtol=1e-6)
    assert ax.get_xlabel() == "attribution"
    ax = plot_global(tab, output_idx=2, preprocess=np.square, kind="bar", sort=False,
                     ax=plt.figure().gca())
    np.testing.assert_allclose([b.get_width() for b in hbars(ax)], (v ** 2).mean(axis=0),
                               rtol=1e-6)
    assert ax.get_xlabel() == "square(attribution)"
    with pytest.raises(ValueError, match="element-wise"):
        plot_global(tab, preprocess=np.sum)
    with pytest.raises(ValueError, match="preprocess"):
        plot_global(tab, preprocess="abs")


def test_beeswarm(tab, tab_data):
    grid = plot_global(tab, output_idx=[1], kind="beeswarm", ref_data_idx=0)
    ax = grid.axes[0, 0]
    v = tab.to_numpy()[:, :, 1]
    order = np.argsort(-np.abs(v).mean(axis=0), kind="stable")
    assert ticklabels(ax) == [FEATURES[j] for j in order]
    points = [c for c in ax.collections if c.get_label() != "data_1"][0]
    xy = points.get_offsets()
    assert len(xy) == 12 * 4
    for row, j in enumerate(order):  # signed values, one row per feature
        near = np.abs(xy[:, 1] - row) <= 0.4 + 1e-9
        np.testing.assert_allclose(np.sort(xy[near, 0]), np.sort(v[:, j]), rtol=1e-6)
    # colour = feature value: the highest value of the top feature is red, the lowest blue
    top = order[0]
    colours = points.to_rgba(points.get_array())[:12]  # rows of the first feature
    x_top = tab_data.iloc[:, top].to_numpy()
    assert colours[np.argmax(x_top)][0] > colours[np.argmax(x_top)][2]
    assert colours[np.argmin(x_top)][2] > colours[np.argmin(x_top)][0]
    cbar_ax = [a for a in grid.figure.axes if a is not ax]
    assert [t.get_text() for t in cbar_ax[0].get_yticklabels()] == ["Low", "High"]
    (ref,) = labelled(ax, "data_1")
    np.testing.assert_allclose(ref.get_offsets()[:, 0], v[0, order], rtol=1e-6)


def test_beeswarm_offsets_layout():
    vals = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    off = beeswarm_offsets(vals, width=0.4)
    np.testing.assert_allclose(off, [0.0, 0.2, -0.2, 0.4, 0.0])
    np.testing.assert_array_equal(beeswarm_offsets(vals), off)  # deterministic
    assert beeswarm_offsets(np.array([])).size == 0


# ---------------------------------------------------------------------- global: signal / image
def test_global_signal_box(sig):
    grid = plot_global(sig, output_idx=1, kind="box", ref_data_idx=6)
    ax = grid.axes[0, 0]
    assert len(ax.patches) == 10
    assert ax.get_xlabel() == "position"
    (ref,) = labelled(ax, "data_7")
    expected = np.abs(sig.to_numpy()[6, :, :, 1].sum(axis=0))
    np.testing.assert_allclose(ref.get_offsets()[:, 1], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="beeswarm"):
        plot_global(sig, kind="beeswarm")
    with pytest.raises(ValueError, match="aggr_channels"):
        plot_global(sig, aggr_channels=None)


def test_global_image_median_heatmap(img):
    grid = plot_global(img, output_idx=[0, 1], data_idx=[0, 2, 4])
    assert grid.axes.shape == (1, 2)
    for c in range(2):
        mesh = mesh_of(grid.axes[0, c])
        expected = np.median(np.abs(img.to_numpy()[[0, 2, 4], ..., c].sum(axis=1)), axis=0)
        np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(6, 7), expected,
                                   rtol=1e-5, atol=1e-7)
        assert mesh.cmap.name == "Reds" and mesh.norm.vmin == 0
        assert "median over 3 sample(s)" in grid.axes[0, c].get_title()
    signed = plot_global(img, preprocess=None, ax=plt.figure().gca())
    assert mesh_of(signed).cmap.name == "RdBu_r"


def test_global_multi_input(multi):
    grid = plot_global(multi, output_idx=[[0], [1]], ref_data_idx=1)
    assert grid.axes.shape == (2, 2)  # rows: outputs, cols: inputs
    for r in range(2):
        assert len([c for c in grid.axes[r, 0].collections if isinstance(c, QuadMesh)]) == 1
        assert len(grid.axes[r, 1].patches) == 3
        assert len(labelled(grid.axes[r, 1], "data_2")) == 1
    with pytest.raises(ValueError, match="input 1 is an image"):
        plot_global(multi, kind="box")
    grid = plot_global(multi, kind="violin", input_idx=[1])
    assert grid.axes.shape == (1, 3)  # every computed output node


def test_global_bad_arguments(tab, img):
    with pytest.raises(ValueError, match="kind='box' is for tabular and signal inputs"):
        plot_global(img, kind="box")
    with pytest.raises(ValueError, match="kind='heatmap' is for image inputs"):
        plot_global(tab, kind="heatmap")
    with pytest.raises(ValueError, match="unknown kind 'pie'"):
        plot_global(tab, kind="pie")
    with pytest.raises(ValueError, match="data_idx 40 is out of range"):
        plot_global(tab, data_idx=[0, 40])
    with pytest.raises(ValueError, match="data_idx 12 is out of range"):
        plot_global(tab, ref_data_idx=12)
    with pytest.raises(TypeError, match="ref_data_idx"):
        plot_global(tab, ref_data_idx=[1])
    with pytest.raises(ValueError, match="output node 7 of output layer 1 was not computed"):
        plot_global(tab, output_idx=7)


# ---------------------------------------------------------------------- plotly
def test_as_plotly_without_plotly_says_how_to_install(tab, monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)  # import plotly -> ImportError
    with pytest.raises(ImportError, match=r"pip install sknn-explain\[plotly\]"):
        plot_local(tab, as_plotly=True)
    with pytest.raises(ImportError, match=r"pip install sknn-explain\[plotly\]"):
        tab.plot_global(as_plotly=True)


def test_plotly_local_real_plotly(tab, img, multi):
    go = pytest.importorskip("plotly.graph_objects")
    fig = plot_local(tab, data_idx=[0, 1], output_idx=[0, 2], as_plotly=True, sort=False,
                     show_input=False)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 4
    values = tab.to_numpy()
    for trace, (d, k) in zip(fig.data, [(0, 0), (0, 2), (1, 0), (1, 2)]):
        assert trace.type == "bar" and trace.orientation == "h"
        np.testing.assert_allclose(trace.x, values[d, :, k], rtol=1e-6)
        assert list(trace.y) == FEATURES
        assert list(trace.marker.color) == [
            POSITIVE_COLOR if w > 0 else NEGATIVE_COLOR for w in values[d, :, k]
        ]
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("Gradient · sample 0 · output 0<br>pred:")
    fig.to_json()  # plotly validates and serialises everything

    fig = plot_local(img, output_idx=1, as_plotly=True)
    kinds = [t.type for t in fig.data]
    assert kinds == ["image", "heatmap"]  # the input beside its heatmap
    heat = fig.data[1]
    np.testing.assert_allclose(heat.z, image_values(img, 0, 1), rtol=1e-5, atol=1e-7)
    assert heat.colorscale[0][1] == NEGATIVE_COLOR and heat.colorscale[-1][1] == POSITIVE_COLOR
    assert heat.zmid == 0.0 and heat.zmin == -heat.zmax

    fig = plot_local(multi, output_idx=[[0], None], as_plotly=True, show_input=False)
    assert [t.type for t in fig.data] == ["heatmap", "bar"]
    wf = plot_local(tab, output_idx=0, kind="waterfall", as_plotly=True)
    assert wf.data[0].type == "waterfall"
    with pytest.raises(ValueError, match="as_plotly"):
        plot_local(tab, as_plotly=True, ax=plt.figure().gca())


def test_plotly_global_real_plotly(tab, sig, img):
    pytest.importorskip("plotly")
    v = np.abs(tab.to_numpy()[:, :, 0])
    kinds = {"box": "box", "violin": "violin", "strip": "box", "bar": "bar",
             "beeswarm": "scatter"}
    for kind, cls in kinds.items():
        fig = plot_global(tab, output_idx=0, kind=kind, ref_data_idx=2, as_plotly=True)
        main, ref = fig.data[0], fig.data[-1]
        assert main.type == cls
        assert ref.name == "data_3" and ref.marker.color == HIGHLIGHT_COLOR
        if kind in ("box", "violin", "strip"):
            assert len(main.x) == 12 * 4
            np.testing.assert_allclose(np.sort(main.x), np.sort(v.ravel()), rtol=1e-6)
        fig.to_json()
    order = np.argsort(-v.mean(axis=0), kind="stable")
    bar = plot_global(tab, output_idx=0, kind="bar", as_plotly=True).data[0]
    np.testing.assert_allclose(bar.x, v.mean(axis=0)[order], rtol=1e-6)
    assert list(bar.y) == [FEATURES[j] for j in order]
    strip = plot_global(tab, output_idx=0, kind="strip", as_plotly=True).data[0]
    assert strip.boxpoints == "all"
    bees = plot_global(tab, output_idx=0, kind="beeswarm", as_plotly=True)
    assert list(bees.layout.yaxis.ticktext) == [FEATURES[j] for j in order]

    fig = plot_global(sig, output_idx=0, kind="box", as_plotly=True)
    assert fig.data[0].orientation == "v"
    fig = plot_global(img, output_idx=[0, 1], as_plotly=True)
    assert [t.showscale for t in fig.data] == [True, False]  # one colour bar
    assert fig.data[0].zmin == 0.0
    dep = plot_dependence(tab, "age", color_by="debt", output_idx=0, as_plotly=True)
    assert dep.data[0].type == "scatter"
    np.testing.assert_allclose(dep.data[0].x, tab.inputs[:, 0], rtol=1e-6)


def test_attribution_methods_delegate(tab):
    a = tab.plot_global(output_idx=1, kind="bar", ref_data_idx=2)
    b = plot_global(tab, output_idx=1, kind="bar", ref_data_idx=2)
    c = plot_global(tab, output_idx=1, kind="bar", ref_data_idx=2, sort=False)
    assert [p.get_width() for p in hbars(a.axes[0, 0])] == [
        p.get_width() for p in hbars(b.axes[0, 0])
    ]
    assert sorted(p.get_width() for p in hbars(a.axes[0, 0])) == sorted(
        p.get_width() for p in hbars(c.axes[0, 0]))
    assert len(labelled(a.axes[0, 0], "data_3")) == 1
    ax = tab.plot(data_idx=4, output_idx=2, sort=False, ax=plt.figure().gca())
    assert ticklabels(ax)[0].startswith("age = ")


def test_rank_4_inputs_are_rejected():
    net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3 * 3, 1))
    res = Gradient().fit(net).explain(torch.randn(2, 2, 3, 3, 3))
    with pytest.raises(ValueError, match="rank 1-3"):
        plot_local(res)


# ---------------------------------------------------------------------- issue #13, items 10-17
def colourbars(fig):
    return [a for a in fig.axes if a.get_label() == "<colorbar>"]


def test_titles_name_method_output_and_logit_or_probability():
    torch.manual_seed(6)
    net = nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=1))
    x = torch.randn(5, 3)
    logit = Gradient().fit(net).explain(x, output_idx=[3])
    ax = plot_local(logit, ax=plt.figure().gca())
    assert ax.get_title().startswith("Gradient · sample 0 · output 3 (logit)\n")
    prob = Gradient(ignore_last_act=False).fit(net).explain(x, output_idx=[1])
    grid = plot_local(prob, data_idx=2, output_names=["cat", "dog", "fish", "bird"])
    assert grid.axes[0, 0].get_title().startswith("Gradient · sample 2 · dog (output 1, "
                                                  "probability)")
    grid = plot_global(prob, output_names={1: "dog"})
    assert grid.axes[0, 0].get_title().startswith("Gradient · dog (output 1, probability)")


def test_class_labels_from_the_model_are_named():
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 3))
    y = np.array(["ham", "spam", "eggs", "ham"] * 10)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=30, random_state=0).fit(X, y)
    res = Gradient().fit(clf).explain(X[:3], output_idx=[2])
    ax = plot_local(res, ax=plt.figure().gca())
    assert ax.get_title().startswith("Gradient · sample 0 · spam (output 2, logit)")


def test_every_selected_output_is_plotted_by_default():
    torch.manual_seed(8)
    res = Gradient().fit(nn.Linear(3, 10)).explain(torch.randn(4, 3), output_idx=[3, 7])
    for grid in (res.plot(), res.plot_global(), res.plot_global(kind="beeswarm")):
        assert grid.axes.shape == (1, 2)
        titles = [ax.get_title().split("\n")[0] for ax in grid.axes.flat]
        assert titles[0].endswith("output 3") and titles[1].endswith("output 7")


def test_local_bars_sorted_with_max_display_and_values(tab, tab_data):
    v = tab.to_numpy()[7, :, 1]
    order = np.argsort(-np.abs(v), kind="stable")
    ax = plot_local(tab, data_idx=7, output_idx=1, max_display=3, ax=plt.figure().gca())
    expected = [f"{FEATURES[j]} = {tab_data.iloc[7, j]:.3g}" for j in order[:2]]
    assert ticklabels(ax) == expected + ["2 other features"]
    widths = [b.get_width() for b in hbars(ax)]
    np.testing.assert_allclose(widths, [v[order[0]], v[order[1]], v[order[2:]].sum()],
                               rtol=1e-6)
    # 30+ features: the panel height stays sane
    big = pd.DataFrame(np.random.default_rng(1).normal(size=(3, 40)),
                       columns=[f"f{i}" for i in range(40)])
    res = Gradient().fit(nn.Linear(40, 1), big).explain(big)
    grid = plot_local(res, max_display=None)
    assert len(hbars(grid.axes[0, 0])) == 40
    assert grid.figure.get_size_inches()[1] <= 10


def test_waterfall_goes_from_base_to_prediction():
    torch.manual_seed(9)
    X = pd.DataFrame(np.random.default_rng(2).normal(size=(20, 5)), columns=list("abcde"))
    res = IntegratedGradients(n=8).fit(nn.Linear(5, 2), X).explain(X, output_idx=[1])
    ax = plot_local(res, data_idx=4, kind="waterfall", max_display=4, ax=plt.figure().gca())
    bars = hbars(ax)  # top (most important) to bottom ("others")
    assert len(bars) == 4 and ticklabels(ax)[-1] == "2 other features"
    pred, goal = res.predictions[4, 0], res.decomp_goal[4, 0]
    base = pred - goal
    assert bars[-1].get_x() == pytest.approx(base, abs=1e-5)  # starts at the base value
    for lower, upper in zip(bars[1:], bars[:-1]):  # each bar starts where the one below ends
        assert upper.get_x() == pytest.approx(lower.get_x() + lower.get_width(), abs=1e-6)
    assert bars[0].get_x() + bars[0].get_width() == pytest.approx(pred, abs=1e-4)
    with pytest.raises(ValueError, match="waterfall"):
        plot_local(res, kind="pie")


def test_global_sorted_bar_limits_fitted_and_outliers_clipped(tab_data, tab_model):
    X = tab_data.copy()
    X.iloc[5, 1] = 60.0  # one huge income
    res = Gradient(times_input=True).fit(tab_model, X).explain(X, output_idx=[0])
    v = np.abs(res.to_numpy()[:, :, 0])
    ax = plot_global(res, kind="strip", ax=plt.figure().gca())
    order = np.argsort(-v.mean(axis=0), kind="stable")
    assert ticklabels(ax) == [FEATURES[j] for j in order]
    hi = ax.get_xlim()[1]
    assert hi < v[5, 1] / 3  # the outlier does not squash the axis
    (mark,) = [c for c in ax.collections if c.get_label().startswith("beyond axis")]
    assert mark.get_label() == "beyond axis (1)"
    assert mark.get_offsets()[0, 0] == pytest.approx(hi)  # drawn at the edge
    ax = plot_global(res, kind="bar", ax=plt.figure().gca())
    top = (v.mean(axis=0) + v.std(axis=0, ddof=1) / np.sqrt(len(v))).max()
    assert top < ax.get_xlim()[1] <= 1.06 * top  # fitted to the bars (and error bars)
    assert v.max() > 1.5 * ax.get_xlim()[1]  # not to the samples
    ax = plot_global(res, kind="bar", preprocess=None, ax=plt.figure().gca())
    for b in hbars(ax):  # signed means: red / blue
        assert b.get_facecolor() == (RED if b.get_width() > 0 else BLUE)


def test_one_colour_bar_per_figure(tab, img):
    grid = plot_global(tab, output_idx=[0, 1, 2], kind="beeswarm")
    assert len(colourbars(grid.figure)) == 1
    grid = plot_local(img, data_idx=[0, 1], output_idx=[0, 1])
    assert len(colourbars(grid.figure)) == 1
    cb = colourbars(grid.figure)[0]
    assert cb.get_ylim()[0] == pytest.approx(-cb.get_ylim()[1])  # symmetric around 0


def test_dependence_plot(tab, tab_data):
    ax = plot_dependence(tab, "income", color_by="age", output_idx=2, ax=plt.figure().gca())
    (pts,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(pts.get_offsets()[:, 0], tab_data["income"], rtol=1e-6)
    np.testing.assert_allclose(pts.get_offsets()[:, 1], tab.to_numpy()[:, 1, 2], rtol=1e-6)
    age = tab_data["age"].to_numpy()
    rgba = pts.to_rgba(pts.get_array())
    assert rgba[np.argmax(age)][0] > rgba[np.argmax(age)][2]  # high age red
    assert ax.get_xlabel() == "income" and ax.get_ylabel() == "attribution of income"
    grid = tab.plot_dependence(1, output_idx=[0, 1])
    assert grid.axes.shape == (1, 2) and len(colourbars(grid.figure)) == 1
    with pytest.raises(ValueError, match="unknown feature 'height'"):
        plot_dependence(tab, "height")


def test_images_no_ticks_input_beside_overlay_matches_colour_bar(img, img_x):
    grid = plot_local(img, data_idx=0, output_idx=[0, 1])
    inp, heat = grid.axes[0, 0], grid.axes[0, 1]
    assert len(inp.get_images()) == 1 and not ticklabels(heat) and not ticklabels(heat, "x")
    ax = plot_local(img, data_idx=0, output_idx=0, show_input=True, ax=plt.figure().gca())
    mesh = mesh_of(ax)
    assert mesh.get_alpha() in (None, 1)  # opaque: the colours are those of the colour bar
    assert len(ax.collections) > 1  # the input drawn as outlines on top


def test_image_grid_for_papers(img):
    grid = plot_image_grid(img, data_idx=[0, 3], output_idx=[0, 1])
    assert grid.axes.shape == (2, 3)
    assert [ax.get_title() for ax in grid.axes[0]] == ["input", "output 0", "output 1"]
    assert [ax.get_title() for ax in grid.axes[1]] == ["", "", ""]
    assert [row[0].get_ylabel() for row in grid.axes] == ["sample 0", "sample 3"]
    assert len(colourbars(grid.figure)) == 1
    assert len({mesh_of(ax).norm.vmax for ax in grid.axes[:, 1:].flat}) == 1


def test_signal_input_channels_labelled_and_distinct(sig):
    grid = plot_local(sig, data_idx=0, output_idx=0, show_input=True)
    (twin,) = [a for a in grid.figure.axes if a.get_label() == "input"]
    assert [ln.get_label() for ln in twin.lines] == ["input C1", "input C2"]
    assert twin.lines[0].get_color() != twin.lines[1].get_color()
    assert [t.get_text() for t in twin.get_legend().get_texts()] == ["input C1", "input C2"]


def test_strip_is_reproducible_and_ax_labels_not_clipped(tab):
    a = plot_global(tab, output_idx=0, kind="strip", ax=plt.figure().gca())
    b = plot_global(tab, output_idx=0, kind="strip", ax=plt.figure().gca())
    np.testing.assert_array_equal(a.collections[0].get_offsets(), b.collections[0].get_offsets())
    long = pd.DataFrame(np.random.default_rng(3).normal(size=(4, 2)),
                        columns=["a rather long feature name (in units)", "b"])
    res = Gradient().fit(nn.Linear(2, 1), long).explain(long)
    fig, ax = plt.subplots(figsize=(4, 3))
    plot_local(res, ax=ax)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for t in ax.get_yticklabels():
        assert t.get_window_extent(renderer).x0 >= 0


def test_output_names_follow_integer_class_labels():
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(10)
    X = rng.normal(size=(30, 3))
    clf = MLPClassifier(hidden_layer_sizes=(3,), max_iter=20, random_state=0).fit(
        X, (X[:, 0] > 0).astype(int))
    res = Gradient().fit(clf).explain(X[:2])  # binary: one output, the logit of class 1
    ax = plot_local(res, output_names=["malignant", "benign"], ax=plt.figure().gca())
    assert ax.get_title().startswith("Gradient · sample 0 · benign (output 0, logit)")


def _categorical_attribution(n: int = 30, numeric: bool = True):
    from sknn_explain.attribution import Attribution

    rng = np.random.default_rng(0)
    inputs = np.empty((n, 3 if numeric else 2), dtype=object)
    inputs[:, 0] = rng.choice(["Biscoe", "Dream", "Torgersen"], n)
    inputs[:, 1] = rng.choice(["male", "female", None], n)
    names = ["island", "sex"]
    if numeric:
        inputs[:, 2] = rng.normal(size=n)
        names.append("bill")
    vals = rng.normal(size=(n, len(names), 1))
    return Attribution(
        method="KernelSHAP", values=[[vals]], inputs=[inputs], input_names=[[names]],
        output_names=[["Adelie"]], output_layers=[0], output_idx=[np.array([0])],
        predictions=[rng.normal(size=(n, 1))], decomp_goal=[vals.sum(1)])


def test_categorical_features_are_labelled_and_coloured_by_category():
    attr = _categorical_attribution()
    local = attr.plot(data_idx=0)
    labels = [t.get_text() for t in local.axes.flat[0].get_yticklabels()]
    assert any(lab.startswith("island = ") and lab.split(" = ")[1] in
               ("Biscoe", "Dream", "Torgersen") for lab in labels)
    assert any(lab.startswith("bill = ") for lab in labels)
    bee = attr.plot_global(kind="beeswarm")
    legend = [t.get_text() for t in bee.axes.flat[0].get_legend().get_texts()]
    assert {"island = Biscoe", "island = Dream", "island = Torgersen", "sex missing"} <= set(
        legend)
    assert len(bee.figure.axes) == 2  # one colour bar, for the numeric feature only
    only_cat = _categorical_attribution(numeric=False).plot_global(kind="beeswarm")
    assert len(only_cat.figure.axes) == 1  # no numeric colour bar at all
    dep = attr.plot_dependence("island", color_by="sex")
    ax = dep.axes.flat[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Biscoe", "Dream", "Torgersen"]
    assert "sex = male" in [t.get_text() for t in ax.get_legend().get_texts()]
    for fig in (attr.plot_global(kind="beeswarm", as_plotly=True),
                attr.plot_dependence("island", as_plotly=True)):
        fig.to_json()
    plt.close("all")

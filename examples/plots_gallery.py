"""
Every plot kind, written as PNG files
=====================================

The plots of ``docs/plots.md`` on real data: writes one PNG per plot kind (the
``digits_images`` and ``signals`` examples show the image and signal plots in this gallery).

Usage::

    python examples/plots_gallery.py [OUTPUT_DIR]     # default: output/plots/

Data sets ship with scikit-learn (no download): ``breast_cancer`` (tabular, 30 features,
the demo's data set; a StandardScaler + MLPClassifier pipeline, explained on the original
features), ``digits`` (8 x 8 images; a small torch CNN) and the same digits read as 1D
signals with two channels (row-major and column-major pixel order; a torch Conv1d). The
models train in a few seconds on a CPU. ``docs/plots.md`` shows the PNGs from
``docs/img/`` (``python examples/plots_gallery.py docs/img`` regenerates them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from torch import nn  # noqa: E402

from sknn_explain import Gradient, IntegratedGradients  # noqa: E402
from sknn_explain.plotting import plot_image_grid  # noqa: E402


def _saver(out_dir: Path):
    def save(name: str, grid) -> None:
        """Save a FacetGrid as ``out_dir/plot_<name>.png`` and close its figure."""
        path = out_dir / f"plot_{name}.png"
        grid.figure.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(grid.figure)
        print(f"wrote {path}")

    return save


def _train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 30) -> nn.Module:
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    return net.eval()


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    save = _saver(out_dir)
    torch.manual_seed(0)

    # --- tabular: breast_cancer, StandardScaler + MLP; class names from the data set
    bc = load_breast_cancer(as_frame=True)
    X, y = bc.data, bc.target
    clf = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=400, random_state=0))
    clf.fit(X, y)
    names = list(bc.target_names)  # ["malignant", "benign"]
    tab = IntegratedGradients(n=20).fit(clf, X).explain(X.iloc[:150])
    save("tabular_local", tab.plot(data_idx=[0, 1], max_display=12, output_names=names))
    save("tabular_waterfall", tab.plot(data_idx=0, kind="waterfall", max_display=10,
                                       output_names=names))
    for kind in ("box", "violin", "strip", "bar"):
        save(f"tabular_global_{kind}", tab.plot_global(kind=kind, ref_data_idx=0,
                                                       max_display=12, output_names=names))
    save("tabular_beeswarm", tab.plot_global(kind="beeswarm", max_display=15,
                                             output_names=names))
    save("tabular_dependence", tab.plot_dependence("worst concave points",
                                                   output_names=names))

    # --- images: digits 8 x 8, a small CNN, 10 classes
    dg = load_digits()
    xi = torch.tensor(dg.images[:, None] / 16.0, dtype=torch.float32)
    yi = torch.tensor(dg.target)
    cnn = _train(nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Flatten(), nn.Linear(8 * 4 * 4, 10)), xi, yi)
    img = IntegratedGradients(n=20).fit(cnn, torch.zeros(1, 1, 8, 8)).explain(
        xi[:40], output_idx=[0, 3, 8])
    save("image_local", img.plot(data_idx=[0, 3], output_idx=[0, 3]))
    save("image_local_overlay", img.plot(data_idx=3, output_idx=3, show_input=True))
    save("image_grid", plot_image_grid(img, data_idx=[0, 3, 8], output_idx=[0, 3, 8]))
    save("image_global_median", img.plot_global(output_idx=[0, 3]))

    # --- signals: each digit as 2 channels x 64 positions (row- and column-major order)
    xs = torch.stack([xi[:, 0].flatten(1), xi[:, 0].transpose(1, 2).flatten(1)], dim=1)
    cnn1d = _train(nn.Sequential(nn.Conv1d(2, 8, 5, padding=2), nn.ReLU(), nn.MaxPool1d(4),
                                 nn.Flatten(), nn.Linear(8 * 16, 10)), xs, yi)
    sig = Gradient(times_input=True).fit(cnn1d).explain(xs[:60], output_idx=[0, 3])
    save("signal_local", sig.plot(data_idx=0, output_idx=0, show_input=True))
    save("signal_local_channels", sig.plot(data_idx=0, aggr_channels=None))
    save("signal_global_box", sig.plot_global(kind="box", ref_data_idx=0))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write one PNG per sknn_explain plot kind.")
    parser.add_argument("out_dir", nargs="?", default="output/plots", type=Path,
                        help="where to write the PNGs (default: output/plots/)")
    main(parser.parse_args().out_dir)

"""Gallery of sknn_explain's plots: writes one PNG per plot kind.

Usage::

    python examples/plots_gallery.py [OUTPUT_DIR]     # default: output/plots/

Tiny seeded torch models stand in for trained ones (tabular MLP, 1D CNN on signals,
2D CNN on RGB images, a two-input image + tabular model with two output heads), so the
script runs in seconds on a CPU. ``docs/plots.md`` shows them from ``docs/img/``
(``python examples/plots_gallery.py docs/img`` regenerates them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from sknn_explain import Gradient, IntegratedGradients, SmoothGrad  # noqa: E402


class ImageAndTable(nn.Module):
    """Image + tabular input, two output heads (returned as a tuple)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                                  nn.Flatten())
        self.tab = nn.Sequential(nn.Linear(5, 8), nn.Tanh())
        self.head_class = nn.Linear(4 * 8 * 8 + 8, 3)
        self.head_reg = nn.Linear(4 * 8 * 8 + 8, 1)

    def forward(self, img: torch.Tensor, tab: torch.Tensor):
        h = torch.cat([self.conv(img), self.tab(tab)], dim=1)
        return self.head_class(h), self.head_reg(h)


def _saver(out_dir: Path):
    def save(name: str, grid) -> None:
        """Save a FacetGrid as ``out_dir/plot_<name>.png`` and close its figure."""
        path = out_dir / f"plot_{name}.png"
        grid.figure.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(grid.figure)
        print(f"wrote {path}")

    return save


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    save = _saver(out_dir)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)

    # --- tabular: 8 named features, 3 classes
    cols = ["age", "income", "debt", "savings", "tenure", "n_loans", "score", "region"]
    X = pd.DataFrame(rng.normal(size=(200, len(cols))), columns=cols)
    mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    tab = IntegratedGradients(n=20).fit(mlp, X).explain(X, output_idx=[0, 1, 2])
    save("tabular_local", tab.plot(data_idx=[0, 1], output_idx=[0, 1], show_input=True))
    for kind in ("box", "violin", "strip", "bar"):
        save(f"tabular_global_{kind}",
             tab.plot_global(output_idx=[0, 1], kind=kind, ref_data_idx=3))
    save("tabular_beeswarm", tab.plot_global(output_idx=[0, 1], kind="beeswarm"))

    # --- 1D signals: 2 channels x 40 positions
    sig_x = torch.as_tensor(
        np.sin(np.linspace(0, 6, 40))[None, None] + 0.3 * rng.normal(size=(50, 2, 40)),
        dtype=torch.float32,
    )
    cnn1d = nn.Sequential(nn.Conv1d(2, 4, 5), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2))
    sig = Gradient(times_input=True).fit(cnn1d).explain(sig_x, output_idx=[0, 1])
    save("signal_local", sig.plot(data_idx=0, output_idx=[0, 1], show_input=True))
    save("signal_local_channels", sig.plot(data_idx=0, aggr_channels=None))
    save("signal_global_box", sig.plot_global(kind="box", ref_data_idx=0))

    # --- 2D images: RGB 16 x 16, channels last (as most image libraries store them)
    img_x = torch.rand(20, 16, 16, 3)
    cnn2d = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(16, 4))
    img = SmoothGrad(n=10, times_input=True, random_state=0, channels_first=False).fit(
        cnn2d).explain(img_x, output_idx=[0, 1])
    save("image_local", img.plot(data_idx=[0, 1], output_idx=[0, 1]))
    save("image_local_overlay", img.plot(data_idx=0, aggr_channels="norm", show_input=True))
    save("image_global_median", img.plot_global(output_idx=[0, 1]))

    # --- two inputs (image + table), two output layers
    two = IntegratedGradients(n=10).fit(ImageAndTable()).explain(
        [torch.rand(10, 3, 16, 16), torch.randn(10, 5)], output_idx=[[0, 2], [0]])
    save("multi_input_local", two.plot(data_idx=0, output_idx=[[0], [0]]))
    save("multi_input_global", two.plot_global(output_idx=[[2], None]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="output/plots", type=Path,
                        help="where to write the PNGs (default: output/plots/)")
    main(parser.parse_args().out_dir)

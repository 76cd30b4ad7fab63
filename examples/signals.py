"""
Signals: attributions along a sequence
======================================

A 1D convolutional network classifies signals with two channels. To stay download-free we
read each 8 x 8 digit of ``load_digits`` as a sequence of 64 positions, once row by row and
once column by column (two channels). Gradient x Input shows which positions of which
channel drive a class score.

Run from the repository root::

    python examples/signals.py
"""

# %%
# Signals and model
# -----------------
# Signals use PyTorch's ``(n, channels, length)`` layout.

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from torch import nn

import sknn_explain as skx

torch.manual_seed(0)
digits = load_digits()
images = torch.tensor(digits.images / 16.0, dtype=torch.float32)
X = torch.stack([images.flatten(1), images.transpose(1, 2).flatten(1)], dim=1)  # (n, 2, 64)
y = torch.tensor(digits.target)

net = nn.Sequential(nn.Conv1d(2, 8, 5, padding=2), nn.ReLU(), nn.MaxPool1d(4),
                    nn.Flatten(), nn.Linear(8 * 16, 10))
optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
for _ in range(30):
    for idx in torch.randperm(1400).split(128):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
        optimizer.step()
net.eval()
with torch.no_grad():
    accuracy = (net(X[1400:]).argmax(1) == y[1400:]).float().mean().item()
print(f"test accuracy {accuracy:.3f}")

# %%
# Gradient x Input for two classes
# --------------------------------
# The result holds ``(n_samples, channels, length, n_outputs)`` values.

result = skx.Gradient(times_input=True).fit(net).explain(X[1400:1460], output_idx=[0, 3])
print(result.values.shape)

# %%
# One signal
# ----------
# With ``show_input=True`` the signal is drawn under its attributions (channels summed).

result.plot(data_idx=0, output_idx=0, show_input=True)

# %%
# Per channel
# -----------
# ``aggr_channels=None`` keeps the two channels apart.

result.plot(data_idx=0, aggr_channels=None)

# %%
# All explained signals
# ---------------------
# Box plots of the attributions per position over the 60 explained signals; the first
# signal is highlighted.

result.plot_global(kind="box", ref_data_idx=0)
plt.show()

"""
Images: which pixels make a digit
=================================

A small convolutional network learns the 8 x 8 handwritten digits of scikit-learn's
``load_digits`` (no download). Integrated Gradients against a black image attributes each
class score to the pixels; the attributions of one image add up to the score difference
between the image and the black baseline (completeness, up to the Riemann-sum error of
``n`` steps), which we check.

Run from the repository root::

    python examples/digits_images.py
"""

# %%
# Data and model
# --------------
# The images are scaled to [0, 1] and kept in PyTorch's ``(n, channels, height, width)``
# layout. Thirty epochs of Adam train the network in a few seconds on a CPU.

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from torch import nn

import sknn_explain as skx
from sknn_explain.plotting import plot_image_grid

torch.manual_seed(0)
digits = load_digits()
X = torch.tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
y = torch.tensor(digits.target)
X_train, y_train, X_test, y_test = X[:1400], y[:1400], X[1400:], y[1400:]

cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
optimizer = torch.optim.Adam(cnn.parameters(), lr=1e-2)
for _ in range(30):
    for idx in torch.randperm(len(X_train)).split(128):
        optimizer.zero_grad()
        nn.functional.cross_entropy(cnn(X_train[idx]), y_train[idx]).backward()
        optimizer.step()
cnn.eval()
with torch.no_grad():
    accuracy = (cnn(X_test).argmax(1) == y_test).float().mean().item()
print(f"test accuracy {accuracy:.3f}")

# %%
# Explain the scores of three classes
# -----------------------------------
# ``output_idx`` selects the output nodes (0-based): the classes 0, 3 and 8. The baseline is
# the black image; the result holds one map per image and class,
# ``(n_samples, channels, height, width, n_outputs)``.

explainer = skx.IntegratedGradients(n=32).fit(cnn, torch.zeros(1, 1, 8, 8))
result = explainer.explain(X_test[:40], output_idx=[0, 3, 8])
print(result.values.shape)
print("max |sum of attributions - (f(x) - f(black))| =",
      float(abs(result.decomp_sum - result.decomp_goal).max()))

# %%
# One image, two classes
# ----------------------
# Red pixels raise the class score, blue ones lower it: the same pixels speak for one class
# and against another.

result.plot(data_idx=[0], output_idx=[0, 3])

# %%
# Images by classes
# -----------------
# ``plot_image_grid`` lays out several images (rows) against several classes (columns).

plot_image_grid(result, data_idx=[0, 3, 8], output_idx=[0, 3, 8])

# %%
# Over all explained images
# -------------------------
# The global plot summarises the attributions of every explained image per pixel (median).

result.plot_global(output_idx=[0, 3])
plt.show()

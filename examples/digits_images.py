"""
Images: which pixels make a digit
=================================

A small convolutional network learns the 8 x 8 handwritten digits of scikit-learn's
``load_digits`` (no download). Integrated Gradients against a black image attributes each
class score to the pixels; the attributions of one image add up to the score difference
between the image and the black baseline (completeness, up to the Riemann-sum error of
``n`` steps), which we check. Then Grad-CAM, Grad-CAM++, Occlusion, Guided Backprop,
Excitation Backprop and LRP (zennit's ``EpsilonPlusFlat`` preset) explain the same images,
region perturbation (AOPC) ranks the maps, and the layer methods and neuron attribution look
inside the network.

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

# %%
# Grad-CAM, Occlusion and the modified-backward methods
# -----------------------------------------------------
# Grad-CAM weighs the channels of the convolution's ReLU (``layer="1"``, the module path in
# the ``nn.Sequential``) by their mean gradient and upsamples the map to 8 x 8. Occlusion
# slides a 2 x 2 black patch over the image and records the score drop. Guided Backprop,
# Excitation Backprop and LRP with zennit's ``EpsilonPlusFlat`` preset change the backward
# pass. Every method explains the three classes in one call.

from sknn_explain.rules import EpsilonPlusFlat  # noqa: E402

images = X_test[:40]
maps = {
    "IntegratedGradients": result,
    "GradCAM": skx.GradCAM(layer="1").fit(cnn).explain(images, output_idx=[0, 3, 8]),
    "GradCAM++": skx.GradCAMPlusPlus(layer="1").fit(cnn).explain(
        images, output_idx=[0, 3, 8]),
    "Occlusion": skx.Occlusion(sliding_window_shapes=(1, 2, 2), strides=(1, 2, 2))
    .fit(cnn).explain(images, output_idx=[0, 3, 8]),
    "GuidedBackprop": skx.GuidedBackprop().fit(cnn).explain(images, output_idx=[0, 3, 8]),
    "ExcitationBackprop": skx.ExcitationBackprop().fit(cnn).explain(
        images, output_idx=[0, 3, 8]),
    "LRP EpsilonPlusFlat": skx.LRP(EpsilonPlusFlat()).fit(cnn).explain(
        images, output_idx=[0, 3, 8]),
}
plot_image_grid(maps["GradCAM"], data_idx=[0, 3, 8], output_idx=[0, 3, 8])

# %%
# Which map is faithful? Region perturbation (AOPC)
# -------------------------------------------------
# Remove 2 x 2 regions most relevant first (MoRF) and average the drop of the class score
# (AOPC, Samek et al., 2017): a higher AOPC means the map found the regions the network
# actually uses. Each image is scored for its own (true) class.

from sknn_explain.metrics import aopc  # noqa: E402

labels = y_test[:40].numpy()
keep = [i for i, label in enumerate(labels) if label in (0, 3, 8)]
column = [{0: 0, 3: 1, 8: 2}[labels[i]] for i in keep]  # the true class's column


def scores(Z):
    """All class scores of a batch of images."""
    with torch.no_grad():
        return cnn(torch.as_tensor(Z, dtype=torch.float32)).numpy()


for name, res in maps.items():
    A = res.values[keep, ..., column]  # each image's map for its own class
    score = aopc(scores, images[keep].numpy(), A, target=labels[keep], region_size=2,
                 reference=0.0)
    print(f"AOPC {name:20s} {score:.3f}")

# %%
# IROF and the model-randomisation sanity check
# ---------------------------------------------
# IROF (Rieger & Hansen, 2020) removes regions by mean relevance and measures the area over
# the class probability curve (higher is better). MPRT (Adebayo et al., 2018) re-initialises
# the layers of a copy of the network from the output down: a map that still looks the same
# (high Spearman similarity of ``|map|``, printed per randomisation step) does not depend on
# what the network learned. Read it with care: Integrated Gradients against a black image
# multiplies by the input, so its maps keep the digit's strokes even for a random network and
# stay similar; MPRT tests dependence on the parameters, not faithfulness.

from sknn_explain.metrics import irof, model_parameter_randomisation  # noqa: E402


def probabilities(Z):
    with torch.no_grad():
        return torch.softmax(cnn(torch.as_tensor(Z, dtype=torch.float32)), 1).numpy()


for name in ("IntegratedGradients", "GradCAM", "Occlusion"):
    A = maps[name].values[keep, ..., column]
    score = irof(probabilities, images[keep].numpy(), A, target=labels[keep], region_size=2)
    print(f"IROF {name:20s} {score:.3f}")


def guided_map(model, Z):
    return skx.GuidedBackprop().fit(model).explain(Z, output_idx=[3]).values[..., 0]


def integrated_map(model, Z):
    return skx.IntegratedGradients(n=16).fit(model).explain(Z, output_idx=[3]).values[..., 0]


for name, explain_fn in (("GuidedBackprop", guided_map), ("IntegratedGradients", integrated_map)):
    mprt = model_parameter_randomisation(cnn, images[:10], explain_fn, random_state=0)
    print(f"MPRT {name:20s}", mprt.groupby("step")["value"].mean().round(2).tolist())

# %%
# Hidden layers and single neurons
# --------------------------------
# ``LayerIntegratedGradients`` attributes a class score to the units of a hidden layer (here
# the 8 channels of the ReLU, summed over positions; ``LayerGradient`` x activation,
# ``LayerDeepLift`` and ``LayerLRP`` answer the same question with their own rules), and
# ``neuron_graph`` turns one hidden unit into the output so that any explainer shows which
# pixels drive it.

hidden = skx.LayerIntegratedGradients(layer="1", n=16).fit(cnn, torch.zeros(1, 1, 8, 8))
per_channel = hidden.explain(images[:10], output_idx=[3]).values.sum(axis=(2, 3))[..., 0]
print("mean relevance of each channel for class 3:", per_channel.mean(0).round(2))
for layer_method in (skx.LayerGradient(layer="1", times_input=True),
                     skx.LayerDeepLift(layer="1"), skx.LayerLRP(layer="1")):
    values = layer_method.fit(cnn, torch.zeros(1, 1, 8, 8)).explain(
        images[:10], output_idx=[3]).values.sum(axis=(2, 3))[..., 0]
    print(f"{type(layer_method).__name__:14s}", values.mean(0).round(2))
unit = skx.neuron_index((8, 8, 8), (int(per_channel.mean(0).argmax()), 4, 4))
neuron = skx.Gradient(times_input=True).fit(skx.neuron_graph(cnn, "1", input_shape=(1, 8, 8)))
neuron.explain(images[:3], output_idx=[unit]).plot(data_idx=[0])
plt.show()

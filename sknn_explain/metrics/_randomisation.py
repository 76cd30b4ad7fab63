"""Model parameter randomisation test, MPRT (Adebayo et al., 2018).

The layers of a *private copy* of the model are re-initialised one after the other from the
output layer down (cascading); after each step the attributions are recomputed and compared
with those of the trained model. Attributions that stay similar do not depend on what the
model learned. The user's model is never touched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from scipy.ndimage import uniform_filter
from scipy.stats import rankdata
from sklearn.utils import check_random_state

from ._checks import to_numpy

#: ``explain_fn(model, X) -> attributions (n, ...)`` for a (possibly randomised) model
ModelExplainFn = Callable[[torch.nn.Module, object], object]
SIMILARITIES = ("spearman", "ssim")


def spearman_similarity(a: object, b: object, *, absolute: bool = True) -> np.ndarray:
    """Spearman rank correlation per sample of two ``(n, ...)`` attribution arrays.

    Ranks of ``|a|`` and ``|b|`` (``absolute=True``, as Adebayo et al.) with ties averaged;
    NaN for a sample where either is constant.

    Parameters
    ----------
    a, b : array-like of shape (n_samples, ...)
        Two attributions of the same samples.
    absolute : bool, default=True
        Rank the absolute values.

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import spearman_similarity
    >>> spearman_similarity(np.array([[1.0, 2.0, 3.0]]), np.array([[10.0, 20.0, 30.0]]))
    array([1.])
    """
    a, b = to_numpy(a), to_numpy(b)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"a and b must have the same shape (n, ...), got {a.shape}, {b.shape}")
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    if absolute:
        a, b = np.abs(a), np.abs(b)
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


def ssim_similarity(a: object, b: object, *, win_size: int = 7) -> np.ndarray:
    """Structural similarity per sample of two ``(n, H, W)`` maps (Wang et al., 2004).

    The algorithm of ``skimage.metrics.structural_similarity`` with its defaults (uniform
    ``win_size`` window, sample covariance, ``K1 = 0.01``, ``K2 = 0.03``, borders cropped),
    ``data_range`` the joint range of the two maps (as Quantus). Maps with channels
    ``(n, C, H, W)`` are summed over channels first.

    Parameters
    ----------
    a, b : array-like of shape (n_samples, H, W) or (n_samples, C, H, W)
    win_size : int, default=7
        Side of the square window (odd; the maps must be at least this large).

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> from sknn_explain.metrics import ssim_similarity
    >>> a = np.random.default_rng(0).random((1, 8, 8))
    >>> ssim_similarity(a, a).round(6)
    array([1.])
    """
    a, b = to_numpy(a), to_numpy(b)
    if a.shape != b.shape or a.ndim not in (3, 4):
        raise ValueError(f"SSIM needs two (n, H, W) or (n, C, H, W) maps, got {a.shape}, "
                         f"{b.shape}")
    if a.ndim == 4:
        a, b = a.sum(axis=1), b.sum(axis=1)
    if min(a.shape[1:]) < win_size:
        raise ValueError(f"SSIM needs maps of at least {win_size} x {win_size}, got {a.shape[1:]}")
    out = np.empty(a.shape[0])
    pad = (win_size - 1) // 2
    cov_norm = win_size**2 / (win_size**2 - 1)
    for i, (x, y) in enumerate(zip(a, b)):
        data_range = float(max(x.max(), y.max()) - min(x.min(), y.min()))
        c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
        ux, uy = uniform_filter(x, win_size), uniform_filter(y, win_size)
        vx = cov_norm * (uniform_filter(x * x, win_size) - ux * ux)
        vy = cov_norm * (uniform_filter(y * y, win_size) - uy * uy)
        vxy = cov_norm * (uniform_filter(x * y, win_size) - ux * uy)
        num = (2 * ux * uy + c1) * (2 * vxy + c2)
        den = (ux**2 + uy**2 + c1) * (vx + vy + c2)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = num / den
        out[i] = s[pad:s.shape[0] - pad, pad:s.shape[1] - pad].mean()
    return out


def randomisable_layers(model: torch.nn.Module) -> list[str]:
    """Names of the modules MPRT re-initialises, output side first.

    Modules with a ``reset_parameters`` method and parameters of their own, in reverse
    order of ``model.named_modules()`` (the definition order, which for sequential models is
    the order of the forward pass).

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    list of str

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.metrics import randomisable_layers
    >>> randomisable_layers(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(),
    ...                                         torch.nn.Linear(3, 1)))
    ['2', '0']
    """
    return [
        name for name, mod in reversed(list(model.named_modules()))
        if hasattr(mod, "reset_parameters") and any(True for _ in mod.parameters(recurse=False))
    ]


def model_parameter_randomisation(
    model: torch.nn.Module,
    X: object,
    explain_fn: ModelExplainFn,
    *,
    layers: list[str] | None = None,
    similarity: str | tuple[str, ...] = "spearman",
    absolute: bool = True,
    random_state: object = None,
) -> pd.DataFrame:
    """Cascading model parameter randomisation (Adebayo et al., 2018), per layer and sample.

    A deep copy of ``model`` is made; its layers are re-initialised (their own
    ``reset_parameters``, seeded) one after the other from the output side, cumulatively,
    and after each layer the attributions ``explain_fn(copy, X)`` are compared with
    ``explain_fn(model_copy_before_randomisation, X)``. The user's model (parameters,
    training mode, hooks) and torch's global random state are left unchanged.

    Parameters
    ----------
    model : torch.nn.Module
    X : array-like or tensor
        Passed to ``explain_fn`` unchanged.
    explain_fn : callable
        ``explain_fn(model, X) -> (n, ...)`` attributions, e.g.
        ``lambda m, X: Gradient().fit(m).explain(X, output_idx=[0]).values[..., 0]``.
    layers : list of str, optional
        Module names to randomise, in this order; default :func:`randomisable_layers`.
    similarity : {"spearman", "ssim"} or tuple of them, default="spearman"
        Spearman rank correlation of ``|a|`` (:func:`spearman_similarity`) and / or SSIM of
        the channel-summed maps (:func:`ssim_similarity`, images only).
    absolute : bool, default=True
        Spearman on absolute values.
    random_state : int, RandomState instance or None
        Seed of the re-initialisation.

    Returns
    -------
    pandas.DataFrame
        Tidy, one row per (layer step, sample, similarity): ``step`` (1 = output layer
        randomised), ``layer`` (the module randomised last), ``sample``, ``similarity``,
        ``value``. High similarity at late steps fails the sanity check.

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.metrics import model_parameter_randomisation
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> def grad(m, X):
    ...     X = torch.as_tensor(X, dtype=torch.float32).requires_grad_(True)
    ...     m(X).sum().backward()
    ...     return X.grad.numpy()
    >>> df = model_parameter_randomisation(net, torch.randn(5, 4), grad, random_state=0)
    >>> df["layer"].unique().tolist()
    ['2', '0']
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    sims = (similarity,) if isinstance(similarity, str) else tuple(similarity)
    bad = [s for s in sims if s not in SIMILARITIES]
    if bad or not sims:
        raise ValueError(f"similarity must be one of {SIMILARITIES} or a tuple of them, got "
                         f"{similarity!r}")
    private = copy.deepcopy(model)
    modules = dict(private.named_modules())
    names = randomisable_layers(private) if layers is None else list(layers)
    unknown = [n for n in names if n not in modules or not hasattr(modules[n],
                                                                     "reset_parameters")]
    if unknown:
        raise ValueError(f"layers {unknown} are not modules of the model with reset_parameters")
    if not names:
        raise ValueError("the model has no layer with parameters and reset_parameters")
    seed = check_random_state(random_state).randint(0, 2**31 - 1)
    original = to_numpy(explain_fn(private, X))
    frames = []
    for step, name in enumerate(names, start=1):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + step)
            modules[name].reset_parameters()
        randomised = to_numpy(explain_fn(private, X))
        if randomised.shape != original.shape:
            raise ValueError(f"explain_fn returned shape {randomised.shape} after randomising "
                             f"{name!r}, {original.shape} before")
        for sim in sims:
            vals = (spearman_similarity(original, randomised, absolute=absolute)
                    if sim == "spearman" else ssim_similarity(original, randomised))
            frames.append(pd.DataFrame({
                "step": step, "layer": name, "sample": np.arange(len(vals)), "similarity": sim,
                "value": vals,
            }))
    return pd.concat(frames, ignore_index=True)

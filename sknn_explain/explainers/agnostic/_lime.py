"""LIME (Ribeiro et al., 2016) for any model, natively (no ``lime`` package)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from ..._data import InputBatch
from ..._random import random_streams
from ..._validation import NON_NEGATIVE_REAL, POSITIVE_INT, Interval, StrOptions
from ._coalitions import lime_perturbations
from ._estimator import AGNOSTIC_DOC, ATTRIBUTES_DOC, AgnosticExplainer, warn_if_long
from ._masking import masked_outputs, nonfinite_perturbations, spread
from ._solvers import weighted_ridge

__all__ = ["LIME"]

_SELECTIONS = ("none", "auto", "forward", "highest_weights")
_BASELINES = ("mean", "sample")


class LIME(AgnosticExplainer):
    __doc__ = f"""LIME (Ribeiro et al., 2016) for any model, natively (no ``lime`` package).

    Each sample is explained by a weighted ridge regression of the model output on binary
    interpretable features ``z`` (columns or segments on / off) over ``n_samples``
    perturbations. Off features take the mean of ``X_ref`` (``baseline="mean"``) or the
    values of one random ``X_ref`` row per perturbation (``baseline="sample"``). The
    attribution of a feature is its surrogate coefficient, i.e. the local effect of
    switching it from the baseline to its value: for a linear model ``f(x) = w.x + b`` and
    ``baseline="mean"`` it is exactly ``w_j (x_j - mean(X_ref)_j)`` (up to the tiny ridge
    penalty). LIME has no decomposition goal.

    Parameters
    ----------
    n_samples : int, default=1000
        Perturbations per sample (the first is the sample itself).
        ``n_samples`` is captum's and shap's name for the model evaluations per sample of
        a perturbation method; the gradient family's ``n`` (innsight's name) counts points
        on a gradient path instead.
    kernel_width : float, default=0.25
        Width of the exponential kernel on the cosine distance to the sample (lime's image
        default): weight ``exp(-d^2 / (2 kernel_width^2))``, ``d = 1 - sqrt(on / M)``.
    feature_selection : {{"none", "forward", "highest_weights", "auto"}}, default="none"
        "none": all features. "forward": greedy forward selection of ``n_features`` by
        weighted R^2; "highest_weights": the ``n_features`` largest coefficients of the
        full fit, refitted; "auto": forward if ``n_features <= 6`` else highest_weights.
        Unselected features get 0. Selection is done per sample and output.
    n_features : int, default=10
        Number of features kept by feature selection.
    alpha : float, default=1e-3
        Ridge penalty of the surrogate, as ``sklearn.linear_model.Ridge(alpha)`` with the
        kernel values as sample weights (lime uses 1.0, which visibly shrinks coefficients).
    baseline : {{"mean", "sample"}}, default="mean"
        Value of switched-off features (see above). A DataFrame with text / category
        columns or missing values in front of a Pipeline needs "sample" ("mean" raises).
    {AGNOSTIC_DOC}
    Attributes
    ----------
    reference_ : list of Tensor
        Mean of ``X_ref`` per input (``baseline="mean"``).
    data_ref_ : list of Tensor
        ``X_ref`` (``baseline="sample"``).
    {ATTRIBUTES_DOC}

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from sknn_explain import LIME
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> lin = LinearRegression().fit(X, y)
    >>> res = LIME(n_samples=300, random_state=0).fit(lin, X).explain(X[:2])
    >>> expected = lin.coef_ * (X[:2] - X.mean(0))
    >>> bool(np.allclose(res.values[..., 0], expected, atol=1e-3))
    True
    """

    method_name = "LIME"
    _parameter_constraints = {
        **AgnosticExplainer._parameter_constraints,
        "n_samples": [Interval(Integral, 2, None, closed="left")],
        "kernel_width": [Interval(Real, 0, None, closed="neither")],
        "feature_selection": [StrOptions(set(_SELECTIONS))],
        "n_features": POSITIVE_INT,
        "alpha": NON_NEGATIVE_REAL,
        "baseline": [StrOptions(set(_BASELINES))],
    }

    def __init__(
        self, n_samples=1000, kernel_width=0.25, feature_selection="none", n_features=10,
        alpha=1e-3, baseline="mean", segment_size=None, segments=None, random_state=None, *,
        response_method="auto", ignore_last_act=False, channels_first=True, dtype="double",
        device="cpu", batch_size=None, verbose=False,
    ):
        super().__init__(
            ignore_last_act=ignore_last_act, channels_first=channels_first, dtype=dtype,
            device=device, batch_size=batch_size, verbose=verbose,
        )
        self.n_samples = n_samples
        self.kernel_width = kernel_width
        self.feature_selection = feature_selection
        self.n_features = n_features
        self.alpha = alpha
        self.baseline = baseline
        self.segment_size = segment_size
        self.segments = segments
        self.random_state = random_state
        self.response_method = response_method

    def _fit_reference(self, ref: InputBatch) -> None:
        self._fit_features(ref)
        data = ref.to_tensors(self.dtype_, self.device_)
        if self.baseline == "mean" and getattr(self.model_, "codec", None) is not None:
            raise ValueError(
                "LIME(baseline='mean') replaces switched-off features by the mean of X_ref, "
                "which does not exist for the text / category columns or missing values of "
                "this DataFrame; use baseline='sample' (values of random X_ref rows)"
            )
        if self.baseline == "mean" and any(d is not None for d in self._native_dtypes() or []):
            raise ValueError(
                "LIME(baseline='mean') replaces switched-off features by the mean of X_ref, "
                "which is no valid input for a model that takes bool / integer inputs; use "
                "baseline='sample' (values of random X_ref rows)"
            )
        if self.baseline == "mean":
            self.reference_ = [d.mean(0, keepdim=True) for d in data]
        else:
            self.data_ref_ = data

    def _attribute(self, xs, selection, batch_size):
        self._check_native_values(xs)
        fmap, m = self.feature_map_, self.n_segments_
        n = xs[0].shape[0]
        gen_z, gen_ref = random_streams(self.random_state, 2)
        z, w = lime_perturbations(m, int(self.n_samples), float(self.kernel_width), gen_z)
        if self.baseline == "mean":
            bases, base_index = self.reference_, None
        else:
            bases = self.data_ref_
            base_index = gen_ref.integers(0, bases[0].shape[0], size=len(z))
        warn_if_long(n * len(z), "LIME", f"{n} rows x {len(z)} perturbations", self.verbose)
        v = masked_outputs(
            self.model_, xs, fmap, z, bases, selection, batch_size, base_index=base_index,
            verbose=self.verbose, desc="LIME",
        )
        preds = v[:, 0, :].to(xs[0].dtype)  # perturbation 0 is the sample itself
        k = v.shape[2]
        v = v.cpu().numpy()
        bad = nonfinite_perturbations(v, v[:, 0, :], selection)
        v = np.where(bad[:, None, :], 0.0, v)  # solved apart, then NaN
        y = v.transpose(1, 0, 2).reshape(len(z), n * k)
        coef = weighted_ridge(
            z, w, y, alpha=float(self.alpha), feature_selection=self.feature_selection,
            n_features=int(self.n_features),
        )
        phi = coef.reshape(m, n, k).transpose(1, 0, 2)
        phi[np.broadcast_to(bad[:, None, :], phi.shape)] = np.nan
        values = spread(phi, fmap, [tuple(x.shape[1:]) for x in xs], xs[0])
        return values, preds, None

"""The network :class:`~sknn_explain.transformer.AttributionTransformer` trains by default."""

from __future__ import annotations

import torch
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

__all__ = ["TabularMLP", "default_estimator"]


class TabularMLP(nn.Module):
    """One-hidden-layer ReLU network ``Linear -> ReLU -> Linear`` for tabular data.

    A ready-made skorch ``module`` for tabular data
    (``NeuralNetClassifier(TabularMLP, module__n_features=p, module__n_outputs=k)``).

    Parameters
    ----------
    n_features : int
        Input width.
    n_outputs : int
        Output width (number of classes, or regression targets).
    hidden : int, default=16
        Hidden units.

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.transformer import TabularMLP
    >>> TabularMLP(4, 3)(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(self, n_features: int, n_outputs: int, hidden: int = 16) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_features, hidden)
        self.act = nn.ReLU()
        self.out = nn.Linear(hidden, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output.

        Parameters
        ----------
        x : torch.Tensor of shape (n, n_features)
            A batch of samples.

        Returns
        -------
        torch.Tensor of shape (n, n_outputs)
            Logits (classification) or predictions (regression).
        """
        return self.out(self.act(self.hidden(x)))


def default_estimator(classification: bool, random_state: object = None) -> Pipeline:
    """The small network :class:`AttributionTransformer` trains when ``estimator=None``.

    ``make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,),
    solver="lbfgs", alpha=0.01, max_iter=500))`` (``MLPRegressor`` for regression):
    scikit-learn's own MLP behind a scaler, so raw features can be passed and the
    attributions refer to them. L-BFGS converges in a few dozen iterations on small
    tabular data. Meant for quick starts and tests; pass your own estimator for real work.

    Parameters
    ----------
    classification : bool
        Classifier (True) or regressor.
    random_state : int, RandomState instance or None
        The MLP's ``random_state``.

    Returns
    -------
    Pipeline
        Unfitted.

    Examples
    --------
    >>> from sknn_explain.transformer import default_estimator
    >>> default_estimator(True, random_state=0)[-1].get_params()["solver"]
    'lbfgs'
    """
    mlp = MLPClassifier if classification else MLPRegressor
    return make_pipeline(
        StandardScaler(),
        mlp(hidden_layer_sizes=(16,), solver="lbfgs", alpha=0.01, max_iter=500,
            random_state=random_state),
    )

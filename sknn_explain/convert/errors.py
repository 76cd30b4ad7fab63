"""Errors raised while converting a model to a :class:`~sknn_explain.convert.Graph`."""

from __future__ import annotations

__all__ = ["BatchStatisticsError", "ConversionError", "ExampleInputsError", "UnsupportedLayerError",
           "VerificationError"]

GRADIENT_HINT = (
    "The gradient methods (Gradient, SmoothGrad, IntegratedGradients, ExpectedGradients) still "
    "work on this model without conversion."
)


class ConversionError(ValueError):
    """The model could not be converted to a layer graph.

    Attributes
    ----------
    ends_with_activation : bool or None
        Whether the model's first output is produced by an activation, when the converter
        could tell before it failed (None: unknown, e.g. ``torch.fx`` could not trace the
        model). The plain-copy fallback uses it to warn that ``ignore_last_act`` cannot be
        honoured.

    Examples
    --------
    >>> import torch
    >>> from sknn_explain import ConversionError, convert
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LSTM(3, 3))
    >>> try:
    ...     convert(model, input_shape=(2,))
    ... except ConversionError as err:
    ...     print(type(err).__name__, isinstance(err, ValueError))
    UnsupportedLayerError True
    """

    ends_with_activation: bool | None = None

    def with_ends_with_activation(self, value: bool | None) -> ConversionError:
        """This error, recording what the converter knew about the last activation.

        Parameters
        ----------
        value : bool or None
            Whether the model's first output is produced by an activation (None: unknown).

        Returns
        -------
        ConversionError
            ``self``, with ``ends_with_activation`` set (for ``raise err.with_...(v)``).
        """
        self.ends_with_activation = value
        return self


class ExampleInputsError(ConversionError):
    """The model failed on the example inputs the graph is built from.

    The input shape inferred from the model (e.g. from its first ``nn.Linear``) is wrong, so
    the conversion waits for real data.

    Examples
    --------
    >>> from sknn_explain.convert import ConversionError, ExampleInputsError
    >>> issubclass(ExampleInputsError, ConversionError)
    True
    """


class UnsupportedLayerError(ConversionError):
    """A module, function or pipeline step has no graph layer.

    Parameters
    ----------
    what : str
        The offending object, e.g. ``"nn.LSTM"``.
    where : str
        Its position, e.g. ``"'encoder.rnn'"``.
    reason : str, default=""
        Why it cannot be converted (added to the message).

    Attributes
    ----------
    what : str
        The offending object, e.g. ``"nn.LSTM"``.
    where : str
        Its position, e.g. ``"'encoder.rnn'"``.

    Examples
    --------
    >>> import torch
    >>> from sknn_explain import UnsupportedLayerError, convert
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LSTM(3, 3))
    >>> try:
    ...     convert(model, input_shape=(2,))
    ... except UnsupportedLayerError as err:
    ...     print(err.what, err.where)
    nn.LSTM '1'
    """

    hint = GRADIENT_HINT

    def __init__(self, what: str, where: str, reason: str = "") -> None:
        self.what, self.where = what, where
        msg = f"cannot convert {what} at {where}"
        if reason:
            msg += f": {reason}"
        super().__init__(f"{msg}. {self.hint}")


class BatchStatisticsError(UnsupportedLayerError):
    """A layer normalises with statistics of the current batch.

    For example ``BatchNorm1d(track_running_stats=False)``: the model is not a per-sample
    function, so no method can explain one sample independently of the others; the gradient
    methods refuse it too.

    Parameters
    ----------
    what, where, reason
        As :class:`~sknn_explain.UnsupportedLayerError`.

    Examples
    --------
    >>> import torch
    >>> from sknn_explain import convert
    >>> from sknn_explain.convert import BatchStatisticsError
    >>> bn = torch.nn.BatchNorm1d(3, track_running_stats=False)
    >>> try:
    ...     convert(torch.nn.Sequential(torch.nn.Linear(2, 3), bn))
    ... except BatchStatisticsError as err:
    ...     print(err.what)
    nn.BatchNorm1d
    """

    hint = (
        "Its output for one sample depends on the other samples in the batch, so per-sample "
        "attributions are not defined (no explainer falls back to the plain model for it): "
        "use running statistics (track_running_stats=True, trained, in eval mode) or a "
        "per-sample normalisation"
    )


class VerificationError(ConversionError):
    """The converted graph does not reproduce the original model's output.

    Raised by the conversion's check (``check=True``); the message gives the largest
    difference and the tolerance.

    Examples
    --------
    >>> from sknn_explain.convert import ConversionError, VerificationError
    >>> issubclass(VerificationError, ConversionError)
    True
    """

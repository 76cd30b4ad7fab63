"""Errors raised while converting a model to a :class:`~sknn_explain.convert.Graph`."""

from __future__ import annotations

__all__ = ["ConversionError", "UnsupportedLayerError", "VerificationError"]

GRADIENT_HINT = (
    "The gradient methods (Gradient, SmoothGrad, IntegratedGradients, ExpectedGradients) still "
    "work on this model without conversion."
)


class ConversionError(ValueError):
    """The model could not be converted to a layer graph."""


class UnsupportedLayerError(ConversionError):
    """A module, function or pipeline step has no graph layer.

    Attributes
    ----------
    what : str
        The offending object, e.g. ``"nn.LSTM"``.
    where : str
        Its position, e.g. ``"'encoder.rnn'"``.
    """

    def __init__(self, what: str, where: str, reason: str = "") -> None:
        self.what, self.where = what, where
        msg = f"cannot convert {what} at {where}"
        if reason:
            msg += f": {reason}"
        super().__init__(f"{msg}. {GRADIENT_HINT}")


class VerificationError(ConversionError):
    """The converted graph does not reproduce the original model's output."""

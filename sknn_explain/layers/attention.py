"""Softmax over the last axis of attention scores, with constant masks or a key padding mask
computed from integer ids."""

from __future__ import annotations

import torch

from .base import Layer

__all__ = ["IdEqual", "MaskedSoftmax", "PaddedSoftmax"]


class MaskedSoftmax(Layer):
    """``softmax(x + add)`` over the last axis where ``keep``, probability 0 elsewhere.

    Attention masks of ``nn.MultiheadAttention`` / ``F.scaled_dot_product_attention``:
    boolean masks, ``-inf`` entries of float masks and causal masks become ``keep = False``;
    finite float entries become ``add``. Both broadcast against one sample's scores (no
    batch axis), so a mask never differs between samples. The masked scores themselves stay
    finite in the graph (``-inf`` never enters a difference or a product of the
    propagation rules).

    Parameters
    ----------
    add : Tensor
        Additive constant, broadcast against the per-sample scores.
    keep : Tensor of bool
        Which scores take part, broadcast against the per-sample scores.
    """

    def __init__(self, add: torch.Tensor, keep: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("add", self._buffer(add))
        self.register_buffer("keep", self._buffer(keep.to(torch.bool)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.where(self.keep, x + self.add, torch.full_like(x, float("-inf")))
        return torch.softmax(z, dim=-1)

    def extra_repr(self) -> str:
        return f"mask={tuple(self.keep.shape)}"


class IdEqual(Layer):
    """``ids == value``: the key padding mask of a text model, computed from its ids.

    Not differentiable (a comparison of integer ids); its only consumer is a
    :class:`PaddedSoftmax`, and every propagation method passes nothing back through it.

    Parameters
    ----------
    value : int
        The id that marks padding (``padding_idx``).

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.layers import IdEqual
    >>> IdEqual(0)(torch.tensor([[3.0, 5.0, 0.0]]))
    tensor([[False, False,  True]])
    """

    def __init__(self, value: int) -> None:
        super().__init__()
        self.value = int(value)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return ids == self.value

    def extra_repr(self) -> str:
        return f"value={self.value}"


class PaddedSoftmax(MaskedSoftmax):
    """:class:`MaskedSoftmax` with a per-sample key padding mask as its second input.

    ``forward(x, pad)``: scores ``x`` of shape ``(n, ..., L, S)`` and ``pad`` ``(n, S)``
    (True: the key is padding and takes no part, as ``nn.MultiheadAttention``'s
    ``key_padding_mask``), on top of the constant ``keep`` / ``add`` masks.

    Parameters
    ----------
    add : Tensor
        Additive constant, broadcast against the per-sample scores.
    keep : Tensor of bool
        Which scores take part, broadcast against the per-sample scores.

    Examples
    --------
    >>> import torch
    >>> from sknn_explain.layers import PaddedSoftmax
    >>> layer = PaddedSoftmax(torch.zeros(1, 3), torch.ones(1, 3, dtype=torch.bool))
    >>> layer(torch.zeros(1, 1, 3), torch.tensor([[False, False, True]]))
    tensor([[[0.5000, 0.5000, 0.0000]]])
    """

    n_inputs = 2

    def keep_of(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Which scores of ``x`` take part, per sample (``(n, ..., L, S)``, bool)."""
        pad = pad.to(torch.bool).reshape(pad.shape[0], *[1] * (x.ndim - 2), pad.shape[-1])
        return self.keep & ~pad

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        z = torch.where(self.keep_of(x, pad), x + self.add, torch.full_like(x, float("-inf")))
        return torch.softmax(z, dim=-1)

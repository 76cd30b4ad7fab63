"""Rules of the layers that combine an activation with a constant (issue #12).

* :class:`~sknn_explain.layers.ConstantConcat` (a CLS token concatenated with the tokens):
  every method slices its state and passes each activation its slice. The state on the
  constant block is dropped: for LRP that relevance is absorbed (like the relevance of a
  bias or of constant padding), so conservation holds only for the relevance that reaches
  activations; for DeepLift the constant has zero difference from the reference, so the
  slicing is exact (summation-to-delta is kept); Connection Weights and the gradient are
  sliced the same way.
* :class:`~sknn_explain.layers.BroadcastAffine` (a feature tokenizer ``x[..., None] * W + b``):
  a linear map with a bias. LRP applies the rule of ``"Dense"`` layers (the z-rules, the
  bias's share absorbed as for a Dense layer), DeepLift and Connection Weights its exact
  transpose (sum over the broadcast axes of ``scale * state``).
"""

from __future__ import annotations

import torch

from ..convert.graph import Node
from ..layers import BroadcastAffine, ConstantConcat
from ..rules.modifiers import KEEP, Modifier
from ._ops import LinearOp

__all__ = ["BroadcastAffineOp", "constant_concat_backward"]


class BroadcastAffineOp(LinearOp):
    """The linear form of a :class:`~sknn_explain.layers.BroadcastAffine` layer."""

    def __init__(self, layer: BroadcastAffine, in_shape: tuple[int, ...]) -> None:
        self.layer, self.in_shape = layer, in_shape

    def fwd(self, x: torch.Tensor, weights: Modifier = KEEP,
            bias: Modifier | None = None) -> torch.Tensor:
        la = self.layer
        out = la.expand(x) * weights(la.scale)
        return out if bias is None else out + bias(la.shift)

    def bwd(self, g: torch.Tensor, weights: Modifier = KEEP) -> torch.Tensor:
        return self.layer.reduce(g * weights(self.layer.scale), lead_axes=2)


def constant_concat_backward(node: Node, g: torch.Tensor,
                             values: dict[str, torch.Tensor]) -> list[torch.Tensor] | None:
    """The slices of ``g`` ``(K, n, *out)`` on a ConstantConcat's activation inputs (the
    constant blocks' slices are dropped), or None for another layer."""
    layer = node.layer
    if not isinstance(layer, ConstantConcat):
        return None
    data = iter(node.inputs)
    consts = iter(layer.constants())
    sizes, keep = [], []
    for s in layer.slots:
        if s is None:
            sizes.append(values[next(data)].shape[layer.dim])
            keep.append(True)
        else:
            sizes.append(next(consts).shape[layer.dim - 1])
            keep.append(False)
    pieces = torch.split(g, sizes, dim=layer.dim + 1)
    return [p for p, k in zip(pieces, keep) if k]

"""Embedding lookup as the first layer of a graph: integer token / category ids in."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Layer

__all__ = ["Embedding"]


class Embedding(Layer):
    """``weight[ids]``: the rows of ``weight`` selected by integer ids.

    The propagation methods attribute to the embedding *output* and sum over the embedding
    dimension, so each id (token, category column) gets one value: the same convention as
    the gradient family's ``embeddings="auto"``
    (:mod:`sknn_explain.explainers.embedding`). Ids arrive in the explainer's floating
    dtype; they are checked to be whole numbers within ``[0, num_embeddings)``.

    Parameters
    ----------
    weight : Tensor, shape (num_embeddings, embedding_dim)
    name : str, default="nn.Embedding"
        How error messages name the layer (module path).
    """

    def __init__(self, weight: torch.Tensor, name: str = "nn.Embedding") -> None:
        super().__init__()
        self.register_buffer("weight", self._buffer(weight))
        self.name = str(name)

    def ids(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as int64 ids, validated.

        Raises
        ------
        ValueError
            When an id is not a whole number or out of range.
        """
        n = self.weight.shape[0]
        if x.requires_grad:
            raise TypeError(
                f"{self.name} reads integer ids: gradients with respect to ids are not "
                "defined, so gradient-based methods need float inputs here. Attribute per id "
                "through the embedding outputs (embeddings='auto', the default), or use "
                "KernelSHAP or LIME fitted on integer X_ref"
            )
        if x.is_floating_point():
            bad = x != torch.round(x)
            if bool(bad.any()):
                v = float(x[bad][0])
                raise ValueError(
                    f"{self.name} takes integer ids, got {v!r}. Ids must be whole numbers; a "
                    "DeepLift reference of several X_ref rows is their mean: pass one row of "
                    "baseline ids (e.g. the padding index) as X_ref"
                )
        elif x.is_complex() or x.dtype == torch.bool:
            raise ValueError(f"{self.name} takes integer ids, got dtype {x.dtype}")
        ids = x.long()
        out = (ids < 0) | (ids >= n)
        if bool(out.any()):
            raise ValueError(
                f"id {int(ids[out][0])} is out of range for {self.name} with {n} embeddings "
                f"(valid ids: 0..{n - 1})"
            )
        return ids

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.embedding(self.ids(x), self.weight)

    def extra_repr(self) -> str:
        n, d = self.weight.shape
        return f"{n}, {d}"

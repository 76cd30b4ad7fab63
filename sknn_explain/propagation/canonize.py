"""BatchNorm merging (moved to :mod:`sknn_explain.convert.canonize`, a graph transformation
that the model adapter uses too); re-exported here for the propagation methods."""

from ..convert.canonize import merge_batchnorm

__all__ = ["merge_batchnorm"]

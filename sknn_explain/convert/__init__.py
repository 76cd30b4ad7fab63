"""Model conversion: torch / skorch / scikit-learn / dict models -> one layer :class:`Graph`."""

from .graph import Graph, Node, input_name

__all__ = ["Graph", "Node", "input_name"]

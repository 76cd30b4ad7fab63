"""torch ``nn.Module`` s of any architecture -> :class:`~sknn_explain.convert.Graph`, via
``torch.fx``.

The module (a private, eval-mode copy) is traced symbolically with ``torch.fx``; standard
``torch.nn`` modules stay leaves, user modules and ``nn.Sequential`` are traced through, so
residual connections (``x + f(x)``), ``torch.cat`` branches, several inputs and tuple outputs
all appear as plain data flow. The traced program is then run once on an example batch to
learn every value's shape (needed for reshapes, broadcasting and negative axes), and every
operation on input-dependent tensors is mapped to a graph layer:

========================================  ==================================================
torch                                     graph layer
========================================  ==================================================
``nn.Linear``, ``F.linear``               :class:`~sknn_explain.layers.Dense`
``nn.Conv1d/2d``, ``F.conv1d/2d``         :class:`~sknn_explain.layers.Conv` (non-zero or
                                          asymmetric padding: a :class:`~sknn_explain.
                                          layers.Pad` node first)
``nn.MaxPool1d/2d``, ``nn.AvgPool1d/2d``  :class:`~sknn_explain.layers.MaxPool` /
                                          :class:`~sknn_explain.layers.AvgPool`
adaptive pools, ``x.mean((2, 3))``        ``AdaptiveAvgPool`` / ``AdaptiveMaxPool``
``nn.BatchNorm1d/2d`` (eval statistics)   :class:`~sknn_explain.layers.BatchNorm`
padding modules, ``F.pad``                :class:`~sknn_explain.layers.Pad`
activations (modules, ``F.*``, methods)   :class:`~sknn_explain.layers.Activation`
``+`` / ``-`` of two tensors              :class:`~sknn_explain.layers.Add`
``x * c``, ``x + c``, ``x / c``, ``-x``   :class:`~sknn_explain.layers.ElementwiseAffine`
(``c`` scalar or per-channel constant)
``torch.cat``                             :class:`~sknn_explain.layers.Concat`
flatten / view / reshape / (un)squeeze    :class:`~sknn_explain.layers.Flatten` /
                                          :class:`~sknn_explain.layers.Reshape`
``nn.Dropout*``, ``nn.Identity``,         skipped
``.contiguous()``, ``F.dropout``
========================================  ==================================================

Anything else raises :class:`~sknn_explain.convert.UnsupportedLayerError` naming the module
or function and its position, e.g. ``nn.LSTM at 'encoder.rnn'``.

The package, top to bottom: :mod:`.source` (:class:`TorchSource`: copy, trace, check, build,
reference) uses :mod:`.tracing` (the fx trace under a process-wide lock), :mod:`.shapes`
(recorded values, input shapes the model implies), :mod:`.walker` (walks the traced program
and emits graph nodes) and :mod:`.handlers` (one handler per module class, function and
tensor method); :mod:`.describe` names an operation and its position in messages.
"""

from .source import TorchSource
from .tracing import trace_module

__all__ = ["TorchSource", "trace_module"]

"""Modified-backward gradients: Guided Backprop and Deconvolution (captum semantics).

Both replace the backward pass of every ReLU of a private copy of the model (the
converted graph's ``relu`` activations, or the ``nn.ReLU`` modules of a model that could not
be converted); the forward pass, hence the predictions, are unchanged:

* GuidedBackprop (Springenberg et al., 2015): ``grad_in = relu(grad_out) * (x > 0)`` --
  only positive gradients, and only where the forward input was positive.
* Deconvolution (Zeiler & Fergus, 2014): ``grad_in = relu(grad_out)``, the forward input
  ignored.

As in captum, other activations keep their ordinary gradient. All selected outputs are
explained in one batched backward pass, as the gradient family does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._batching import root_module
from .._validation import SPACE
from ..layers.activation import Activation
from .base import Explainer
from .gradient import _COMMON_DOC, _rows, gradient_attribution

__all__ = ["Deconvolution", "GuidedBackprop", "ModifiedReLUForward"]

_NO_RELU = (
    "{method} modifies the backward pass of ReLU activations, and the model has none "
    "(neither a converted 'relu' activation nor an nn.ReLU module; a functional relu inside "
    "an unconvertible module cannot be reached): its result would be the plain gradient"
)


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        out = x.clamp(min=0)
        # the float mask ``out > 0`` once per forward, written straight into a float tensor
        # (a bool mask's ``.to`` is slow on CPU): the looped strategy runs one backward pass
        # per output through it
        ctx.save_for_backward(torch.gt(out, 0, out=torch.empty_like(out)))
        return out

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad.clamp(min=0) * mask


class _DeconvReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0)


def _is_relu(module: nn.Module) -> bool:
    return isinstance(module, nn.ReLU) or (
        isinstance(module, Activation) and module.name == "relu")


class ModifiedReLUForward:
    """``forward(list[Tensor]) -> list[Tensor]`` of ``model`` whose ReLUs backpropagate
    with the ``mode`` rule (``"guided"`` or ``"deconv"``).

    For the duration of one call only, the ReLU modules of the (private) model run the
    modified ReLU instead of their own forward, restored afterwards, also when the call
    raises. (A forward hook on the module ran the ReLU twice and, on an in-place
    ``nn.ReLU``, chained the modified backward with the ordinary ReLU's: Deconvolution
    then masked the gradient like Guided Backprop.) An in-place ``nn.ReLU`` runs out of
    place during the call.
    """

    def __init__(self, model: object, mode: str, method: str) -> None:
        self.model = model
        self.fn = {"guided": _GuidedReLU, "deconv": _DeconvReLU}[mode]
        self.method = method

    @property
    def converted(self) -> bool:
        """Whether the model runs the converted graph (whose layers never ``view`` an
        activation): :func:`~sknn_explain._batching.gradient_strategy` then runs images in
        channels-last memory format, as for the plain gradient."""
        return bool(getattr(self.model, "converted", False))

    def relu_modules(self, xs: Sequence[torch.Tensor]) -> list[nn.Module]:
        if getattr(self.model, "pending", False):
            with torch.no_grad():
                self.model.ensure([x.detach() for x in xs])
        root = root_module(self.model)
        mods = [] if root is None else [m for m in root.modules() if _is_relu(m)]
        if not mods:
            raise ValueError(_NO_RELU.format(method=self.method))
        return mods

    def __call__(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        swapped = []
        try:
            for m in self.relu_modules(xs):
                m.forward = self.fn.apply  # instead of the module's own ReLU, for this call
                swapped.append(m)
            return self.model(xs)
        finally:
            for m in swapped:
                del m.forward


class _ModifiedBackward(Explainer):
    _mode = "guided"
    _parameter_constraints = {**Explainer._parameter_constraints, "space": SPACE}

    def __init__(
        self, *, ignore_last_act=True, channels_first=True, dtype="float", device="cpu",
        batch_size=None, verbose=False, space="network",
    ):
        super().__init__(
            ignore_last_act=ignore_last_act, channels_first=channels_first, dtype=dtype,
            device=device, batch_size=batch_size, verbose=verbose,
        )
        self.space = space

    def _attribute(self, xs, selection, batch_size):
        forward = ModifiedReLUForward(self.model_, self._mode, self.method_name)
        forward.relu_modules(xs)  # the clear error before any work
        return gradient_attribution(
            forward, xs, selection, batch_size=_rows(self, xs, selection, batch_size),
            verbose=self.verbose,
        )


_DOC_PARAMS = _COMMON_DOC.split("    embeddings :")[0]


class GuidedBackprop(_ModifiedBackward):
    __doc__ = f"""Guided Backpropagation (Springenberg et al., 2015), as captum's.

    The gradient of each selected output, with every ReLU backpropagating only positive
    gradients and only where its forward input was positive:
    ``grad_in = relu(grad_out) * (x > 0)``. Other activations keep their ordinary gradient.
    Works on a private copy of the model; needs ReLU activations (a ``ValueError`` otherwise).

    Parameters
    ----------
    {_DOC_PARAMS}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import GuidedBackprop
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> GuidedBackprop().fit(net).explain(torch.randn(10, 4)).values.shape
    (10, 4, 3)
    """

    method_name = "GuidedBackprop"
    _mode = "guided"


class Deconvolution(_ModifiedBackward):
    __doc__ = f"""Deconvolution (Zeiler & Fergus, 2014), as captum's.

    The gradient of each selected output, with every ReLU backpropagating
    ``grad_in = relu(grad_out)`` whatever its forward input. Other activations keep their
    ordinary gradient. Works on a private copy of the model; needs ReLU activations (a
    ``ValueError`` otherwise).

    Parameters
    ----------
    {_DOC_PARAMS}
    Examples
    --------
    >>> import torch
    >>> from sknn_explain import Deconvolution
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> Deconvolution().fit(net).explain(torch.randn(10, 4)).values.shape
    (10, 4, 3)
    """

    method_name = "Deconvolution"
    _mode = "deconv"

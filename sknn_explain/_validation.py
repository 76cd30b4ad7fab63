"""Hyperparameter validation: scikit-learn's constraint language, shared by every entry point.

Explainers declare ``_parameter_constraints`` (``param name -> list of constraints``; a value
is valid when it satisfies one of them) and :class:`~sknn_explain.Explainer` checks them with
``BaseEstimator._validate_params`` at ``fit`` *and* at ``explain`` (so ``set_params`` after
``fit`` is caught). The functional API checks its arguments against the same constraint
objects through :func:`check_params`. Invalid values raise
``sklearn.utils._param_validation.InvalidParameterError``, a subclass of both ``ValueError``
and ``TypeError``, with a message naming the parameter, the accepted values and the value.

The constraints here are stricter than scikit-learn's defaults where a permissive value would
give a silently wrong answer: numbers never accept bools (``n=True`` is not one step), real
intervals never accept ``inf`` or ``nan``, and random states also accept numpy Generators.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable, Mapping
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval as _SklearnInterval
from sklearn.utils._param_validation import (
    InvalidParameterError,
    Options,
    StrOptions,
    make_constraint,
    validate_parameter_constraints,
)

__all__ = [
    "BATCH_SIZE",
    "BOOLEAN",
    "COMMON_PARAMETER_CONSTRAINTS",
    "SPACE",
    "DeviceOptions",
    "Interval",
    "InvalidParameterError",
    "NON_NEGATIVE_REAL",
    "POSITIVE_INT",
    "RANDOM_STATE",
    "SequenceOf",
    "StrOptions",
    "check_estimator_params",
    "check_params",
    "check_reference_shapes",
    "validate_arguments",
]


class Interval(_SklearnInterval):
    """scikit-learn's ``Interval`` that refuses bools and, for real intervals, ``inf``/``nan``.

    ``n=True`` is not one step and ``noise_level=inf`` is not a noise level: both would
    run and return numbers, so they are refused here.

    Examples
    --------
    >>> from numbers import Integral, Real
    >>> Interval(Integral, 1, None, closed="left").is_satisfied_by(True)
    False
    >>> Interval(Real, 0, None, closed="left").is_satisfied_by(float("inf"))
    False
    >>> str(Interval(Real, 0, None, closed="left"))
    'a finite float in the range [0.0, inf)'
    """

    def is_satisfied_by(self, val: object) -> bool:
        if isinstance(val, (bool, np.bool_)) or not super().is_satisfied_by(val):
            return False
        return self.type is Integral or math.isfinite(float(val))

    def __str__(self) -> str:
        text = super().__str__()
        return text if self.type is Integral else text.replace("a float", "a finite float", 1)


class _CustomConstraint(Options):
    """Base of the constraints defined here.

    It derives from ``Options`` only because scikit-learn's ``make_constraint`` accepts
    instances of its own constraint classes and nothing else; subclasses override
    ``is_satisfied_by`` and ``__str__``.
    """

    def __init__(self) -> None:
        super().__init__(object, set())


class DeviceOptions(_CustomConstraint):
    """The devices an explainer can compute on: ``"cpu"``, ``"cuda"``, ``"cuda:<index>"``,
    ``"auto"`` or a ``torch.device`` of type cpu / cuda.

    Whether CUDA is actually available is checked when the device is resolved at ``fit``.

    Examples
    --------
    >>> DeviceOptions().is_satisfied_by("cuda:1"), DeviceOptions().is_satisfied_by("mps")
    (True, False)
    """

    _NAMES = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")

    def is_satisfied_by(self, val: object) -> bool:
        if isinstance(val, torch.device):
            return val.type in ("cpu", "cuda")
        return isinstance(val, str) and bool(self._NAMES.match(val))

    def __str__(self) -> str:
        return "'cpu', 'cuda', 'cuda:<index>', 'auto' or a torch.device of type cpu or cuda"


class SequenceOf(_CustomConstraint):
    """A non-empty list or tuple whose items all satisfy ``constraint``.

    Examples
    --------
    >>> c = SequenceOf(Interval(Integral, 1, None, closed="left"))
    >>> c.is_satisfied_by((2, 3)), c.is_satisfied_by((2, 0)), c.is_satisfied_by(())
    (True, False, False)
    """

    def __init__(self, constraint: object) -> None:
        super().__init__()
        self.constraint = make_constraint(constraint)

    def is_satisfied_by(self, val: object) -> bool:
        return (
            isinstance(val, (list, tuple))
            and len(val) > 0
            and all(self.constraint.is_satisfied_by(v) for v in val)
        )

    def __str__(self) -> str:
        return f"a non-empty tuple or list, each item {self.constraint}"


#: an int >= 1
POSITIVE_INT = [Interval(Integral, 1, None, closed="left")]
#: a finite float >= 0
NON_NEGATIVE_REAL = [Interval(Real, 0, None, closed="left")]
#: ``True`` / ``False`` (also numpy bools)
BOOLEAN = ["boolean"]
#: scikit-learn's random_state (an int in [0, 2**32 - 1], a RandomState or None) + Generator
RANDOM_STATE = [
    Interval(Integral, 0, 2**32 - 1, closed="both"),
    np.random.RandomState,
    np.random.Generator,
    None,
]
#: rows per model call, None: chosen from the input width
BATCH_SIZE = [Interval(Integral, 1, None, closed="left"), None]

#: parameters every :class:`~sknn_explain.Explainer` has
#: where a pipeline's scalers are explained: on the network's inputs or on the raw columns
SPACE: list = [StrOptions({"network", "raw"})]

COMMON_PARAMETER_CONSTRAINTS: dict[str, list] = {
    "ignore_last_act": BOOLEAN,
    "channels_first": BOOLEAN,
    "dtype": [StrOptions({"float", "double"})],
    "device": [DeviceOptions()],
    "batch_size": BATCH_SIZE,
    "verbose": BOOLEAN,
}


def check_params(constraints: Mapping[str, list], params: Mapping[str, object],
                 caller_name: str) -> None:
    """Validate ``params`` against ``constraints`` (scikit-learn's constraint language).

    Parameters
    ----------
    constraints : mapping
        ``name -> list of constraints``; names without an entry are not checked.
    params : mapping
        ``name -> value``.
    caller_name : str
        Function or class named in the error message.

    Raises
    ------
    InvalidParameterError
        (a ``ValueError`` and a ``TypeError``) naming the parameter, what it accepts and the
        value given.

    Examples
    --------
    >>> check_params({"n": POSITIVE_INT}, {"n": 0}, "torch_intgrad")
    Traceback (most recent call last):
    ...
    sklearn.utils._param_validation.InvalidParameterError: The 'n' parameter of torch_intgrad \
must be an int in the range [1, inf). Got 0 instead.
    """
    validate_parameter_constraints(dict(constraints), dict(params), caller_name=caller_name)


#: per estimator class: (its ``_parameter_constraints`` dict, [(name, compiled constraints)])
_COMPILED: dict[type, tuple[Mapping, list[tuple[str, list]]]] = {}


def _compiled_constraints(cls: type) -> list[tuple[str, list]]:
    """``cls``'s constructor parameters with their constraint objects, built once per class.

    scikit-learn's ``_validate_params`` rebuilds both on every call (an ``inspect.signature``
    for the parameter names, ``make_constraint`` for every constraint); an explainer checks
    its hyperparameters at every ``explain``, so they are cached here. The cache entry is
    rebuilt when the class's ``_parameter_constraints`` dict is replaced.
    """
    constraints = cls._parameter_constraints
    entry = _COMPILED.get(cls)
    if entry is None or entry[0] is not constraints:
        compiled = [
            (name, [make_constraint(c) for c in constraints[name]])
            for name in cls._get_param_names()
            if name in constraints and constraints[name] != "no_validation"
        ]
        entry = (constraints, compiled)
        _COMPILED[cls] = entry  # a benign race: both threads build the same entry
    return entry[1]


#: values that cannot change without the attribute being reassigned: a check of them may be
#: remembered (see :func:`check_estimator_params`)
_FROZEN_TYPES = (bool, int, float, str, type(None), np.generic, torch.dtype)


def check_estimator_params(estimator: object) -> None:
    """Check ``estimator``'s hyperparameters against its ``_parameter_constraints``.

    The same check, and on failure the same ``InvalidParameterError`` (raised by
    scikit-learn's own ``_validate_params``), as ``estimator._validate_params()``, with the
    parameter names and constraint objects built once per class instead of on every call.
    When every value is immutable (numbers, strings, None), a passed check is remembered
    on the estimator with the values it saw and skipped while they are the same objects
    (an explainer checks at every ``explain``); a mutable value (a dict, a list, a random
    generator) is checked on every call.
    """
    compiled = _compiled_constraints(type(estimator))
    values = [getattr(estimator, name) for name, _ in compiled]
    frozen = all(isinstance(v, _FROZEN_TYPES) for v in values)
    key = None
    if frozen:
        seen = estimator.__dict__.get("_checked_params")
        if (seen is not None and seen[0] is compiled and len(seen[1]) == len(values)
                and all(a is b for a, b in zip(seen[1], values))):
            return
        # the same values passed for another instance of the class (a fresh explainer per
        # call): typed, so that True / 1 / 1.0 are told apart; NaN never matches itself
        key = (type(estimator), tuple((type(v), v) for v in values))
        if key in _PASSED:
            estimator.__dict__["_checked_params"] = (compiled, values)
            return
    for (name, constraints), value in zip(compiled, values):
        if not any(c.is_satisfied_by(value) for c in constraints):
            estimator._validate_params()  # scikit-learn's message, naming the parameter
            raise InvalidParameterError(  # pragma: no cover - _validate_params raised
                f"The {name!r} parameter of {type(estimator).__name__} is invalid: {value!r}")
    if frozen:
        estimator.__dict__["_checked_params"] = (compiled, values)
        if len(_PASSED) >= _PASSED_SIZE:
            _PASSED.clear()
        _PASSED.add(key)


#: typed immutable hyperparameter values that passed their class's check (bounded)
_PASSED: set = set()
_PASSED_SIZE = 1024


def validate_arguments(constraints: Mapping[str, list]) -> Callable:
    """Decorator: check a function's arguments against ``constraints`` on every call.

    Like scikit-learn's ``validate_params`` decorator, but always on (it does not honour
    ``skip_parameter_validation``: an unchecked ``n=0`` returns all-zero attributions) and
    without scikit-learn's nested-validation bookkeeping. Arguments without an entry in
    ``constraints`` are not checked here.

    Examples
    --------
    >>> @validate_arguments({"n": POSITIVE_INT})
    ... def steps(n=50):
    ...     return n
    >>> steps(n=2.9)
    Traceback (most recent call last):
    ...
    sklearn.utils._param_validation.InvalidParameterError: The 'n' parameter of steps must \
be an int in the range [1, inf). Got 2.9 instead.
    """

    def decorate(func: Callable) -> Callable:
        signature = inspect.signature(func)
        unknown = set(constraints) - set(signature.parameters)
        if unknown:  # pragma: no cover - programming error
            raise ValueError(f"constraints for unknown arguments of {func.__name__}: {unknown}")

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            check_params(constraints, bound.arguments, func.__name__)
            return func(*args, **kwargs)

        return wrapper

    return decorate


def _shapes(value: object) -> list[tuple[int, ...]] | None:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(t, torch.Tensor) and t.ndim >= 2 for t in items):
        return None  # not sample-by-feature tensors: the tensor coercion reports it
    return [tuple(t.shape[1:]) for t in items]


def check_reference_shapes(x: object, ref: object, ref_name: str) -> None:
    """Reference tensors must match ``x`` input for input in per-sample shape.

    A baseline of another shape would broadcast silently (``(1, 1)`` against ``(n, 4)``)
    or be cut short by ``zip``; both give numbers that look right.

    Raises
    ------
    ValueError
        Naming ``ref_name`` and both shapes.

    Examples
    --------
    >>> check_reference_shapes(torch.zeros(3, 4), torch.zeros(1, 1), "x_ref")
    Traceback (most recent call last):
    ...
    ValueError: x_ref has per-sample shape (1,), but x has (4,); give one row (or several \
rows) of the same shape as the samples of x
    """
    xs, refs = _shapes(x), _shapes(ref)
    if xs is None or refs is None:
        return
    if len(xs) != len(refs):
        raise ValueError(f"{ref_name} has {len(refs)} input(s), but x has {len(xs)}")
    for i, (s, r) in enumerate(zip(xs, refs)):
        if s != r:
            label = ref_name if len(xs) == 1 else f"{ref_name}[{i}]"
            what = "x" if len(xs) == 1 else f"x[{i}]"
            raise ValueError(
                f"{label} has per-sample shape {r}, but {what} has {s}; give one row (or "
                f"several rows) of the same shape as the samples of {what}"
            )


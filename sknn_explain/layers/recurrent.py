"""Recurrent layers (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``) and the fixed index maps that read
their states.

A :class:`Recurrent` node computes the whole state trajectory of a (stacked, optionally
bidirectional) LSTM, GRU or Elman RNN over a batch-first sequence ``(n, T, F)``: every hidden
state (and cell state) of every layer, direction and time step, ``(n, L, D, T, S, H)`` with
``S = 2`` (``h``, ``c``) for an LSTM and ``S = 1`` (``h``) for a GRU and an RNN. What the
torch module returns (``output``, ``h_n``, ``c_n``) and whatever the model reads of it
(``out[:, -1]``, ``h_n[-1]``, ``h_n.transpose(0, 1).flatten(1)``) are :class:`Gather` nodes:
fixed per-sample index maps into that trajectory. The propagation rules of the recurrent
layer unroll over time internally (:mod:`sknn_explain.propagation.recurrent`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Layer

__all__ = ["Gather", "Recurrent", "RecurrentStep"]

#: gates per kind, in torch's weight order
GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"),
         "rnn_tanh": ("a",), "rnn_relu": ("a",)}


@dataclass
class RecurrentStep:
    """Intermediates of one layer and direction of a recurrent forward pass, stacked over
    time in time order (``(n, T, size)`` each): the layer input ``x``, the previous states
    ``h_prev`` (and ``c_prev``), the gates' pre-activations ``pre`` and activations ``act``
    (dicts by gate name), the new states ``h`` (and ``c``), and for a GRU the recurrent
    part of the candidate, ``u = W_hn h_prev + b_hn``."""

    x: torch.Tensor
    h_prev: torch.Tensor
    h: torch.Tensor
    pre: dict[str, torch.Tensor]
    act: dict[str, torch.Tensor]
    c_prev: torch.Tensor | None = None
    c: torch.Tensor | None = None
    u: torch.Tensor | None = None


class Recurrent(Layer):
    """A stacked, optionally bidirectional LSTM, GRU or Elman RNN without initial state
    (zeros).

    Parameters
    ----------
    kind : {"lstm", "gru", "rnn_tanh", "rnn_relu"}
        ``"rnn_tanh"`` / ``"rnn_relu"``: ``nn.RNN`` with that ``nonlinearity``,
        ``h_t = act(W_ih x_t + b_ih + W_hh h_prev + b_hh)`` (gate name ``"a"``).
    weights : dict of str to Tensor
        torch's parameters by torch's names (``weight_ih_l0``, ``weight_hh_l0``,
        ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``); biases may be missing.
    num_layers : int
    bidirectional : bool

    Notes
    -----
    ``forward`` takes the batch-first input ``(n, T, F)`` and returns the trajectory
    ``(n, L, D, T, S, H)`` (see the module docstring).
    """

    def __init__(self, kind: str, weights: dict[str, torch.Tensor], num_layers: int,
                 bidirectional: bool) -> None:
        super().__init__()
        if kind not in GATES:
            raise ValueError(f"unsupported recurrent kind {kind!r}; supported: {sorted(GATES)}")
        self.kind = kind
        self.num_layers = int(num_layers)
        self.directions = 2 if bidirectional else 1
        self.hidden_size = int(weights["weight_hh_l0"].shape[1])
        self.has_bias = "bias_ih_l0" in weights
        for name, value in weights.items():
            self.register_buffer(name, self._buffer(value))

    @property
    def n_states(self) -> int:
        """States per step: 2 (``h``, ``c``) for an LSTM, 1 (``h``) for a GRU or an RNN."""
        return 2 if self.kind == "lstm" else 1

    def params(self, layer: int, direction: int) -> tuple[torch.Tensor, ...]:
        """``(W_ih, W_hh, b_ih, b_hh)`` of one layer and direction (zero biases if none)."""
        sfx = f"_l{layer}" + ("_reverse" if direction else "")
        w_ih, w_hh = getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx)
        if self.has_bias:
            return w_ih, w_hh, getattr(self, "bias_ih" + sfx), getattr(self, "bias_hh" + sfx)
        zeros = w_ih.new_zeros(w_ih.shape[0])
        return w_ih, w_hh, zeros, zeros

    def unroll(self, x: torch.Tensor) -> tuple[torch.Tensor, list[list[RecurrentStep]]]:
        """The trajectory and the intermediates per layer and direction."""
        n, steps = x.shape[:2]
        hsz = self.hidden_size
        trajectory = []
        cache: list[list[RecurrentStep]] = []
        inp = x
        for layer in range(self.num_layers):
            per_dir, outs = [], []
            for d in range(self.directions):
                step = self._direction(inp, *self.params(layer, d), reverse=bool(d))
                per_dir.append(step)
                states = [step.h, step.c] if self.kind == "lstm" else [step.h]
                outs.append(torch.stack(states, dim=2))  # (n, T, S, H)
            cache.append(per_dir)
            trajectory.append(torch.stack(outs, dim=1))  # (n, D, T, S, H)
            inp = torch.cat([s.h for s in per_dir], dim=-1)
        traj = torch.stack(trajectory, dim=1)
        assert traj.shape == (n, self.num_layers, self.directions, steps, self.n_states, hsz)
        return traj, cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unroll(x)[0]

    def _direction(self, x, w_ih, w_hh, b_ih, b_hh, reverse: bool) -> RecurrentStep:
        n, steps = x.shape[:2]
        hsz = self.hidden_size
        h = x.new_zeros((n, hsz))
        c = x.new_zeros((n, hsz))
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        gates = GATES[self.kind]
        rec: dict[str, list[torch.Tensor]] = {k: [] for k in (
            "x", "h_prev", "c_prev", "h", "c", "u",
            *(f"pre_{g}" for g in gates), *(f"act_{g}" for g in gates))}
        xw = torch.matmul(x, w_ih.T) + b_ih  # (n, T, G*H)
        for t in order:
            rec["x"].append(x[:, t])
            rec["h_prev"].append(h)
            hw = torch.matmul(h, w_hh.T) + b_hh
            if self.kind == "lstm":
                rec["c_prev"].append(c)
                pre = dict(zip(gates, (xw[:, t] + hw).split(hsz, dim=-1)))
                act = {g: torch.tanh(p) if g == "g" else torch.sigmoid(p)
                       for g, p in pre.items()}
                c = act["f"] * c + act["i"] * act["g"]
                h = act["o"] * torch.tanh(c)
                rec["c"].append(c)
            elif self.kind.startswith("rnn"):
                pre = {"a": xw[:, t] + hw}
                act = {"a": torch.tanh(pre["a"]) if self.kind == "rnn_tanh"
                       else torch.relu(pre["a"])}
                h = act["a"]
            else:
                xr, xz, xn = xw[:, t].split(hsz, dim=-1)
                hr, hz, u = hw.split(hsz, dim=-1)
                pre = {"r": xr + hr, "z": xz + hz}
                act = {"r": torch.sigmoid(pre["r"]), "z": torch.sigmoid(pre["z"])}
                pre["n"] = xn + act["r"] * u
                act["n"] = torch.tanh(pre["n"])
                h = (1 - act["z"]) * act["n"] + act["z"] * h
                rec["u"].append(u)
            rec["h"].append(h)
            for g in gates:
                rec[f"pre_{g}"].append(pre[g])
                rec[f"act_{g}"].append(act[g])
        if reverse:
            rec = {k: v[::-1] for k, v in rec.items()}
        st = {k: torch.stack(v, dim=1) if v else None for k, v in rec.items()}
        return RecurrentStep(
            x=st["x"], h_prev=st["h_prev"], h=st["h"],
            pre={g: st[f"pre_{g}"] for g in gates}, act={g: st[f"act_{g}"] for g in gates},
            c_prev=st["c_prev"], c=st["c"], u=st["u"])

    def extra_repr(self) -> str:
        in_size = self.weight_ih_l0.shape[1]
        return (f"{self.kind}, in={in_size}, hidden={self.hidden_size}, "
                f"layers={self.num_layers}, bidirectional={self.directions == 2}, "
                f"bias={self.has_bias}")


class Gather(Layer):
    """A fixed per-sample index map: ``y[s] = x.reshape(n, -1)[s, index]``.

    How the converter reads recurrent states (``output``, ``h_n[-1]``, ``out[:, -1]``, ...)
    and time-major views of a batch-first value; linear and bias-free, so every method
    propagates through it by its transpose (relevance and multipliers are scattered back).

    Parameters
    ----------
    index : LongTensor, shape (*out_shape)
        Flat positions in the per-sample input.
    """

    def __init__(self, index: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("index", index.detach().clone().long())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)[:, self.index.reshape(-1)]
        return flat.reshape(x.shape[0], *self.index.shape)

    def transpose(self, g: torch.Tensor, in_shape: tuple[int, ...]) -> torch.Tensor:
        """Scatter ``g`` ``(K, n, *out_shape)`` back onto ``(K, n, *in_shape)``."""
        k, n = g.shape[:2]
        out = g.new_zeros((k, n, int(torch.Size(in_shape).numel())))
        out.index_add_(2, self.index.reshape(-1), g.reshape(k, n, -1))
        return out.reshape(k, n, *in_shape)

    def extra_repr(self) -> str:
        return f"out={tuple(self.index.shape)}"

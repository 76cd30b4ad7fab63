"""LRP and DeepLift through a :class:`~sknn_explain.layers.Recurrent` layer, unrolled over time.

Both passes take the state of the layer's output, the trajectory ``(K, n, L, D, T, S, H)``
(relevance / multipliers of every hidden and cell state), and walk the layers top-down and
each direction against its time order, so the state arriving from the model (``h_n``,
``out[:, -1]``, ...), from the next time step and from the next layer add up before a step is
processed.

LRP-LSTM (Arras et al., 2017, "Explaining Recurrent Neural Network Predictions in Sentiment
Analysis", WASSA; signal-take-all on multiplicative gates)
    LSTM, per step: ``h_t = o * tanh(c_t)``: the gate ``o`` gets nothing, ``c_t`` all of
    ``R(h_t)``. ``c_t = f * c_prev + i * g``: epsilon rule over the two summands; the
    relevance of ``f * c_prev`` goes to ``c_prev`` and that of ``i * g`` to the candidate
    ``g`` (gates get nothing). ``g = tanh(z_g)`` passes ``R(g)`` to ``z_g``, and
    ``z_g = W_ig x_t + W_hg h_prev + b`` is split by the epsilon rule onto ``x_t`` and
    ``h_prev``.
    GRU, per step: ``h = (1 - z) * n + z * h_prev``: epsilon rule over the two summands,
    ``(1 - z) * n`` to the candidate ``n``, ``z * h_prev`` to ``h_prev``.
    ``n = tanh(W_in x + b_in + r * u)`` with ``u = W_hn h_prev + b_hn``: epsilon rule onto
    ``x`` and the summand ``r * u``, whose relevance goes to ``u`` (signal-take-all on
    ``r``), then the epsilon rule from ``u`` onto ``h_prev``.
    Elman RNN (``nn.RNN``), per step: ``h = act(z)`` passes ``R(h)`` to ``z`` (tanh and
    ReLU, as activations pass relevance everywhere), and
    ``z = W_ih x + W_hh h_prev + b`` is split by the epsilon rule onto ``x`` and ``h_prev``.
    Conservation: exact (to the stabiliser) for bias-free layers; otherwise the biases
    ``b_ih + b_hh`` of the candidate (LSTM ``g``; GRU ``b_in`` and ``b_hn``) absorb their
    share ``b * R / z``, and the stabiliser ``epsilon * sign(z)`` of every split absorbs
    the rest, as in Arras et al. with their bias factor 0.

DeepLift (Shrikumar et al., 2017) through the unrolled cell
    Linear parts by their transpose, the sigmoid / tanh by the Rescale rule
    (``m = Delta y / Delta x``, the derivative at the midpoint where ``|Delta x| < eps``),
    and every product of two input-dependent values ``a * b`` (gate times signal, including
    ``o * tanh(c)`` and the GRU's ``(1 - z) * n``, ``z * h_prev``, ``r * u``) by DeepLIFT's
    product rule, the Shapley split ``Delta(ab) = mean(a) Delta b + mean(b) Delta a`` with
    ``mean(a) = (a + a_ref) / 2``. Every piece conserves ``sum(m * Delta)`` exactly, so
    summation-to-delta holds exactly through the layer. An Elman RNN step is the Rescale
    rule of ``act`` on ``z`` and the transpose of the linear map. RevealCancel is not
    defined for the products; ``rule_name="reveal_cancel"`` uses Rescale inside the recurrent layer.
"""

from __future__ import annotations

import torch

from ..layers.recurrent import Recurrent, RecurrentStep
from ..rules.modifiers import stabilize

__all__ = ["recurrent_deeplift", "recurrent_lrp"]


def _steps(step: RecurrentStep, reverse: bool) -> range:
    t = step.x.shape[1]
    return range(t) if reverse else range(t - 1, -1, -1)


def _walk_layers(layer: Recurrent, x: torch.Tensor, state: torch.Tensor, step_fn
                 ) -> torch.Tensor:
    """Shared top-down walk: ``step_fn(cache, l, d, ext_h, ext_c) -> (K, n, T, F_l)`` input
    state of one layer and direction; returns the state of the layer input ``x``."""
    _, cache = layer.unroll(x)
    hsz = layer.hidden_size
    ext = state  # (K, n, L, D, T, S, H)
    from_above = None  # (K, n, T, D*H): input state of the layer above
    for li in range(layer.num_layers - 1, -1, -1):
        total = None
        for d in range(layer.directions):
            ext_h = ext[:, :, li, d, :, 0]
            if from_above is not None:
                ext_h = ext_h + from_above[..., d * hsz:(d + 1) * hsz]
            ext_c = ext[:, :, li, d, :, 1] if layer.n_states == 2 else None
            part = step_fn(cache, li, d, ext_h, ext_c)
            total = part if total is None else total + part
        from_above = total
    return from_above


def recurrent_lrp(layer: Recurrent, x: torch.Tensor, relevance: torch.Tensor,
                  epsilon: float) -> torch.Tensor:
    """LRP-LSTM / LRP-GRU relevance of the layer input ``(K, n, T, F)`` (module docstring)."""

    def div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return num / stabilize(den, epsilon)

    def step_fn(cache, li, d, ext_h, ext_c):
        st: RecurrentStep = cache[li][d]
        w_ih, w_hh, _, _ = layer.params(li, d)
        hsz = layer.hidden_size
        rx = ext_h.new_zeros((*ext_h.shape[:2], *st.x.shape[1:]))
        carry_h = carry_c = 0.0
        for t in _steps(st, bool(d)):
            rh = ext_h[:, :, t] + carry_h
            xt, hp = st.x[:, t], st.h_prev[:, t]
            if layer.kind == "lstm":
                rc = ext_c[:, :, t] + carry_c + rh  # h = o * tanh(c): all to c
                c, f, i, g = st.c[:, t], st.act["f"][:, t], st.act["i"][:, t], st.act["g"][:, t]
                s = div(rc, c)
                carry_c = f * st.c_prev[:, t] * s
                rg = i * g * s
                sz = div(rg, st.pre["g"][:, t])  # z_g = W_ig x + W_hg h_prev + b
                rx[:, :, t] = xt * (sz @ w_ih[2 * hsz:3 * hsz])
                carry_h = hp * (sz @ w_hh[2 * hsz:3 * hsz])
            elif layer.kind.startswith("rnn"):
                sz = div(rh, st.pre["a"][:, t])  # h = act(z): R(h) to z, epsilon rule
                rx[:, :, t] = xt * (sz @ w_ih)
                carry_h = hp * (sz @ w_hh)
            else:
                h, z, nn_ = st.h[:, t], st.act["z"][:, t], st.act["n"][:, t]
                s = div(rh, h)
                rn = (1 - z) * nn_ * s
                r_prev = z * hp * s
                sa = div(rn, st.pre["n"][:, t])  # a = W_in x + b_in + r * u
                rx[:, :, t] = xt * (sa @ w_ih[2 * hsz:])
                ru = st.act["r"][:, t] * st.u[:, t] * sa
                su = div(ru, st.u[:, t])  # u = W_hn h_prev + b_hn
                carry_h = r_prev + hp * (su @ w_hh[2 * hsz:])
        return rx

    return _walk_layers(layer, x, relevance, step_fn)


def _secant(fn, a: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    """``(fn(a) - fn(b)) / (a - b)``; the derivative at the midpoint where ``|a - b| < eps``."""
    da = a - b
    small = da.abs() < eps
    sec = (fn(a) - fn(b)) / torch.where(small, torch.ones_like(da), da)
    if bool(small.any()):
        mid = ((a + b) / 2).detach().requires_grad_(True)
        with torch.enable_grad():
            (deriv,) = torch.autograd.grad(fn(mid).sum(), mid)
        sec = torch.where(small, deriv, sec)
    return sec


def recurrent_deeplift(layer: Recurrent, x: torch.Tensor, x_ref: torch.Tensor,
                       multipliers: torch.Tensor, eps: float) -> torch.Tensor:
    """DeepLift multipliers of the layer input ``(K, n, T, F)`` (module docstring)."""
    _, ref_cache = layer.unroll(x_ref.expand_as(x) if x_ref.shape[0] == 1 else x_ref)

    def avg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a + b) / 2

    def step_fn(cache, li, d, ext_h, ext_c):
        st, rs = cache[li][d], ref_cache[li][d]
        w_ih, w_hh, _, _ = layer.params(li, d)
        mx = ext_h.new_zeros((*ext_h.shape[:2], *st.x.shape[1:]))
        carry_h = carry_c = 0.0
        for t in _steps(st, bool(d)):
            mh = ext_h[:, :, t] + carry_h
            a = {g: st.act[g][:, t] for g in st.act}
            ar = {g: rs.act[g][:, t] for g in rs.act}
            hp, hpr = st.h_prev[:, t], rs.h_prev[:, t]
            if layer.kind == "lstm":
                c, cr = st.c[:, t], rs.c[:, t]
                tc, tcr = torch.tanh(c), torch.tanh(cr)
                m_o = mh * avg(tc, tcr)  # h = o * tanh(c), product rule
                mc = ext_c[:, :, t] + carry_c + mh * avg(a["o"], ar["o"]) * _secant(
                    torch.tanh, c, cr, eps)
                cp, cpr = st.c_prev[:, t], rs.c_prev[:, t]
                m_f, carry_c = mc * avg(cp, cpr), mc * avg(a["f"], ar["f"])  # f * c_prev
                m_i, m_g = mc * avg(a["g"], ar["g"]), mc * avg(a["i"], ar["i"])  # i * g
                m_pre = []
                for gate, m_act in zip("ifgo", (m_i, m_f, m_g, m_o)):
                    fn = torch.tanh if gate == "g" else torch.sigmoid
                    m_pre.append(m_act * _secant(fn, st.pre[gate][:, t], rs.pre[gate][:, t],
                                                 eps))
                m_all = torch.cat(m_pre, dim=-1)
                mx[:, :, t] = m_all @ w_ih
                carry_h = m_all @ w_hh
            elif layer.kind.startswith("rnn"):
                act = torch.tanh if layer.kind == "rnn_tanh" else torch.relu
                m_z = mh * _secant(act, st.pre["a"][:, t], rs.pre["a"][:, t], eps)
                mx[:, :, t] = m_z @ w_ih
                carry_h = m_z @ w_hh
            else:
                # h = (1 - z) * n + z * h_prev, both products by the product rule
                m_n = mh * avg(1 - a["z"], 1 - ar["z"])
                m_z = -mh * avg(a["n"], ar["n"]) + mh * avg(hp, hpr)
                m_hp = mh * avg(a["z"], ar["z"])
                m_an = m_n * _secant(torch.tanh, st.pre["n"][:, t], rs.pre["n"][:, t], eps)
                m_r = m_an * avg(st.u[:, t], rs.u[:, t])  # a_n = W_in x + b_in + r * u
                m_u = m_an * avg(a["r"], ar["r"])
                m_ar = m_r * _secant(torch.sigmoid, st.pre["r"][:, t], rs.pre["r"][:, t], eps)
                m_az = m_z * _secant(torch.sigmoid, st.pre["z"][:, t], rs.pre["z"][:, t], eps)
                m_in = torch.cat([m_ar, m_az, m_an], dim=-1)
                m_hh = torch.cat([m_ar, m_az, m_u], dim=-1)
                mx[:, :, t] = m_in @ w_ih
                carry_h = m_hp + m_hh @ w_hh
        return mx

    return _walk_layers(layer, x, multipliers, step_fn)

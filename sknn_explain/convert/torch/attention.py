"""Handlers for products of two activations, attention and embeddings (issue #12, part 2).

========================================  ==================================================
torch                                     graph layers
========================================  ==================================================
``a * b`` (both input-dependent)          :class:`~sknn_explain.layers.Multiply`
``a @ b``, ``torch.matmul`` / ``bmm``,    :class:`~sknn_explain.layers.MatMul` (``x @ W``
``torch.einsum`` (two operands)           with a constant matrix: ``Dense``)
``F.scaled_dot_product_attention``        ``MatMul`` (scores), ``MaskedSoftmax`` (or
                                          softmax), ``MatMul`` (values)
``nn.MultiheadAttention``                 ``Dense`` q / k / v, head ``Reshape`` s, the
(``batch_first`` both ways)               above, ``Reshape``, ``Dense`` output projection
``nn.TransformerEncoderLayer``            ``LayerNorm`` s, the attention above, ``Dense``
(``batch_first`` both ways, relu / gelu,  feed-forward and ``Add`` residuals, in the order
``norm_first`` both ways)                 of the module's Python forward
``nn.TransformerEncoder``                 its layers in turn, then its ``LayerNorm``
``nn.Embedding``, ``F.embedding``         :class:`~sknn_explain.layers.Embedding` on a
                                          model input of integer ids
========================================  ==================================================

``batch_first=False`` modules read ``(L, N, E)``: the converter's view machinery
(:mod:`.recurrent`) undoes the ``x.transpose(0, 1)`` before them and converts them as their
batch-first equivalent (:func:`batch_first_attention`).

Masks must be constants that are the same for every sample (``attn_mask`` of shape
``(L, S)``, ``is_causal``, a ``key_padding_mask`` whose rows are all equal), or a
``key_padding_mask`` computed from a model input of integer ids by ``ids == pad`` /
``ids.eq(pad)`` (:class:`~sknn_explain.layers.IdEqual`, read by a
:class:`~sknn_explain.layers.PaddedSoftmax`; the comparison is not differentiable, so it is a
per-row constant for every method). Such a mask may only be the ``key_padding_mask`` /
``src_key_padding_mask`` of ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` /
``nn.TransformerEncoder``; other masks computed from the input are refused.

``nn.MultiheadAttention`` returns a tuple:
multi-output handlers (:mod:`.tuples`) return one graph name per item (None: an item that is not a
graph value, the averaged attention weights), which :func:`.tuples.tuple_item` resolves for the
``getitem`` that reads it.
"""

from __future__ import annotations

import math
import operator
import string
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from ...layers import (
    Activation,
    Add,
    Dense,
    Embedding,
    IdEqual,
    LayerNorm,
    MaskedSoftmax,
    MatMul,
    Multiply,
    PaddedSoftmax,
    Reshape,
)
from ..errors import ExampleInputsError
from .walker import REQ, Converter, Handler, bind

__all__ = ["ATTENTION_FUNCTIONS", "ATTENTION_METHODS", "ATTENTION_MODULES",
           "batch_first_attention", "code_inputs", "encoder_layer_nodes", "id_masks",
           "multiply"]


def multiply(cv: Converter, node: fx.Node, a: fx.Node, b: fx.Node) -> str:
    """``a * b`` of two input-dependent tensors (no broadcasting)."""
    out_shape = tuple(cv.values[node.name].shape)
    if cv.shape(a) != out_shape or cv.shape(b) != out_shape:
        raise cv.unsupported(node, f"a product broadcasting {cv.shape(a)} with {cv.shape(b)} "
                             "(both factors must have the shape of the result)")
    return cv.add(node, Multiply(), [cv.alias[a.name], cv.alias[b.name]])


def _matmul_equation(rank: int) -> str:
    """einsum of ``a @ b`` for two operands of the same ``rank`` >= 3 (batch axis first)."""
    mid = string.ascii_lowercase[:rank - 3]
    return f"z{mid}ij,z{mid}jk->z{mid}ik"


def _matmul(cv: Converter, node: fx.Node) -> str:
    if node.op == "call_method":
        a, b = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs["mat2"]
    else:
        a = node.args[0] if node.args else node.kwargs.get("input")
        b = node.args[1] if len(node.args) > 1 else node.kwargs.get(
            "other", node.kwargs.get("mat2"))
    da, db = cv.is_data(a), cv.is_data(b)
    if da and not db:
        w = cv.val(b)
        if isinstance(w, torch.Tensor) and w.ndim == 2:  # x @ W: a linear layer
            return cv.add(node, Dense(cv.buf(w.T)), [cv.alias[a.name]])
        raise cv.unsupported(node, "a product with a constant that is not a matrix")
    if not da:
        raise cv.unsupported(node, "a constant times an input-dependent tensor (only "
                             "x @ W with a constant matrix W is a layer)")
    sa, sb = cv.shape(a), cv.shape(b)
    if len(sa) != len(sb) or len(sa) < 3 or sa[:-2] != sb[:-2]:
        raise cv.unsupported(node, f"a matrix product of shapes {sa} and {sb} (both "
                             "operands need the same batch axes, rank >= 3, no broadcasting)")
    layer = MatMul(_matmul_equation(len(sa)))
    return cv.add(node, layer, [cv.alias[a.name], cv.alias[b.name]])


def _einsum(cv: Converter, node: fx.Node) -> str:
    eq, *ops = node.args
    if len(ops) == 1 and isinstance(ops[0], (tuple, list)):
        ops = list(ops[0])
    if len(ops) != 2 or not all(cv.is_data(o) for o in ops):
        raise cv.unsupported(node, "only einsum of two input-dependent operands is a layer")
    try:
        layer = MatMul(str(cv.val(eq)))
    except ValueError as err:
        raise cv.unsupported(node, str(err)) from None
    return cv.add(node, layer, [cv.alias[o.name] for o in ops])


# ---------------------------------------------------------------------------- masks
def _per_sample(cv: Converter, node: fx.Node, m: torch.Tensor, full_rank: int,
                what: str) -> torch.Tensor:
    """A mask broadcast against the batched scores -> broadcast against one sample."""
    if m.ndim == full_rank:
        if m.shape[0] != 1:
            raise cv.unsupported(node, f"the {what} differs between samples (shape "
                                 f"{tuple(m.shape)}); only masks shared by all samples are "
                                 "supported")
        m = m[0]
    elif m.ndim > full_rank:
        raise cv.unsupported(node, f"the {what} has shape {tuple(m.shape)}")
    return m


def _softmax_node(cv: Converter, node: fx.Node, scores: str, shape: tuple[int, ...],
                  attn_mask: object, is_causal: bool, key_padding_mask: object = None,
                  bool_true_masks: bool = False) -> str:
    """Softmax over the last axis of ``scores`` (batched ``shape``) with constant masks.

    ``bool_true_masks``: boolean ``attn_mask`` entries that are True are masked out
    (``nn.MultiheadAttention``); otherwise True means "takes part" (SDPA).
    """
    full = len(shape)
    length, source = shape[-2], shape[-1]
    keep = torch.ones(shape[1:], dtype=torch.bool, device=cv.device)
    add = torch.zeros(shape[1:], dtype=cv.dtype, device=cv.device)
    masked = False
    padding = None  # the graph name of a key padding mask computed from ids
    if isinstance(key_padding_mask, fx.Node) and key_padding_mask.name in id_masks(cv):
        if cv.shape(key_padding_mask) != (shape[0], source):
            raise cv.unsupported(node, f"a key_padding_mask of shape "
                                 f"{cv.shape(key_padding_mask)} for {shape[0]} samples and "
                                 f"{source} keys")
        if bool(cv.values[key_padding_mask.name].all(-1).any()):
            raise cv.unsupported(node, "an example row (X_ref) pads every key, so attention "
                                 "has nothing to attend to and the module returns NaN; for a "
                                 "reference, replace only the non-padding ids (e.g. by a "
                                 "neutral id) and keep the padding where the input has it")
        padding, key_padding_mask = cv.alias[key_padding_mask.name], None
    for mask, what in ((attn_mask, "attn_mask"), (key_padding_mask, "key_padding_mask")):
        if mask is None:
            continue
        if cv.is_data(mask) or isinstance(mask, fx.Node) and mask.name in cv.dynamic:
            raise cv.unsupported(node, f"the {what} depends on the model input; only constant "
                                 "masks and a key_padding_mask `ids == pad` read from an id "
                                 "input are supported (the gradient methods handle it)")
        m = cv.val(mask)
        if not isinstance(m, torch.Tensor):
            raise cv.unsupported(node, f"the {what} is not a tensor")
        if what == "key_padding_mask":  # (N, S): one row per sample
            if m.ndim != 2 or bool((m != m[:1]).any()):
                raise cv.unsupported(node, "the key_padding_mask differs between samples; "
                                     "only a mask shared by all samples is supported")
            m = m[:1].reshape(*([1] * (full - 2)), source)
            drop = m if m.dtype == torch.bool else torch.isneginf(m)
        else:
            m = _per_sample(cv, node, m, full, what)
            if m.dtype == torch.bool:
                drop = m if bool_true_masks else ~m
            else:
                drop = torch.isneginf(m)
        if m.dtype != torch.bool:
            add = add + torch.where(drop, torch.zeros_like(m), m).to(cv.dtype)
        keep = keep & ~drop.to(keep.device)
        masked = True
    if is_causal:
        keep = keep & torch.ones(length, source, dtype=torch.bool, device=cv.device).tril()
        masked = True
    if padding is not None:
        return cv.add(node, PaddedSoftmax(add, keep), [scores, padding], "_softmax")
    if not masked:
        return cv.add(node, Activation("softmax", dim=full - 1), [scores], "_softmax")
    return cv.add(node, MaskedSoftmax(add, keep), [scores], "_softmax")


def id_masks(cv: Converter) -> set[str]:
    """The fx names of the key padding masks computed from ids (``ids == pad``)."""
    return cv.__dict__.setdefault("id_masks", set())


def _id_equal(cv: Converter, node: fx.Node) -> str:
    """``ids == pad`` on a model input of integer ids: a key padding mask."""
    a, b = (node.args[0], node.args[1]) if len(node.args) > 1 else (
        _first(node), node.kwargs.get("other"))
    if cv.is_data(b) and not cv.is_data(a):
        a, b = b, a
    ids = cv.values.get(getattr(a, "name", None))
    if not (isinstance(a, fx.Node) and a.op == "placeholder" and isinstance(ids, torch.Tensor)
            and not ids.is_floating_point() and not cv.is_data(b)):
        raise cv.unsupported(node, "a comparison is a layer only as `ids == pad` on a model "
                             "input of integer ids (a key padding mask)")
    value = cv.val(b)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int):
        raise cv.unsupported(node, f"`ids == {value!r}`: compare the ids with one integer")
    id_masks(cv).add(node.name)
    return cv.add(node, IdEqual(value), [cv.data(a, node)])


def _first(node: fx.Node) -> object:
    return node.args[0] if node.args else node.kwargs.get("input")


def _letters(k: int) -> str:
    return string.ascii_lowercase[:k]


def _attention_core(cv: Converter, node: fx.Node, q: str, k: str, v: str,
                    q_shape: tuple[int, ...], k_shape: tuple[int, ...],
                    v_shape: tuple[int, ...], scale: float, attn_mask: object,
                    is_causal: bool, key_padding_mask: object = None,
                    bool_true_masks: bool = False) -> str:
    """``softmax(q k^T * scale + mask) v`` over batched ``(n, *mid, L, E)`` operands."""
    if not (q_shape[:-2] == k_shape[:-2] == v_shape[:-2]) or k_shape[-2] != v_shape[-2] \
            or q_shape[-1] != k_shape[-1]:
        raise cv.unsupported(node, f"attention over shapes {q_shape}, {k_shape}, {v_shape} "
                             "(broadcasting and grouped heads are not supported)")
    mid = _letters(len(q_shape) - 3)
    scores = cv.add(node, MatMul(f"z{mid}qe,z{mid}se->z{mid}qs", scale), [q, k], "_scores")
    shape = (*q_shape[:-1], k_shape[-2])
    probs = _softmax_node(cv, node, scores, shape, attn_mask, is_causal, key_padding_mask,
                          bool_true_masks)
    return cv.add(node, MatMul(f"z{mid}qs,z{mid}sv->z{mid}qv"), [probs, v])


_SDPA_SPEC = [("query", REQ), ("key", REQ), ("value", REQ), ("attn_mask", None),
              ("dropout_p", 0.0), ("is_causal", False), ("scale", None), ("enable_gqa", False)]


def _sdpa(cv: Converter, node: fx.Node) -> str:
    b = bind(node, _SDPA_SPEC)
    if float(cv.val(b["dropout_p"])) != 0.0:
        raise cv.unsupported(node, "dropout_p > 0 (random attention weights)")
    if cv.val(b["enable_gqa"]):
        raise cv.unsupported(node, "enable_gqa=True")
    q, k, v = b["query"], b["key"], b["value"]
    names = [cv.data(t, node) for t in (q, k, v)]
    qs = cv.shape(q)
    if len(qs) < 3:  # e.g. an input shape (features,) guessed from the q projection
        raise ExampleInputsError(f"scaled_dot_product_attention got a query of shape {qs}: "
                                 "a batched (N, ..., L, E) query is needed")
    scale = cv.val(b["scale"])
    scale = 1.0 / math.sqrt(qs[-1]) if scale is None else float(scale)
    return _attention_core(cv, node, *names, qs, cv.shape(k), cv.shape(v), scale,
                           b["attn_mask"], bool(cv.val(b["is_causal"])))


_MHA_SPEC = [("query", REQ), ("key", REQ), ("value", REQ), ("key_padding_mask", None),
             ("need_weights", True), ("attn_mask", None), ("average_attn_weights", True),
             ("is_causal", False)]


def _mha_module(cv: Converter, node: fx.Node) -> tuple[str, None]:
    mod: nn.MultiheadAttention = cv.gm.get_submodule(node.target)
    if not mod.batch_first:  # pragma: no cover - the recurrent hook converts these
        raise cv.unsupported(node, "batch_first=False outside a transposed input")
    b = bind(node, _MHA_SPEC)
    operands = []
    for arg in (b["query"], b["key"], b["value"]):
        shp = cv.shape(arg)
        if len(shp) != 3:
            raise ExampleInputsError(f"nn.MultiheadAttention got an input of shape {shp}: a "
                                     "batched (N, L, E) input is needed")
        operands.append((cv.data(arg, node), shp))
    return mha_layers(cv, node, mod, operands, b["attn_mask"], b["key_padding_mask"]), None


def batch_first_attention(cv: Converter, node: fx.Node, mod: nn.Module,
                          inputs: dict[str, tuple[str, tuple[int, ...]]]) -> str:
    """The graph nodes of a ``batch_first=False`` attention module ``mod`` called by ``node``
    on ``(L, N, E)`` tensors, built as its batch-first equivalent; ``inputs`` maps the fx
    name of each input-dependent argument to the graph name and ``(N, L, E)`` shape of its
    batch-first value. Returns the graph name of the batch-first output."""
    def operand(arg: object) -> tuple[str, tuple[int, ...]]:
        if not (isinstance(arg, fx.Node) and arg.name in inputs):
            raise cv.unsupported(node, "its tensor operand does not depend on the model input")
        return inputs[arg.name]

    if isinstance(mod, nn.MultiheadAttention):
        b = bind(node, _MHA_SPEC)
        operands = [operand(b[k]) for k in ("query", "key", "value")]
        return mha_layers(cv, node, mod, operands, b["attn_mask"], b["key_padding_mask"])
    if isinstance(mod, nn.TransformerEncoderLayer):
        b = bind(node, _ENCODER_SPEC)
        x, shp = operand(b["src"])
        return encoder_layer_nodes(cv, node, mod, x, shp, b["src_mask"],
                                   b["src_key_padding_mask"], b["is_causal"])
    b = bind(node, _STACK_SPEC)
    x, shp = operand(b["src"])
    return _encoder_stack_nodes(cv, node, mod, x, shp, b)


def mha_layers(cv: Converter, node: fx.Node, mod: nn.MultiheadAttention,
               operands: Sequence[tuple[str, tuple[int, ...]]], attn_mask: object,
               key_padding_mask: object, prefix: str = "") -> str:
    """The graph nodes of ``mod(query, key, value)[0]``; ``operands``: the graph names and
    shapes ``(N, L, E)`` of query, key and value; node names get ``prefix`` + a suffix."""
    if mod.bias_k is not None or mod.add_zero_attn:
        raise cv.unsupported(node, "add_bias_kv / add_zero_attn")
    e, h = mod.embed_dim, mod.num_heads
    d = e // h
    if mod._qkv_same_embed_dim:
        wq, wk, wv = mod.in_proj_weight.chunk(3)
    else:
        wq, wk, wv = mod.q_proj_weight, mod.k_proj_weight, mod.v_proj_weight
    biases = (None,) * 3 if mod.in_proj_bias is None else mod.in_proj_bias.chunk(3)
    heads = []
    for (name, shp), w, bias, suffix in zip(operands, (wq, wk, wv), biases, ("_q", "_k", "_v")):
        proj = cv.add(node, Dense(cv.buf(w), None if bias is None else cv.buf(bias)),
                      [name], prefix + suffix)
        heads.append((cv.add(node, Reshape((shp[1], h, d)), [proj], prefix + suffix + "_heads"),
                      (shp[0], h, shp[1], d)))
    (q, qs), (k, ks), (v, vs) = heads
    scores = cv.add(node, MatMul("zqhe,zshe->zhqs", 1.0 / math.sqrt(d)), [q, k],
                    prefix + "_scores")
    shape = (qs[0], h, qs[2], ks[2])
    probs = _softmax_node(cv, node, scores, shape, attn_mask, False, key_padding_mask,
                          bool_true_masks=True)
    ctx = cv.add(node, MatMul("zhqs,zshv->zqhv"), [probs, v], prefix + "_context")
    ctx = cv.add(node, Reshape((qs[2], e)), [ctx], prefix + "_merge")
    out_bias = mod.out_proj.bias
    return cv.add(node, Dense(cv.buf(mod.out_proj.weight),
                              None if out_bias is None else cv.buf(out_bias)), [ctx],
                  prefix + "_out")


_mha_module.multi_output = True  # type: ignore[attr-defined]  # see .tuples
_mha_module.reads_id_masks = True  # type: ignore[attr-defined]  # key_padding_mask


_ENCODER_SPEC = [("src", REQ), ("src_mask", None), ("src_key_padding_mask", None),
                 ("is_causal", False)]


def _encoder_activation(cv: Converter, node: fx.Node, mod: nn.TransformerEncoderLayer
                        ) -> Activation:
    act = mod.activation
    if act is F.relu or isinstance(act, nn.ReLU):
        return Activation("relu")
    if act is F.gelu:
        return Activation("gelu")
    if isinstance(act, nn.GELU) and act.approximate == "none":
        return Activation("gelu")
    if isinstance(act, nn.GELU):
        raise cv.unsupported(node, "nn.GELU(approximate='tanh') as activation: the module's "
                             "fused eval path computes the exact GELU, its Python path the "
                             "tanh approximation, so its output depends on the grad mode; "
                             "write the block with nn.MultiheadAttention, nn.LayerNorm and "
                             "nn.Linear")
    raise cv.unsupported(node, f"activation {act!r} (relu and gelu are supported; write the "
                         "block with nn.MultiheadAttention, nn.LayerNorm and nn.Linear to use "
                         "another one)")


def _encoder_layer(cv: Converter, node: fx.Node) -> str:
    """``nn.TransformerEncoderLayer`` (``batch_first=True``) from its submodules."""
    mod: nn.TransformerEncoderLayer = cv.gm.get_submodule(node.target)
    b = bind(node, _ENCODER_SPEC)
    src = b["src"]
    shp = cv.shape(src)
    if len(shp) != 3:
        raise ExampleInputsError(f"nn.TransformerEncoderLayer got an input of shape {shp}: "
                                 "a batched (N, L, E) input is needed")
    return encoder_layer_nodes(cv, node, mod, cv.data(src, node), shp, b["src_mask"],
                               b["src_key_padding_mask"], b["is_causal"])


def encoder_layer_nodes(cv: Converter, node: fx.Node, mod: nn.TransformerEncoderLayer,
                        x: str, shp: tuple[int, ...], src_mask: object,
                        key_padding_mask: object, is_causal: object, prefix: str = "") -> str:
    """The graph nodes of ``mod`` on the batch-first graph value ``x`` of shape ``shp``
    (the Python path of its forward; in eval mode torch may run a fused kernel with the same
    result); node names get ``prefix`` + a suffix."""
    if cv.val(is_causal) and src_mask is None:
        raise cv.unsupported(node, "is_causal=True without src_mask")
    act = _encoder_activation(cv, node, mod)

    def norm(ln: nn.LayerNorm, x: str, suffix: str) -> str:
        w = None if ln.weight is None else cv.buf(ln.weight)
        bias = None if ln.bias is None else cv.buf(ln.bias)
        return cv.add(node, LayerNorm(tuple(ln.normalized_shape), w, bias, ln.eps), [x],
                      prefix + suffix)

    def dense(lin: nn.Linear, x: str, suffix: str) -> str:
        return cv.add(node, Dense(cv.buf(lin.weight),
                                  None if lin.bias is None else cv.buf(lin.bias)), [x],
                      prefix + suffix)

    def attention(x: str) -> str:
        return mha_layers(cv, node, mod.self_attn, [(x, shp)] * 3, src_mask,
                          key_padding_mask, prefix + "_self_attn")

    def feed_forward(x: str) -> str:
        h = cv.add(node, act, [dense(mod.linear1, x, "_linear1")], prefix + "_activation")
        return dense(mod.linear2, h, "_linear2")

    def add(a: str, b: str, suffix: str) -> str:
        return cv.add(node, Add(), [a, b], prefix + suffix)

    if mod.norm_first:
        x = add(x, attention(norm(mod.norm1, x, "_norm1")), "_add1")
        return add(x, feed_forward(norm(mod.norm2, x, "_norm2")), "_add2")
    x = norm(mod.norm1, add(x, attention(x), "_add1"), "_norm1")
    return norm(mod.norm2, add(x, feed_forward(x), "_add2"), "_norm2")


_STACK_SPEC = [("src", REQ), ("mask", None), ("src_key_padding_mask", None),
               ("is_causal", None)]


def _encoder_stack_nodes(cv: Converter, node: fx.Node, mod: nn.TransformerEncoder, x: str,
                         shp: tuple[int, ...], b: dict) -> str:
    """``nn.TransformerEncoder``: its layers in turn, then its optional final norm."""
    if b["src_key_padding_mask"] is not None and getattr(mod, "use_nested_tensor", False):
        raise cv.unsupported(node, "src_key_padding_mask with enable_nested_tensor=True (the "
                             "nested-tensor fast path sets padded outputs to 0 in eval "
                             "mode); build it with enable_nested_tensor=False")
    causal = b["is_causal"]
    for i, layer in enumerate(mod.layers):
        x = encoder_layer_nodes(cv, node, layer, x, shp, b["mask"], b["src_key_padding_mask"],
                                False if causal is None else causal, f"_layers_{i}")
    if mod.norm is not None:
        ln = mod.norm
        if not isinstance(ln, nn.LayerNorm):
            raise cv.unsupported(node, f"a final norm {type(ln).__name__} (LayerNorm is "
                                 "supported)")
        w = None if ln.weight is None else cv.buf(ln.weight)
        bias = None if ln.bias is None else cv.buf(ln.bias)
        x = cv.add(node, LayerNorm(tuple(ln.normalized_shape), w, bias, ln.eps), [x], "_norm")
    return x


def _encoder_stack(cv: Converter, node: fx.Node) -> str:
    """``nn.TransformerEncoder`` (``batch_first=True`` layers)."""
    mod: nn.TransformerEncoder = cv.gm.get_submodule(node.target)
    b = bind(node, _STACK_SPEC)
    shp = cv.shape(b["src"])
    if len(shp) != 3:
        raise ExampleInputsError(f"nn.TransformerEncoder got an input of shape {shp}: a "
                                 "batched (N, L, E) input is needed")
    return _encoder_stack_nodes(cv, node, mod, cv.data(b["src"], node), shp, b)


# ---------------------------------------------------------------------------- embeddings
def _embedding_layer(cv: Converter, node: fx.Node, ids: object, weight: torch.Tensor,
                     name: str, max_norm: object = None) -> str:
    if max_norm is not None:
        raise cv.unsupported(node, "max_norm (the lookup renormalises the weights in place)")
    if not (isinstance(ids, fx.Node) and ids.op == "placeholder"):
        raise cv.unsupported(node, "its ids are computed in the model; an embedding must read "
                             "a model input of integer ids directly")
    return cv.add(node, Embedding(cv.buf(weight), name), [cv.data(ids, node)])


def _computed_ids(node: fx.Node) -> str | None:
    """Shape-free refusal (checked before conversion): ids computed inside the model."""
    ids = node.args[0] if node.args else node.kwargs.get("input")
    if isinstance(ids, fx.Node) and ids.op != "placeholder":
        return ("its ids are computed in the model; an embedding must read a model input of "
                "integer ids directly (the gradient methods handle computed ids)")
    return None


def _embedding_module(cv: Converter, node: fx.Node) -> str:
    mod: nn.Embedding = cv.gm.get_submodule(node.target)
    return _embedding_layer(cv, node, node.args[0] if node.args else node.kwargs["input"],
                            mod.weight, f"nn.Embedding '{node.target}'", mod.max_norm)


def _embedding_fn(cv: Converter, node: fx.Node) -> str:
    b = bind(node, [("input", REQ), ("weight", REQ), ("padding_idx", None), ("max_norm", None),
                     ("norm_type", 2.0), ("scale_grad_by_freq", False), ("sparse", False)])
    if cv.is_data(b["weight"]):
        raise cv.unsupported(node, "input-dependent weights")
    return _embedding_layer(cv, node, b["input"], cv.val(b["weight"]), "F.embedding",
                            cv.val(b["max_norm"]))


def code_inputs(gm: fx.GraphModule, inputs: Sequence[str]) -> list[int]:
    """Per model input, the number of ids of the ``nn.Embedding`` / ``F.embedding`` it feeds
    (the smallest if several; 0: not an id input). The module runs on id inputs as int64."""
    nodes = {n.name: n for n in gm.graph.nodes}
    sizes = []
    for name in inputs:
        found: list[int] = []
        for user in nodes[name].users:
            if user.op == "call_module":
                mod = gm.get_submodule(user.target)
                if isinstance(mod, nn.Embedding):
                    found.append(int(mod.num_embeddings))
            elif user.op == "call_function" and user.target is F.embedding:
                w = user.args[1] if len(user.args) > 1 else user.kwargs.get("weight")
                if isinstance(w, fx.Node) and w.op == "get_attr":
                    found.append(int(gm.get_parameter(str(w.target)).shape[0]))
        sizes.append(min(found) if found else 0)
    return sizes


_encoder_layer.reads_id_masks = True  # type: ignore[attr-defined]
_encoder_stack.reads_id_masks = True  # type: ignore[attr-defined]
_embedding_module.precheck = _computed_ids  # type: ignore[attr-defined]
_embedding_fn.precheck = _computed_ids  # type: ignore[attr-defined]

ATTENTION_MODULES: dict[type, Handler] = {
    nn.MultiheadAttention: _mha_module,
    nn.TransformerEncoderLayer: _encoder_layer,
    nn.TransformerEncoder: _encoder_stack,
    nn.Embedding: _embedding_module,
}

ATTENTION_FUNCTIONS: dict[object, Handler] = {
    torch.matmul: _matmul, operator.matmul: _matmul, torch.bmm: _matmul,
    torch.einsum: _einsum,
    F.scaled_dot_product_attention: _sdpa,
    F.embedding: _embedding_fn,
    operator.eq: _id_equal, torch.eq: _id_equal,
}

ATTENTION_METHODS: dict[str, Handler] = {"matmul": _matmul, "bmm": _matmul, "eq": _id_equal}

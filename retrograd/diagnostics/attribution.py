"""Gradient-based attribution: which parts of the input drove an output, by backprop itself.

Methods (``method=``):

- ``"saliency"``: ``|d score / d input|`` (Simonyan et al. 2014).
- ``"grad_x_input"``: ``input * d score / d input`` (Shrikumar et al. 2016).
- ``"integrated_gradients"``: ``(x - x0) * mean_k d score / d input at x0 + a_k (x - x0)``
  over ``steps`` midpoints ``a_k`` (Sundararajan et al. 2017). It satisfies *completeness*:
  the attributions sum to ``score(x) - score(x0)`` (``.completeness_error`` reports how
  closely; it shrinks as ``steps`` grows).

The score is the model output for ``target`` (a class index; by default the predicted class;
for a sequence model, the logit of the next token at the last position). For token inputs
(integer ids), attribution is taken with respect to the output of the ``embedding`` module
(found automatically as the model's first ``nn.Embedding`` when not given) and summed over
the embedding dimension, one score per token.

>>> import retrograd as rg
>>> _ = rg.manual_seed(0)
>>> net = rg.nn.Sequential(rg.nn.Linear(4, 8), rg.nn.Tanh(), rg.nn.Linear(8, 3))
>>> a = rg.diagnostics.attribute(net, rg.randn(1, 4), target=2, method="integrated_gradients")
>>> a.completeness_error < 0.01
True
"""

from __future__ import annotations

import html as _html
import os
from dataclasses import dataclass

import numpy as np

from ..autograd import grad as _autograd_grad
from ..autograd.grad_mode import enable_grad, no_grad
from ..tensor import Tensor

__all__ = ["attribute", "Attribution"]

METHODS = ("saliency", "grad_x_input", "integrated_gradients")
_SHADES = " ░▒▓█"


@dataclass
class Attribution:
    """Attribution result. ``attributions`` has the input's shape (for token inputs: the
    embedding output's shape); ``scores`` is one value per token (token inputs) or equals
    ``attributions``. ``output`` is the score at the input, ``baseline_output`` the score at
    the baseline (integrated gradients), ``completeness_error`` the relative gap between
    ``attributions.sum()`` and ``output - baseline_output``."""

    method: str
    attributions: np.ndarray
    scores: np.ndarray
    target: np.ndarray
    output: np.ndarray
    baseline_output: np.ndarray | None = None
    completeness_error: float | None = None
    tokens: list | None = None

    def text(self, tokens=None, decode=None, row: int = 0, top: int = 5) -> str:
        """Token heat map as text: each token with a shade (░▒▓█ = weak to strong, by |score|)
        and the strongest ``top`` tokens in [brackets]."""
        s = self.scores if self.scores.ndim == 1 else self.scores[row]
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        toks = _tokens(tokens, decode, self.tokens, row, len(s))
        mx = np.abs(s).max() or 1.0
        order = set(np.argsort(-np.abs(s))[:top].tolist())
        shown = "".join(f"[{t}]" if i in order else t for i, t in enumerate(toks))
        shade = "".join(
            _SHADES[min(4, int(round(4 * abs(v) / mx)))] * len(t) for t, v in zip(toks, s)
        )
        lines = [
            f"{self.method} attribution for target {self.target.reshape(-1)[row]}:",
            shown,
            shade,
            "strongest: "
            + ", ".join(f"{toks[i]!r}@{i} {s[i]:+.3g}" for i in np.argsort(-np.abs(s))[:top]),
        ]
        return "\n".join(lines)

    def html(self, tokens=None, decode=None, row: int = 0) -> str:
        """Token heat map as HTML (red = pushes the target up, blue = down)."""
        s = self.scores if self.scores.ndim == 1 else self.scores[row]
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        toks = _tokens(tokens, decode, self.tokens, row, len(s))
        mx = np.abs(s).max() or 1.0
        spans = []
        for t, v in zip(toks, s):
            a = abs(v) / mx
            col = f"rgba(220,40,40,{a:.2f})" if v >= 0 else f"rgba(40,80,220,{a:.2f})"
            spans.append(
                f"<span title='{v:+.3g}' style='background:{col};font-family:monospace;"
                f"white-space:pre'>{_html.escape(str(t))}</span>"
            )
        return f"<div class='rg-attr'>{''.join(spans)}</div>"

    def plot(
        self,
        path: str | os.PathLike,
        image=None,
        image_shape=None,
        row: int = 0,
        title: str | None = None,
    ) -> str:
        """Saliency image PNG (for image inputs): the input beside its attribution map."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        a = np.asarray(self.attributions[row] if self.attributions.ndim > 1 else self.attributions)
        if image_shape is not None:
            a = a.reshape(image_shape)
        while a.ndim > 2:
            a = np.abs(a).sum(axis=0) if a.shape[0] <= 4 else a[0]
        if a.ndim < 2:  # feature vectors: a bar chart
            a = a.reshape(-1)
            fig, ax = plt.subplots(figsize=(max(2.5, 0.35 * len(a) + 1), 2.6))
            ax.bar(range(len(a)), a, color=["C3" if v >= 0 else "C0" for v in a])
            ax.set_xlabel("feature")
            ax.set_title(
                title or f"{self.method}, target {self.target.reshape(-1)[row]}", fontsize=8
            )
            fig.tight_layout()
            fig.savefig(path, dpi=80)
            plt.close(fig)
            return str(path)
        n = 2 if image is not None else 1
        fig, axes = plt.subplots(1, n, figsize=(2.4 * n, 2.6))
        axes = np.atleast_1d(axes)
        if image is not None:
            im = np.asarray(image._data if isinstance(image, Tensor) else image).reshape(a.shape)
            axes[0].imshow(im, cmap="gray")
            axes[0].set_title("input", fontsize=8)
        m = np.abs(a).max() or 1.0
        axes[-1].imshow(a, cmap="RdBu_r", vmin=-m, vmax=m)
        axes[-1].set_title(
            title or f"{self.method}\ntarget {self.target.reshape(-1)[row]}", fontsize=8
        )
        for ax in axes:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return str(path)


def _tokens(tokens, decode, own, row, n):
    if tokens is None:
        tokens = own
    if tokens is not None and len(tokens) and isinstance(tokens[0], (list, tuple, np.ndarray)):
        tokens = tokens[row]
    if tokens is None:
        return [f"<{i}>" for i in range(n)]
    if decode is not None:
        out = [decode([int(t)]) for t in tokens]
    else:
        out = [str(t) for t in tokens]
    # one visible cell per token, so the shade line stays aligned
    return [t.replace("\n", "↵").replace("\t", "→") or "∅" for t in out]


def _first_output(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def _score(out: Tensor, target):
    """Sum over the batch of the target logits (last position for sequence outputs)."""
    if out.dim() == 3:
        out = out[:, -1, :]
    if out.dim() == 1:
        out = out.unsqueeze(0)
    if out.dim() != 2:
        raise ValueError(
            f"attribute(): expected model output of shape (N, C) or (N, T, C), "
            f"got {tuple(out.shape)}"
        )
    n = out.shape[0]
    if target is None:
        tgt = np.argmax(out._data, axis=1)
    else:
        tgt = np.broadcast_to(
            np.asarray(
                target._data if isinstance(target, Tensor) else target, dtype=np.int64
            ).reshape(-1),
            (n,),
        )
    from ..creation import tensor as _tensor

    idx = _tensor(np.arange(n, dtype=np.int64))
    picked = out[idx, _tensor(np.ascontiguousarray(tgt))]
    return picked, tgt


def attribute(
    model,
    inputs,
    target=None,
    method: str = "grad_x_input",
    baseline=None,
    steps: int = 50,
    embedding=None,
    forward_fn=None,
) -> Attribution:
    """Attribute ``model``'s score for ``target`` to the parts of ``inputs``.

    ``inputs``: a float tensor (images, features) or integer token ids ``(B, T)``.
    ``baseline``: the reference input for integrated gradients (default zeros, of the input or
    of the embedding output). ``embedding``: the module whose output is attributed for token
    inputs. ``forward_fn(model, inputs) -> logits`` overrides ``model(inputs)`` (a tuple
    output's first element is used, so GPT's ``(logits, loss)`` works as is).
    """
    if method not in METHODS:
        raise ValueError(f"attribute(): method must be one of {METHODS}, got {method!r}")
    if steps < 1:
        raise ValueError(f"attribute(): steps must be >= 1, got {steps}")
    fwd = forward_fn or (lambda m, x: m(x))
    if not isinstance(inputs, Tensor):
        from ..creation import tensor as _tensor

        inputs = _tensor(inputs)
    token_mode = inputs.dtype.is_floating_point is False
    if token_mode and embedding is None:
        from ..nn.modules.sparse import Embedding

        embedding = next((m for m in model.modules() if isinstance(m, Embedding)), None)
        if embedding is None:
            raise ValueError(
                "attribute(): integer inputs need an embedding module "
                "(pass embedding=model.some_embedding)"
            )
    modes = [(m, m.training) for m in model.modules()]
    model.eval()  # dropout off: attributions must be deterministic (and complete)
    try:
        if embedding is not None:
            return _attribute_embedding(
                model, inputs, target, method, baseline, steps, embedding, fwd
            )
        return _attribute_dense(model, inputs, target, method, baseline, steps, fwd)
    finally:
        for m, t in modes:
            m.training = t


def _grad_at(model, fwd, x_arr, target):
    x = Tensor._make(np.ascontiguousarray(x_arr), True)
    with enable_grad():
        picked, tgt = _score(_first_output(fwd(model, x)), target)
        (g,) = _autograd_grad(picked.sum(), x)
    return g._data, picked._data.copy(), tgt


def _attribute_dense(model, inputs, target, method, baseline, steps, fwd):
    x = inputs._data
    if method != "integrated_gradients":
        g, out, tgt = _grad_at(model, fwd, x, target)
        att = np.abs(g) if method == "saliency" else g * x
        return Attribution(method, att, att, tgt, out)
    x0 = (
        np.zeros_like(x)
        if baseline is None
        else np.broadcast_to(
            np.asarray(baseline._data if isinstance(baseline, Tensor) else baseline, dtype=x.dtype),
            x.shape,
        )
    )
    _, out, tgt = _grad_at(model, fwd, x, target)
    with no_grad():
        base_out, _ = _score(_first_output(fwd(model, Tensor._make(np.ascontiguousarray(x0)))), tgt)
    total = np.zeros(x.shape, dtype=np.float64)
    for k in range(steps):
        a = (k + 0.5) / steps  # midpoint rule: exact for linear paths, O(1/steps^2) otherwise
        g, _, _ = _grad_at(model, fwd, x0 + a * (x - x0), tgt)
        total += g
    att = ((x - x0) * (total / steps)).astype(x.dtype)
    return _with_completeness(Attribution(method, att, att, tgt, out, base_out._data.copy()))


def _with_completeness(a: Attribution) -> Attribution:
    n = a.output.shape[0]
    sums = a.attributions.reshape(n, -1).astype(np.float64).sum(axis=1)
    diff = a.output.astype(np.float64) - a.baseline_output.astype(np.float64)
    a.completeness_error = float(np.max(np.abs(sums - diff) / np.maximum(np.abs(diff), 1e-12)))
    return a


def _attribute_embedding(model, inputs, target, method, baseline, steps, embedding, fwd):
    state = {"replace": None, "captured": None}

    def hook(mod, args, out):
        if state["replace"] is not None:
            return state["replace"]
        state["captured"] = out
        return None

    h = embedding.register_forward_hook(hook)
    try:
        with no_grad():
            fwd(model, inputs)
        E = state["captured"]._data.copy()

        def grad_at(e_arr, tgt):
            leaf = Tensor._make(np.ascontiguousarray(e_arr, dtype=E.dtype), True)
            state["replace"] = leaf
            try:
                with enable_grad():
                    picked, t = _score(_first_output(fwd(model, inputs)), tgt)
                    (g,) = _autograd_grad(picked.sum(), leaf)
            finally:
                state["replace"] = None
            return g._data, picked._data.copy(), t

        g, out, tgt = grad_at(E, target)
        toks = inputs._data.tolist()
        if method == "saliency":
            att = np.abs(g)
            scores = np.sqrt((g.astype(np.float64) ** 2).sum(-1))
            return Attribution(method, att, scores, tgt, out, tokens=toks)
        if method == "grad_x_input":
            att = g * E
            return Attribution(method, att, att.sum(-1), tgt, out, tokens=toks)
        E0 = (
            np.zeros_like(E)
            if baseline is None
            else np.broadcast_to(
                np.asarray(
                    baseline._data if isinstance(baseline, Tensor) else baseline, dtype=E.dtype
                ),
                E.shape,
            )
        )
        with no_grad():
            state["replace"] = Tensor._make(np.ascontiguousarray(E0))
            try:
                base_out, _ = _score(_first_output(fwd(model, inputs)), tgt)
            finally:
                state["replace"] = None
        total = np.zeros(E.shape, dtype=np.float64)
        for k in range(steps):
            a = (k + 0.5) / steps
            gk, _, _ = grad_at(E0 + a * (E - E0), tgt)
            total += gk
        att = ((E - E0) * (total / steps)).astype(E.dtype)
        res = Attribution(method, att, att.sum(-1), tgt, out, base_out._data.copy(), tokens=toks)
        return _with_completeness(res)
    finally:
        h.remove()

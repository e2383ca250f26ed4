"""``GradientMonitor``: per-layer gradient, update and activation statistics during training.

Typical loop::

    mon = rg.diagnostics.GradientMonitor(model, every=10)
    mon.attach_optimizer(opt)          # optional: measures update/weight ratios around step()
    for x, y in loader:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        mon.step(loss)                 # after backward, before opt.step()
        opt.step()
    print(mon.report())                # per-layer table + verdicts
    mon.detach()                       # removes every hook: zero cost afterwards

Every ``every``-th step records, per parameter and per layer (module owning parameters):
gradient norm, weight norm, gradient/weight ratio, update/weight ratio (the change made by the
optimizer step that follows, measured by snapshotting the weights), non-finite counts; and
per leaf module, forward-output statistics: mean, std, fraction of dead ReLU units (units that
output 0 for every sample of the batch), fraction of saturated tanh/sigmoid outputs,
non-finite values. The loss is logged every step. ``history`` is plain data (JSON via
``save``/``load``) and :meth:`verdicts` turns it into :class:`Verdict` objects.

>>> import retrograd as rg
>>> class Net(rg.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.w = rg.nn.Parameter(rg.ones(3))
...     def forward(self, x):
...         return (self.w * x).sum()
>>> net = Net()
>>> with rg.diagnostics.GradientMonitor(net, every=1) as mon:
...     loss = net(rg.ones(3)); loss.backward(); mon.step(loss)
>>> round(mon.history["records"][0]["layers"]["(model)"]["grad_norm"], 3)
1.732
"""

from __future__ import annotations

import html as _html
import json
import math
import os

import numpy as np

from ..autograd.grad_mode import STATE
from ..tensor import Tensor
from .verdicts import Thresholds, Verdict, diagnose

__all__ = ["GradientMonitor", "load_history"]

RELU_KINDS = {"ReLU": "relu", "ReLU6": "relu", "Threshold": "relu"}
SOFT_RELU = {
    "LeakyReLU",
    "ELU",
    "GELU",
    "SiLU",
    "Mish",
    "CELU",
    "SELU",
    "PReLU",
    "Softplus",
    "Hardswish",
}
TANH_KINDS = {"Tanh": "tanh", "Hardtanh": "tanh", "Softsign": "tanh"}
SIGMOID_KINDS = {"Sigmoid": "sigmoid", "Hardsigmoid": "sigmoid"}
MIN_DEAD_SAMPLES = 8


def _act_kind(mod) -> str:
    n = type(mod).__name__
    if n in RELU_KINDS:
        return "relu"
    if n in TANH_KINDS:
        return "tanh"
    if n in SIGMOID_KINDS:
        return "sigmoid"
    if n in SOFT_RELU:
        return "relu-like"
    return "other"


def _norm(a: np.ndarray) -> float:
    # float64 accumulation for a trustworthy norm of a float32 array (cheap: one pass).
    v = (
        np.dot(a.ravel(), a.ravel())
        if a.dtype == np.float64
        else np.dot(
            a.ravel().astype(np.float64, copy=False), a.ravel().astype(np.float64, copy=False)
        )
    )
    return math.sqrt(float(v)) if math.isfinite(float(v)) else float("nan")


def _unit_axis(a: np.ndarray) -> int | None:
    if a.ndim == 2 or a.ndim >= 4:
        return 1  # (N, F) features, (N, C, H, W) channels
    if a.ndim == 3:
        return 2  # (B, T, C) sequence features
    return None


def _act_stats(kind: str, a: np.ndarray, level: float) -> dict:
    finite = np.isfinite(a)
    nonfinite = int(a.size - np.count_nonzero(finite))
    af = a if nonfinite == 0 else np.where(finite, a, 0)
    st = {
        "kind": kind,
        "mean": float(af.mean()) if a.size else 0.0,
        "std": float(af.std()) if a.size else 0.0,
        "nonfinite": nonfinite,
        "dead": None,
        "saturated": None,
        "zero_frac": None,
    }
    if kind == "relu" and a.size:
        pos = af > 0
        st["zero_frac"] = float(1.0 - pos.mean())
        ax = _unit_axis(a)
        # "Dead" = zero for every sample seen; with fewer than MIN_DEAD_SAMPLES values per unit
        # a unit can be silent by chance, so no claim is made.
        if ax is not None and a.size // max(1, a.shape[ax]) >= MIN_DEAD_SAMPLES:
            other = tuple(i for i in range(a.ndim) if i != ax)
            alive = pos.any(axis=other)
            st["dead"] = float(1.0 - alive.mean())
    elif kind == "tanh" and a.size:
        st["saturated"] = float((np.abs(af) > level).mean())
    elif kind == "sigmoid" and a.size:
        st["saturated"] = float((np.abs(2 * af - 1) > level).mean())
    return st


class GradientMonitor:
    """Watch gradients, updates and activations of ``model`` every ``every`` steps.

    ``activations=True`` hooks the leaf modules' forward outputs; ``thresholds`` sets the
    verdict thresholds; ``max_records`` bounds memory (oldest recorded steps are dropped).
    """

    def __init__(
        self,
        model,
        every: int = 10,
        activations: bool = True,
        thresholds: Thresholds | None = None,
        max_records: int = 10000,
    ):
        if every < 1:
            raise ValueError(f"GradientMonitor: every must be >= 1, got {every}")
        self.model = model
        self.every = int(every)
        self.thresholds = thresholds or Thresholds()
        self.max_records = max_records
        self._count = 0
        self._handles: list = []
        self._opt_handles: list = []
        self._snapshot: dict | None = None
        self._snap_record: dict | None = None
        self._stepped = False
        self._acts: dict = {}
        self._order: list[str] = []
        # Layers = modules that own parameters directly, keyed by qualified name.
        self._layers: list[tuple[str, object, list]] = []
        for name, mod in model.named_modules():
            ps = [(k, p) for k, p in mod._parameters.items() if p is not None]
            if ps:
                self._layers.append((name or "(model)", mod, ps))
        self.history: dict = {
            "every": self.every,
            "layers": [n for n, _, _ in self._layers],
            "layer_types": {n: type(m).__name__ for n, m, _ in self._layers},
            "act_kinds": {},
            "losses": [],
            "records": [],
        }
        self._attached = False
        self.attach(activations)

    # --- attaching ------------------------------------------------------------------
    def attach(self, activations: bool = True) -> GradientMonitor:
        """Register the forward hooks (done by the constructor)."""
        if self._attached:
            return self
        self._attached = True
        if activations:
            for name, mod in self.model.named_modules():
                if mod._modules:  # containers: their children are hooked instead
                    continue
                key = name or "(model)"
                self.history["act_kinds"][key] = _act_kind(mod)
                self._handles.append(mod.register_forward_hook(self._make_hook(key, mod)))
        return self

    def attach_optimizer(self, optimizer) -> GradientMonitor:
        """Measure update/weight ratios exactly around ``optimizer.step()`` (step hooks).

        When ``monitor.step()`` was not called in an iteration, the pre-step hook records the
        gradients itself (the loss can be given with :meth:`log_loss`)."""
        self._opt_handles.append(optimizer.register_step_pre_hook(self._pre_opt))
        self._opt_handles.append(optimizer.register_step_post_hook(self._post_opt))
        return self

    def detach(self) -> None:
        """Remove every hook this monitor registered (model and optimizer)."""
        for h in self._handles + self._opt_handles:
            h.remove()
        self._handles.clear()
        self._opt_handles.clear()
        self._attached = False

    def __enter__(self) -> GradientMonitor:
        return self

    def __exit__(self, *exc) -> None:
        self.detach()

    # --- recording ----------------------------------------------------------------------
    def _recording(self) -> bool:
        return self._count % self.every == 0

    def _make_hook(self, key, mod):
        kind = _act_kind(mod)

        def hook(module, args, out):
            if not self._recording() or not STATE.enabled:
                return None
            if key not in self._acts:
                self._order.append(key)
            t = out[0] if isinstance(out, (tuple, list)) and out else out
            if isinstance(t, Tensor) and t._data.dtype.kind == "f":
                self._acts[key] = _act_stats(kind, t._data, self.thresholds.saturation_level)
            return None

        return hook

    def log_loss(self, loss, step: int | None = None) -> None:
        """Log the loss of the current step (``step(loss)`` does this too); ``step`` overrides
        the monitor's own step counter."""
        v = float(loss._data.reshape(-1)[0]) if isinstance(loss, Tensor) else float(loss)
        k = self._count if step is None else int(step)
        if self.history["losses"] and self.history["losses"][-1][0] == k:
            self.history["losses"][-1][1] = v
        else:
            self.history["losses"].append([k, v])

    def step(self, loss=None) -> None:
        """Call once per training step, after ``backward()`` and before ``optimizer.step()``."""
        self._finish_update()
        if loss is not None:
            self.log_loss(loss)
        if self._recording():
            self._record()
        self._acts = {}
        self._count += 1
        self._stepped = True

    def _record(self) -> None:
        layers = {}
        params = {}
        total = 0.0
        snap = {}
        for lname, _mod, ps in self._layers:
            g2 = w2 = 0.0
            nonfinite = 0
            dead_rows = None
            for k, p in ps:
                pname = f"{lname}.{k}" if lname != "(model)" else k
                w = p._data
                wn = _norm(w)
                g = p._grad
                if g is None:
                    gn = None
                else:
                    ga = g._data
                    gn = _norm(ga)
                    if not math.isfinite(gn):
                        nonfinite += int(ga.size - np.count_nonzero(np.isfinite(ga)))
                    else:
                        g2 += gn * gn
                    if k == "weight" and ga.ndim >= 2 and ga.shape[0] > 1:
                        rows = ga.reshape(ga.shape[0], -1)
                        dead_rows = float((~np.any(rows != 0, axis=1)).mean())
                w2 += wn * wn
                params[pname] = {
                    "grad_norm": gn,
                    "weight_norm": wn,
                    "grad_ratio": None if gn is None or wn == 0 else gn / wn,
                    "update_ratio": None,
                }
                snap[pname] = (p, w.copy())
            gnorm = math.sqrt(g2) if any(p._grad is not None for _, p in ps) else None
            if nonfinite:
                gnorm = float("nan")
            wnorm = math.sqrt(w2)
            layers[lname] = {
                "grad_norm": gnorm,
                "weight_norm": wnorm,
                "grad_ratio": None if gnorm is None or wnorm == 0 else gnorm / wnorm,
                "update_ratio": None,
                "nonfinite": nonfinite,
                "zero_grad_rows": dead_rows,
            }
            if gnorm is not None:
                total += gnorm * gnorm if math.isfinite(gnorm) else math.inf
        rec = {
            "step": self._count,
            "total_norm": math.sqrt(total) if math.isfinite(total) else float("nan"),
            "layers": layers,
            "params": params,
            "acts": dict(self._acts),
        }
        if self._order and not self.history.get("forward_order"):
            self.history["forward_order"] = list(self._order)
            self._reorder()
        recs = self.history["records"]
        recs.append(rec)
        if len(recs) > self.max_records:
            del recs[0]
        self._snapshot = snap
        self._snap_record = rec

    def _reorder(self) -> None:
        """Order layers as the forward pass calls them (first layer first)."""
        order = self.history["forward_order"]
        pos = {n: i for i, n in enumerate(order)}
        names = self.history["layers"]
        self.history["layers"] = sorted(
            names, key=lambda n: pos.get(n, len(order) + names.index(n))
        )

    def _finish_update(self) -> None:
        """Update/weight ratios of the recorded step, from the weights snapshotted then."""
        if self._snapshot is None:
            return
        rec = self._snap_record
        per_layer: dict = {}
        for pname, (p, old) in self._snapshot.items():
            new = p._data
            if new.shape != old.shape:
                continue
            dn = _norm(new - old)
            wn = _norm(old)
            rec["params"][pname]["update_ratio"] = dn / wn if wn > 0 else None
            lname = pname.rsplit(".", 1)[0] if "." in pname else "(model)"
            a = per_layer.setdefault(lname, [0.0, 0.0])
            a[0] += dn * dn
            a[1] += wn * wn
        for lname, (d2, w2) in per_layer.items():
            if lname in rec["layers"] and w2 > 0:
                rec["layers"][lname]["update_ratio"] = math.sqrt(d2 / w2)
        self._snapshot = None
        self._snap_record = None

    def _pre_opt(self, opt, args, kwargs):
        if not self._stepped:
            self.step()
        return None

    def _post_opt(self, opt, args, kwargs):
        self._finish_update()
        self._stepped = False

    # --- results --------------------------------------------------------------------
    def verdicts(self, thresholds: Thresholds | None = None) -> list[Verdict]:
        """Health verdicts (vanishing, exploding, dead units, saturation, LR, non-finite)."""
        self._finish_update_if_pending()
        return diagnose(self.history, thresholds or self.thresholds)

    def _finish_update_if_pending(self) -> None:
        # A snapshot taken at the last step: measure the update if the weights changed since.
        if self._snapshot is not None and any(
            not np.array_equal(p._data, old) for p, old in self._snapshot.values()
        ):
            self._finish_update()

    def layer_table(self) -> list[dict]:
        """One row per layer (forward order) with the latest recorded figures."""
        self._finish_update_if_pending()
        recs = self.history["records"]
        rows = []
        for n in self.history["layers"]:
            rec = next((r for r in reversed(recs) if n in r["layers"]), None)
            if rec is None:
                continue
            L = rec["layers"][n]
            ups = [
                r["layers"][n]["update_ratio"]
                for r in recs
                if n in r["layers"] and r["layers"][n]["update_ratio"] is not None
            ]
            act = rec["acts"].get(n) or {}
            rows.append(
                {
                    "layer": n,
                    "type": self.history["layer_types"].get(n, "?"),
                    "grad_norm": L["grad_norm"],
                    "weight_norm": L["weight_norm"],
                    "grad_ratio": L["grad_ratio"],
                    "update_ratio": float(np.median(ups)) if ups else None,
                    "act_mean": act.get("mean"),
                    "act_std": act.get("std"),
                    "step": rec["step"],
                }
            )
        # Activation-only modules (ReLU, Tanh, ...) appear with their statistics.
        last = next((r for r in reversed(recs) if r["acts"]), None)
        acts = []
        if last is not None:
            for n, a in last["acts"].items():
                if a["kind"] != "other":
                    acts.append({"module": n, **a})
        self._act_rows = acts
        return rows

    def report(self, thresholds: Thresholds | None = None) -> str:
        """The whole picture as text: per-layer table, activation table, verdicts."""
        rows = self.layer_table()

        def f(x):
            return "-" if x is None else (f"{x:.2e}" if isinstance(x, float) else str(x))

        n_steps = self._count
        lines = [
            f"GradientMonitor: {n_steps} steps seen, {len(self.history['records'])} recorded "
            f"(every {self.every})"
        ]
        if self.history["losses"]:
            l0, l1 = self.history["losses"][0][1], self.history["losses"][-1][1]
            lines.append(f"loss: first {l0:.4g}, last {l1:.4g}")
        w = max([len(r["layer"]) for r in rows] + [5])
        lines.append(
            f"{'layer':<{w}} {'type':<12} {'|grad|':>9} {'|w|':>9} {'|g|/|w|':>9} "
            f"{'upd/|w|':>9} {'act mean':>9} {'act std':>9}"
        )
        for r in rows:
            lines.append(
                f"{r['layer']:<{w}} {r['type'][:12]:<12} {f(r['grad_norm']):>9} "
                f"{f(r['weight_norm']):>9} {f(r['grad_ratio']):>9} {f(r['update_ratio']):>9} "
                f"{f(r['act_mean']):>9} {f(r['act_std']):>9}"
            )
        if getattr(self, "_act_rows", None):
            lines.append("")
            lines.append(
                f"{'activation':<{w}} {'kind':<8} {'mean':>9} {'std':>9} {'dead':>6} "
                f"{'saturated':>9}"
            )
            for a in self._act_rows:
                d = "-" if a["dead"] is None else f"{a['dead']:.0%}"
                s = "-" if a["saturated"] is None else f"{a['saturated']:.0%}"
                lines.append(
                    f"{a['module']:<{w}} {a['kind']:<8} {f(a['mean']):>9} {f(a['std']):>9} "
                    f"{d:>6} {s:>9}"
                )
        vs = self.verdicts(thresholds)
        lines.append("")
        if not vs:
            lines.append("Verdict: healthy (no problem detected with the current thresholds)")
        for v in vs:
            lines.append(str(v))
        return "\n".join(lines)

    def to_html(self, thresholds: Thresholds | None = None) -> str:
        """The report as a standalone HTML fragment (table + verdicts)."""
        rows = self.layer_table()
        e = _html.escape

        def f(x):
            return "-" if x is None else (f"{x:.2e}" if isinstance(x, float) else e(str(x)))

        body = "".join(
            f"<tr><td>{e(r['layer'])}</td><td>{e(r['type'])}</td><td>{f(r['grad_norm'])}</td>"
            f"<td>{f(r['weight_norm'])}</td><td>{f(r['grad_ratio'])}</td><td>{f(r['update_ratio'])}</td>"
            f"<td>{f(r['act_mean'])}</td><td>{f(r['act_std'])}</td></tr>"
            for r in rows
        )
        vs = self.verdicts(thresholds)
        vhtml = (
            "".join(
                f"<li><b>{e(v.kind)}</b>: {e(v.message)}<ul>"
                + "".join(f"<li>{e(c)}</li>" for c in v.cures)
                + "</ul></li>"
                for v in vs
            )
            or "<li>healthy: no problem detected</li>"
        )
        return (
            "<div class='rg-monitor'><table border=1 cellspacing=0 cellpadding=3><tr><th>layer</th>"
            "<th>type</th><th>|grad|</th><th>|w|</th><th>|g|/|w|</th><th>update/|w|</th>"
            f"<th>act mean</th><th>act std</th></tr>{body}</table><ul>{vhtml}</ul></div>"
        )

    def plot(self, path: str | os.PathLike) -> str:
        """PNG with gradient norm per layer over steps, update ratios, and the loss."""
        return plot_history(self.history, path)

    # --- persistence ------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> str:
        """Write the history as JSON (read back with :func:`load_history`)."""
        self._finish_update_if_pending()
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.history, fh, allow_nan=True)
        return str(path)


def load_history(path: str | os.PathLike) -> dict:
    """A monitor history saved by :meth:`GradientMonitor.save`."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def plot_history(history: dict, path: str | os.PathLike) -> str:
    """Plot a monitor history to a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = history["records"]
    layers = history["layers"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    cmap = plt.get_cmap("viridis")
    for i, n in enumerate(layers):
        xs = [r["step"] for r in recs if n in r["layers"] and r["layers"][n]["grad_norm"]]
        ys = [
            r["layers"][n]["grad_norm"]
            for r in recs
            if n in r["layers"] and r["layers"][n]["grad_norm"]
        ]
        c = cmap(i / max(1, len(layers) - 1))
        if xs:
            axes[0].semilogy(xs, ys, color=c, label=n if len(layers) <= 8 else None)
        xs = [r["step"] for r in recs if n in r["layers"] and r["layers"][n]["update_ratio"]]
        ys = [
            r["layers"][n]["update_ratio"]
            for r in recs
            if n in r["layers"] and r["layers"][n]["update_ratio"]
        ]
        if xs:
            axes[1].semilogy(xs, ys, color=c)
    axes[0].set_title("gradient norm per layer (dark = first)")
    axes[0].set_xlabel("step")
    if len(layers) <= 8:
        axes[0].legend(fontsize=7)
    axes[1].axhline(1e-3, color="red", ls="--", lw=1, label="~1e-3 rule of thumb")
    axes[1].set_title("update / weight norm ratio")
    axes[1].set_xlabel("step")
    axes[1].legend(fontsize=7)
    ls = [(s, v) for s, v in history["losses"] if v is not None and math.isfinite(v)]
    if ls:
        axes[2].plot([s for s, _ in ls], [v for _, v in ls])
    axes[2].set_title("loss")
    axes[2].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return str(path)

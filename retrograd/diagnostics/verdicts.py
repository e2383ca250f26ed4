"""Health verdicts from a gradient monitor's history: what is wrong, the evidence, the cures.

:func:`diagnose` reads only the plain-data history a :class:`GradientMonitor` records (or one
loaded back from JSON), so ``retrograd doctor RUN_DIR`` can judge a finished run. Every
threshold lives in :class:`Thresholds`; ``docs/diagnostics.md`` says where each comes from.

>>> from retrograd.diagnostics import Thresholds, diagnose
>>> h = {"layers": ["fc1", "fc2"], "layer_types": {}, "act_kinds": {}, "losses": [],
...      "records": [{"step": 0, "total_norm": 1.0, "layers": {
...          "fc1": {"grad_norm": 1e-9, "weight_norm": 1.0, "update_ratio": None, "nonfinite": 0},
...          "fc2": {"grad_norm": 1.0, "weight_norm": 1.0, "update_ratio": None, "nonfinite": 0}},
...          "acts": {}}]}
>>> [v.kind for v in diagnose(h)]
['vanishing']
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["Thresholds", "Verdict", "diagnose", "KINDS"]

KINDS = (
    "vanishing",
    "exploding",
    "dead_units",
    "saturation",
    "lr_too_high",
    "lr_too_low",
    "non_finite",
)


@dataclass
class Thresholds:
    """Decision thresholds (see docs/diagnostics.md for the justification of each default).

    - ``vanish_ratio``: first-layer / last-layer gradient norm below this -> vanishing.
    - ``vanish_abs``: a layer gradient norm below this (but not exactly 0) -> vanishing.
    - ``explode_norm``: total gradient norm above this -> exploding.
    - ``explode_ratio``: first / last layer gradient norm above this -> exploding.
    - ``explode_jump``: a recorded total norm this many times the median of earlier ones.
    - ``loss_spike``: loss this many times its running minimum (after ``min_steps`` steps).
    - ``dead_fraction``: a ReLU layer with at least this fraction of units that output 0 for
      every sample of a recorded batch -> dead units.
    - ``saturation_fraction``, ``saturation_level``: fraction of tanh outputs with
      ``|y| > saturation_level`` (sigmoid: ``|2y-1| > saturation_level``) above which the layer
      is saturated.
    - ``update_high``, ``update_low``: the median layer's update/weight norm ratio per step
      above/below which the LR looks too high/low (Karpathy's rule of thumb: about 1e-3 is
      healthy; the defaults flag 100x above and 10x below it).
    - ``diverge_factor``: final loss above this times the first -> diverging.
    - ``stall_fraction``: loss improved by less than this fraction over the run -> stalled
      (used together with a low update ratio).
    - ``min_steps``: steps needed before trend-based verdicts (loss, update ratios) are given.
    """

    vanish_ratio: float = 1e-3
    vanish_abs: float = 1e-7
    explode_norm: float = 1e3
    explode_ratio: float = 1e3
    explode_jump: float = 100.0
    loss_spike: float = 10.0
    dead_fraction: float = 0.5
    saturation_fraction: float = 0.5
    saturation_level: float = 0.99
    update_high: float = 1e-1
    update_low: float = 1e-4
    diverge_factor: float = 1.5
    stall_fraction: float = 0.01
    min_steps: int = 5


@dataclass
class Verdict:
    """One finding: ``kind`` (one of :data:`KINDS`), a ``message``, the ``evidence`` (figures,
    layers, steps) and suggested ``cures``."""

    kind: str
    message: str
    evidence: dict = field(default_factory=dict)
    cures: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        s = f"[{self.kind}] {self.message}"
        if self.cures:
            s += "\n    cures: " + "; ".join(self.cures)
        return s

    def to_dict(self) -> dict:
        return asdict(self)


CURES = {
    "vanishing": [
        "use ReLU-family activations (ReLU, GELU, SiLU) instead of sigmoid/tanh in deep stacks",
        "add residual connections (He et al. 2016)",
        "add normalization (LayerNorm, Ba et al. 2016; BatchNorm)",
        "use a variance-preserving init: He/Kaiming for ReLU, Xavier/Glorot for tanh",
    ],
    "exploding": [
        "clip the gradient norm: rg.nn.utils.clip_grad_norm_(model.parameters(), 1.0) "
        "(Pascanu et al. 2013)",
        "lower the learning rate",
        "use a smaller / variance-preserving init (Xavier/Glorot, He/Kaiming)",
        "add normalization layers",
    ],
    "dead_units": [
        "lower the learning rate (large updates push units into the dead region)",
        "use LeakyReLU / GELU / ELU, whose gradient is never exactly 0",
        "initialise biases at 0 (or small positive), weights with He/Kaiming",
    ],
    "saturation": [
        "use a variance-preserving init (Xavier/Glorot for tanh/sigmoid) or smaller weights",
        "normalize the inputs and add LayerNorm/BatchNorm before the activation",
        "prefer ReLU-family activations in hidden layers",
    ],
    "lr_too_high": [
        "lower the learning rate (try 3-10x lower, or run rg.diagnostics.lr_find)",
        "add a warm-up and/or gradient clipping",
    ],
    "lr_too_low": [
        "raise the learning rate (try 3-10x higher, or run rg.diagnostics.lr_find)",
    ],
    "non_finite": [
        "look for log(0), division by 0, exp overflow; use numerically stable ops "
        "(log_softmax, cross_entropy with logits, logsumexp)",
        "run one step under rg.autograd.detect_anomaly() to name the first op that produced it",
        "lower the learning rate / clip gradients if values grew before becoming inf",
    ],
}


def _finite(xs):
    return [x for x in xs if x is not None and math.isfinite(x)]


def _med(xs):
    xs = _finite(xs)
    return float(np.median(xs)) if xs else None


def diagnose(history: dict, thresholds: Thresholds | None = None) -> list[Verdict]:
    """Verdicts for a monitor history (``GradientMonitor.history``), most serious first."""
    th = thresholds or Thresholds()
    recs = history.get("records", [])
    layers = [n for n in history.get("layers", []) if any(n in r["layers"] for r in recs)]
    losses = [(s, v) for s, v in history.get("losses", [])]
    out: list[Verdict] = []

    # --- non-finite ----------------------------------------------------------------------
    bad_loss = [s for s, v in losses if v is not None and not math.isfinite(v)]
    bad_grad = [
        (r["step"], n)
        for r in recs
        for n in layers
        if n in r["layers"] and r["layers"][n].get("nonfinite", 0)
    ]
    bad_act = [
        (r["step"], n) for r in recs for n, a in r.get("acts", {}).items() if a.get("nonfinite", 0)
    ]
    if bad_loss or bad_grad or bad_act:
        first = []
        if bad_act:
            first.append(
                f"first non-finite activation in '{bad_act[0][1]}' at step {bad_act[0][0]}"
            )
        if bad_grad:
            first.append(
                f"first non-finite gradient in '{bad_grad[0][1]}' at step {bad_grad[0][0]}"
            )
        if bad_loss:
            first.append(f"loss non-finite from step {bad_loss[0]}")
        out.append(
            Verdict(
                "non_finite",
                "NaN/inf values: " + "; ".join(first),
                {"loss_steps": bad_loss[:20], "grad": bad_grad[:20], "activations": bad_act[:20]},
                CURES["non_finite"],
                layers=list(dict.fromkeys([n for _, n in bad_act + bad_grad])),
                steps=sorted({s for s, _ in bad_grad + bad_act} | set(bad_loss))[:20],
            )
        )

    # Per-layer median gradient norms across recorded steps.
    med = {n: _med([r["layers"][n]["grad_norm"] for r in recs if n in r["layers"]]) for n in layers}
    per_step_ratio = []
    for r in recs:
        L = r["layers"]
        if layers and layers[0] in L and layers[-1] in L:
            a, b = L[layers[0]]["grad_norm"], L[layers[-1]]["grad_norm"]
            if a is not None and b and math.isfinite(a) and math.isfinite(b) and b > 0:
                per_step_ratio.append(a / b)
    ratio = _med(per_step_ratio)
    norms = {n: v for n, v in med.items() if v is not None}

    # --- vanishing -----------------------------------------------------------------------
    tiny = [n for n, v in norms.items() if 0 < v < th.vanish_abs]
    if len(layers) >= 2 and ((ratio is not None and ratio < th.vanish_ratio) or tiny):
        early = layers[: max(1, len(layers) // 4)]
        upd = _med(
            [r["layers"][n].get("update_ratio") for r in recs for n in early if n in r["layers"]]
        )
        msg = (
            f"vanishing gradients: the first layer '{layers[0]}' gets "
            f"{ratio:.2e} x the gradient norm of the last layer '{layers[-1]}'"
            if ratio is not None
            else "vanishing gradients"
        )
        if tiny:
            msg += f"; {len(tiny)} layer(s) below {th.vanish_abs:g}: {', '.join(tiny[:5])}"
        if upd is not None:
            msg += f"; early layers' update/weight ratio {upd:.1e}"
        out.append(
            Verdict(
                "vanishing",
                msg,
                {
                    "first_to_last_ratio": ratio,
                    "layer_grad_norms": norms,
                    "tiny_layers": tiny,
                    "early_update_ratio": upd,
                    "threshold_ratio": th.vanish_ratio,
                    "threshold_abs": th.vanish_abs,
                },
                CURES["vanishing"],
                layers=tiny or [layers[0]],
                steps=[r["step"] for r in recs],
            )
        )

    # --- exploding -----------------------------------------------------------------------
    totals = [(r["step"], r.get("total_norm")) for r in recs]
    tvals = _finite([t for _, t in totals])
    reasons = []
    big_steps = [s for s, t in totals if t is not None and math.isfinite(t) and t > th.explode_norm]
    if big_steps:
        reasons.append(
            f"total gradient norm above {th.explode_norm:g} at {len(big_steps)} "
            f"recorded step(s) (max {max(tvals):.3g})"
        )
    if ratio is not None and ratio > th.explode_ratio:
        reasons.append(f"gradient norm grows {ratio:.2e}x from the last layer to the first")
    jumps = []
    for i in range(3, len(totals)):
        prev = _finite([t for _, t in totals[:i]])
        t = totals[i][1]
        if (
            prev
            and t is not None
            and math.isfinite(t)
            and t > th.explode_jump * float(np.median(prev))
        ):
            jumps.append(totals[i][0])
    if jumps:
        reasons.append(
            f"gradient norm jumped >{th.explode_jump:g}x its median at step(s) {jumps[:5]}"
        )
    spikes = []
    if len(losses) > th.min_steps:
        run_min = math.inf
        for s, v in losses:
            if v is None or not math.isfinite(v):
                continue
            if run_min < math.inf and run_min > 0 and v > th.loss_spike * run_min:
                spikes.append(s)
            run_min = min(run_min, v)
    if spikes and reasons:
        reasons.append(
            f"loss spiked >{th.loss_spike:g}x its running minimum at step(s) {spikes[:5]}"
        )
    if reasons:
        out.append(
            Verdict(
                "exploding",
                "exploding gradients: " + "; ".join(reasons),
                {
                    "total_norms": totals[-20:],
                    "first_to_last_ratio": ratio,
                    "jump_steps": jumps,
                    "loss_spike_steps": spikes,
                    "threshold_norm": th.explode_norm,
                },
                CURES["exploding"],
                layers=[n for n in layers if norms.get(n, 0) > th.explode_norm] or layers[:1],
                steps=(big_steps + jumps)[:20],
            )
        )

    # --- dead units / saturation (latest record with activation stats) --------------------
    act_rec = next((r for r in reversed(recs) if r.get("acts")), None)
    if act_rec is not None:
        dead = {
            n: a["dead"]
            for n, a in act_rec["acts"].items()
            if a.get("dead") is not None and a["dead"] >= th.dead_fraction
        }
        if dead:
            worst = max(dead, key=dead.get)
            out.append(
                Verdict(
                    "dead_units",
                    f"dead ReLU units: {dead[worst]:.0%} of the units of '{worst}' output 0 "
                    f"for every "
                    f"sample (step {act_rec['step']})"
                    + (f"; {len(dead)} layers affected" if len(dead) > 1 else ""),
                    {"dead_fraction": dead, "step": act_rec["step"], "threshold": th.dead_fraction},
                    CURES["dead_units"],
                    layers=list(dead),
                    steps=[act_rec["step"]],
                )
            )
        sat = {
            n: a["saturated"]
            for n, a in act_rec["acts"].items()
            if a.get("saturated") is not None and a["saturated"] >= th.saturation_fraction
        }
        if sat:
            worst = max(sat, key=sat.get)
            out.append(
                Verdict(
                    "saturation",
                    f"saturated units: {sat[worst]:.0%} of the outputs of '{worst}' are within "
                    f"{1 - th.saturation_level:g} of the activation's bounds, where its "
                    "derivative is ~0",
                    {
                        "saturated_fraction": sat,
                        "step": act_rec["step"],
                        "threshold": th.saturation_fraction,
                    },
                    CURES["saturation"],
                    layers=list(sat),
                    steps=[act_rec["step"]],
                )
            )

    # --- learning rate -----------------------------------------------------------------
    # Per-layer median update ratio over the recorded steps; the LR is judged on the median
    # layer. "Too low" is not claimed when gradients vanish: tiny updates of early layers are
    # then a symptom of vanishing, and a higher LR is not the cure.
    per_layer_upd = _finite(
        [
            _med([r["layers"][n].get("update_ratio") for r in recs if n in r["layers"]])
            for n in layers
        ]
    )
    upd = float(np.median(per_layer_upd)) if per_layer_upd else None
    upd_max = max(per_layer_upd) if per_layer_upd else None
    fin = [(s, v) for s, v in losses if v is not None and math.isfinite(v)]
    n_steps = len(losses)
    if n_steps >= th.min_steps or upd is not None:
        high = []
        if fin and len(fin) >= th.min_steps:
            k = max(1, len(fin) // 10)
            start = float(np.mean([v for _, v in fin[:k]]))
            end = float(np.mean([v for _, v in fin[-k:]]))
            if start > 0 and end > th.diverge_factor * start:
                high.append(f"loss rose from {start:.4g} to {end:.4g}")
            else:
                d = np.diff([v for _, v in fin])
                if len(d) >= 8:
                    flips = float(np.mean(np.sign(d[1:]) != np.sign(d[:-1])))
                    if flips > 0.8 and end > 0.9 * start:
                        high.append(
                            f"loss oscillates (direction flips at {flips:.0%} of steps) "
                            "without going down"
                        )
        if bad_loss and not high:
            high.append(f"loss became non-finite at step {bad_loss[0]}")
        if upd is not None and upd > th.update_high:
            high.append(
                f"median update/weight ratio {upd:.1e} (healthy ~1e-3, flagged above "
                f"{th.update_high:g})"
            )
        if high:
            out.append(
                Verdict(
                    "lr_too_high",
                    "learning rate too high: " + "; ".join(high),
                    {"median_update_ratio": upd, "losses": fin[-20:], "threshold": th.update_high},
                    CURES["lr_too_high"],
                    steps=[s for s, _ in fin[-5:]],
                )
            )
        elif (
            upd is not None and upd < th.update_low and not any(v.kind == "vanishing" for v in out)
        ):
            stalled = ""
            if fin and len(fin) >= th.min_steps:
                start, end = fin[0][1], fin[-1][1]
                if start > 0 and (start - end) / start < th.stall_fraction:
                    stalled = f"; loss barely moved ({start:.4g} -> {end:.4g})"
            out.append(
                Verdict(
                    "lr_too_low",
                    f"learning rate too low: the median layer changes by {upd:.1e} of "
                    f"its norm per step (most-updated layer: {upd_max:.1e}) "
                    f"(healthy ~1e-3, flagged below {th.update_low:g}){stalled}",
                    {
                        "median_update_ratio": upd,
                        "max_layer_update_ratio": upd_max,
                        "threshold": th.update_low,
                    },
                    CURES["lr_too_low"],
                )
            )
    return out

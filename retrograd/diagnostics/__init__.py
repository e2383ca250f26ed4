"""Seeing backprop: gradient monitor and health verdicts, LR finder, explain, attribution.

Public API (``rg.explain`` is also exported at the top level; the rest lives in
``rg.diagnostics``):

- :func:`explain` - narrate a small backward pass node by node, or a model's gradient flow.
- :class:`GradientMonitor` - per-layer gradient/update/activation statistics while training;
  ``.verdicts()`` -> list of :class:`Verdict`, ``.report()``, ``.to_html()``, ``.plot(path)``,
  ``.save(path)``; :func:`diagnose` judges a saved history; :class:`Thresholds` tunes it.
- :func:`lr_find` - the learning-rate range test -> :class:`LRFinderResult`.
- :func:`attribute` - gradient-based attribution (saliency, grad x input, integrated
  gradients) -> :class:`Attribution`.
- ``retrograd.diagnostics.cli_hooks`` - the functions behind ``retrograd train --monitor``,
  ``retrograd doctor``, ``retrograd lr-find`` and ``retrograd attribute``.
"""

from __future__ import annotations

from .attribution import Attribution, attribute  # noqa: F401
from .explain import Explanation, ModuleExplanation, explain  # noqa: F401
from .lr_finder import LRFinderResult, lr_find  # noqa: F401
from .monitor import GradientMonitor, load_history, plot_history  # noqa: F401
from .verdicts import KINDS, Thresholds, Verdict, diagnose  # noqa: F401

__all__ = ["explain"]

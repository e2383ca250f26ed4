"""Anomaly mode: find the first op whose forward or backward made a NaN or an Inf."""

from __future__ import annotations

import os
import traceback

from .grad_mode import STATE

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class detect_anomaly:  # noqa: N801
    """Context manager: raise at the first op whose output or gradient is not finite.

    The error names the op and the line of user code that created it.

    >>> import retrograd as rg
    >>> x = rg.tensor([0.0], requires_grad=True)
    >>> with rg.autograd.detect_anomaly():
    ...     try:
    ...         (x.log() * 0).sum().backward()
    ...     except RuntimeError as e:
    ...         print("'Log'" in str(e))
    True
    """

    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan

    def __enter__(self):
        self._prev = (STATE.anomaly, STATE.anomaly_check_nan)
        STATE.anomaly = True
        STATE.anomaly_check_nan = self.check_nan
        return self

    def __exit__(self, *exc):
        STATE.anomaly, STATE.anomaly_check_nan = self._prev
        return False


class set_detect_anomaly(detect_anomaly):  # noqa: N801
    def __init__(self, mode: bool, check_nan: bool = True):
        super().__init__(check_nan)
        self._mode = mode

    def __enter__(self):
        self._prev = (STATE.anomaly, STATE.anomaly_check_nan)
        STATE.anomaly = self._mode
        STATE.anomaly_check_nan = self.check_nan
        return self


def is_anomaly_enabled() -> bool:
    return STATE.anomaly


def user_frame() -> str:
    """The innermost stack frame outside retrograd, as 'file:line in func: code'."""
    for fr in reversed(traceback.extract_stack()[:-1]):
        if not os.path.abspath(fr.filename).startswith(_PKG_DIR):
            return f'File "{fr.filename}", line {fr.lineno}, in {fr.name}\n    {fr.line}'
    return "<unknown>"

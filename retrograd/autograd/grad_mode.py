"""Global grad mode: ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``inference_mode``."""

from __future__ import annotations

import functools


class _State:
    __slots__ = ("enabled", "anomaly", "anomaly_check_nan")

    def __init__(self):
        self.enabled = True
        self.anomaly = False
        self.anomaly_check_nan = True


STATE = _State()


def is_grad_enabled() -> bool:
    return STATE.enabled


class _GradModeContext:
    """Base for the grad-mode managers; each works as a context manager and a decorator."""

    _mode: bool = True

    def __enter__(self):
        self._prev = STATE.enabled
        STATE.enabled = self._mode
        return self

    def __exit__(self, *exc):
        STATE.enabled = self._prev
        return False

    def __call__(self, fn):
        mode = self._mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = STATE.enabled
            STATE.enabled = mode
            try:
                return fn(*args, **kwargs)
            finally:
                STATE.enabled = prev

        return wrapper


class no_grad(_GradModeContext):  # noqa: N801
    """Disable graph recording: results have ``requires_grad=False`` and no ``grad_fn``.

    >>> import retrograd as rg
    >>> x = rg.ones(2, requires_grad=True)
    >>> with rg.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    _mode = False


class enable_grad(_GradModeContext):  # noqa: N801
    """Re-enable graph recording inside ``no_grad``."""

    _mode = True


class set_grad_enabled(_GradModeContext):  # noqa: N801
    """Set grad mode on or off, as a function, a context manager or a decorator."""

    def __init__(self, mode: bool):
        self._mode = bool(mode)
        self._prev = STATE.enabled
        STATE.enabled = self._mode  # takes effect at once when called as a function

    def __enter__(self):
        return self

    def __call__(self, fn):
        STATE.enabled = self._prev  # used as a decorator: undo the eager switch
        return super().__call__(fn)


class inference_mode(_GradModeContext):  # noqa: N801
    """Like ``no_grad`` (retrograd has no separate inference tensors)."""

    def __init__(self, mode: bool = True):
        self._mode = not mode

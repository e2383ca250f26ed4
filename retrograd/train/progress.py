"""Progress display: a tqdm bar on a terminal, plain log lines when output goes to a file/pipe."""

from __future__ import annotations

import sys
import time


def fmt_duration(seconds: float) -> str:
    """``3723`` -> ``'1h02m03s'``; ``75`` -> ``'1m15s'``; ``4.2`` -> ``'4s'``."""
    s = int(round(max(0.0, seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    return f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """Shows step, loss, lr, throughput and ETA.

    With ``bar=True`` (a TTY) it draws a tqdm bar; otherwise it prints one plain line every
    ``log_every`` steps, with no control characters, so logs piped to a file stay readable.
    """

    def __init__(self, total: int, start: int, bar: bool, log_every: int, unit: str,
                 stream=None) -> None:
        self.total, self.step = total, start
        self.log_every = max(1, int(log_every))
        self.unit = unit
        self.stream = stream or sys.stdout
        self.t0 = time.perf_counter()
        self.start = start
        self._bar = None
        self._ema: float | None = None
        if bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=start, file=self.stream, unit="step",
                             dynamic_ncols=True, leave=True)

    def update(self, step: int, loss: float, lr: float, samples: float, dt: float) -> None:
        """Record that step ``step`` (``samples`` samples/tokens, ``dt`` seconds) finished."""
        done = step - self.step
        self.step = step
        # smoothed throughput: a single step's time is noisy
        self._ema = dt if self._ema is None else 0.9 * self._ema + 0.1 * dt
        rate = samples / max(self._ema, 1e-9)
        if self._bar is not None:
            self._bar.set_postfix_str(f"loss={loss:.4f} lr={lr:.2e} {rate:,.0f} {self.unit}/s",
                                      refresh=False)
            self._bar.update(done)
        elif step % self.log_every == 0 or step == self.total:
            elapsed = time.perf_counter() - self.t0
            per_step = elapsed / max(1, step - self.start)
            eta = fmt_duration(per_step * (self.total - step))
            self.write(f"step {step:>6}/{self.total} | loss {loss:.4f} | lr {lr:.2e} | "
                       f"{rate:,.0f} {self.unit}/s | eta {eta}")

    def write(self, msg: str) -> None:
        if self._bar is not None:
            self._bar.write(msg, file=self.stream)
        else:
            print(msg, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

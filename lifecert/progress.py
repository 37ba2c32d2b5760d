"""A small progress reporter for long commands (``generate``, ``replay``).

Usage::

    progress = Progress(total=1_000_000, label="generate", unit="retirees")
    for batch in work:
        ...
        progress.advance(len(batch))
    progress.close("1234 lines")          # final line, with an optional note

or as a context manager (``close()`` is called on exit)::

    with Progress(total, "replay", unit="events") as progress:
        ...

On a terminal it redraws one line in place (a bar, the count, the rate and the
estimated time left), at most a few times per second. On anything else (a pipe, a log
file, pytest's capture) it prints a plain line each time another tenth of ``total`` is
done, or every 10 seconds when ``total`` is unknown (``None`` or 0). ``close()`` always
prints one final line: count, elapsed time and rate. It never writes to stdout, so it can
run beside a command that writes its output there.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

__all__ = ["Progress"]

_BAR_WIDTH = 28


def _rate(count: float, seconds: float) -> str:
    if seconds <= 0:
        return "-"
    per_second = count / seconds
    if per_second >= 1_000_000:
        return f"{per_second / 1_000_000:.2f}M"
    if per_second >= 10_000:
        return f"{per_second / 1000:.0f}k"
    return f"{per_second:.0f}"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Report progress of ``total`` units of work on ``stream`` (default ``sys.stderr``).

    ``advance(n)`` records ``n`` more units done; ``close(note)`` prints the final line.
    Cheap enough to call ``advance`` per item, but calling it per batch is cheaper.
    """

    def __init__(
        self,
        total: int | None,
        label: str,
        stream: TextIO | None = None,
        *,
        unit: str = "items",
        min_interval: float = 0.25,
    ) -> None:
        self.total = total if total and total > 0 else None
        self.label = label
        self.unit = unit
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.done = 0
        self.closed = False
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._min_interval = min_interval
        self._start = time.monotonic()
        self._last_draw = self._start
        self._next_step = 1  # next tenth of ``total`` to report (non-TTY)
        self._drawn_width = 0
        self._stride = 1  # units between two reads of the clock
        self._next_check = 1
        self._last_check = self._start

    # -- public API -----------------------------------------------------------------
    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units done; redraw if it is time to.

        Cheap when called per item: the clock is read only every ``_stride`` units, a
        stride that adapts so that it is read a few dozen times per second at most.
        """
        self.done += n
        if self.done >= self._next_check:
            self._check()

    def close(self, note: str | None = None) -> None:
        """Print the final line (count, elapsed, rate, and ``note`` if given). Idempotent."""
        if self.closed:
            return
        self.closed = True
        elapsed = time.monotonic() - self._start
        text = (
            f"{self.label}: {self.done:,} {self.unit} in {elapsed:.1f}s "
            f"({_rate(self.done, elapsed)} {self.unit}/s)"
        )
        if note:
            text += f"; {note}"
        if self._tty and self._drawn_width:
            self.stream.write("\r" + " " * self._drawn_width + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close("interrupted" if exc_type is not None else None)

    # -- drawing --------------------------------------------------------------------
    def _check(self) -> None:
        now = time.monotonic()
        # Aim at about 50 clock reads per second whatever the rate of ``advance`` calls.
        if now - self._last_check < 0.01:
            self._stride = min(self._stride * 2, 1 << 20)
        elif now - self._last_check > 0.05 and self._stride > 1:
            self._stride //= 2
        self._last_check = now
        self._next_check = self.done + self._stride
        if self._tty:
            if now - self._last_draw >= self._min_interval:
                self._last_draw = now
                self._draw(now)
        elif self.total is not None:
            if self.done * 10 >= self._next_step * self.total and self.done < self.total:
                self._next_step = self.done * 10 // self.total + 1
                self._line(now)
            # never step over the next tenth
            tenth = -(-self._next_step * self.total // 10)
            self._next_check = max(self.done + 1, min(self._next_check, tenth))
        elif now - self._last_draw >= 10.0:
            self._last_draw = now
            self._line(now)

    def _draw(self, now: float) -> None:
        elapsed = now - self._start
        rate = _rate(self.done, elapsed)
        if self.total is not None:
            fraction = min(1.0, self.done / self.total)
            filled = int(fraction * _BAR_WIDTH)
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            left = ""
            if 0 < self.done < self.total and elapsed > 0:
                left = f" ETA {_duration((self.total - self.done) * elapsed / self.done)}"
            text = (
                f"{self.label} [{bar}] {fraction * 100:5.1f}% "
                f"{self.done:,}/{self.total:,} {self.unit} {rate}/s{left}"
            )
        else:
            text = f"{self.label}: {self.done:,} {self.unit} {rate}/s"
        pad = max(0, self._drawn_width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._drawn_width = len(text)

    def _line(self, now: float) -> None:
        elapsed = now - self._start
        if self.total is not None:
            head = f"{self.label}: {self.done * 100 // self.total}% {self.done:,}/{self.total:,}"
        else:
            head = f"{self.label}: {self.done:,}"
        self.stream.write(
            f"{head} {self.unit} ({_rate(self.done, elapsed)}/s, {_duration(elapsed)})\n"
        )
        self.stream.flush()

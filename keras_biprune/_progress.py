"""What the user sees while work runs: progress over generations and one line per phase.

Both write plain text: on a terminal (or in a notebook) a progress line is
redrawn in place with ``\\r``; anywhere else (a log file, a pipe, CI) they
print plain lines, never ANSI escape codes, and counts print as integers
(``evaluations: 28``, not ``28.0000``). With Keras' interactive logging off
(``keras.config.disable_interactive_logging()``) lines go to this module's
logger instead of stdout.
"""

import logging
import sys
import time

import numpy as np

logger = logging.getLogger(__name__)

TICK_SECONDS = 30
"""Outside a terminal, the fewest seconds between two lines within a generation."""


class Progress:
    """Progress over generations, with the history's last values.

    ``update`` shows a finished generation; ``tick`` shows the candidates
    scored while one is under way, from the first candidate on (redrawn in
    place on a terminal; elsewhere a line at the first candidate, then at
    most one every `TICK_SECONDS` since the last line). ``verbose=2`` prints plain lines on a
    terminal too. ``unit`` names what is counted (``"block 3/12"``).
    """

    def __init__(self, generations, verbose, keys, start=0, unit="generation"):
        self.keys = keys
        self.unit = unit
        self.target = generations
        self.verbose = verbose
        self.done = start
        self.start_time = time.perf_counter()
        self._open_line = 0     # width of a line drawn in place and not yet ended
        self._last_tick = None

    def elapsed(self):
        return time.perf_counter() - self.start_time

    def line(self, generation, record):
        """The text of one update: ``generation 3/6 - 12s - best: 0.8125 - evaluations: 28``."""
        digits = len(str(self.target))
        parts = [f"{self.unit} {generation:>{digits}}/{self.target}", f"{self.elapsed():.0f}s"]
        parts += [f"{k}: {format_value(record[k])}" for k in self.keys if k in record]
        return " - ".join(parts)

    def update(self, generation, record):
        """Shows generation ``generation`` finished, with ``record``'s values."""
        self.done, self._last_tick = generation, time.perf_counter()
        if self.verbose:
            self._show(self.line(generation, record), end=generation >= self.target)

    def tick(self, evaluations):
        """Shows ``evaluations`` plans scored so far, within the generation under way."""
        if not self.verbose:
            return
        now = time.perf_counter()
        in_place = self.verbose == 1 and _in_place()
        if not in_place and self._last_tick is not None and now - self._last_tick < TICK_SECONDS:
            return
        self._last_tick = now
        self._show(self.line(self.done, {"evaluations": evaluations}), end=False)

    def close(self, generation):
        """Ends the line of a run stopped before its last generation."""
        if self._open_line:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self._open_line = 0

    def _show(self, text, end):
        if not _to_stdout():
            logger.info("%s", text)
            return
        stream = sys.stdout
        if self.verbose == 1 and _in_place():
            pad = " " * max(0, self._open_line - len(text))
            stream.write(f"\r{text}{pad}{chr(10) if end else ''}")
            self._open_line = 0 if end else len(text)
        else:
            stream.write(text + "\n")
        stream.flush()


class Phases:
    """One line per phase of a long job, with the time of day and the phase just ended.

    ``start("fine-tuning", "12 epochs")`` after a search prints
    ``[13:46:42] fine-tuning: 12 epochs (search took 0:01:40)``; ``done()``
    prints the total and each phase's time. ``show=False`` times a phase
    without a line (another object prints its own).

    Example:

    ```python
    phases = Phases(verbose=1)
    phases.start("search", "bilevel, 50% of the FLOPs")
    phases.start("fine-tuning", "12 epochs")
    phases.done()
    ```
    """

    def __init__(self, verbose=1):
        self.verbose = verbose
        self.started = time.perf_counter()
        self.current = None
        self.durations = {}
        self._since = self.started

    def start(self, name, detail="", show=True):
        ended = self._end()
        if show:
            took = f" ({ended[0]} took {clock(ended[1])})" if ended else ""
            self._show(f"{name}{': ' + detail if detail else ''}{took}")
        self.current = name

    def done(self):
        """Ends the last phase; prints the total time and each phase's."""
        self._end()
        self.current = None
        self._show(f"done: {clock(time.perf_counter() - self.started)} (" + ", ".join(
            f"{name} {clock(seconds)}" for name, seconds in self.durations.items()) + ")")

    def _end(self):
        """``(name, seconds)`` of the phase that ends now, or None."""
        now = time.perf_counter()
        name, self._since, since = self.current, now, self._since
        if name is None:
            return None
        self.durations[name] = self.durations.get(name, 0) + now - since
        return name, now - since

    def _show(self, text):
        if not self.verbose:
            return
        text = f"[{time.strftime('%H:%M:%S')}] {text}"
        if _to_stdout():
            print(text, flush=True)
        else:
            logger.info("%s", text)


def clock(seconds):
    """``H:MM:SS`` of a duration."""
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def format_value(value):
    """Integers as integers, other numbers with 4 decimals (or in e-notation when tiny)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):d}"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if value == 0 or not np.isfinite(value) or abs(value) >= 1e-3:
            return f"{value:.4f}"
        return f"{value:.4e}"
    return str(value)


def fit_verbosity(verbose):
    """``model.fit``'s ``verbose`` for ours: 1 (a bar redrawn with ANSI codes) only where
    lines are redrawn in place; one plain line per epoch (2) in a log file or a pipe."""
    return 2 if verbose == 1 and not _in_place() else verbose


def interactive(stream):
    """Whether ``stream`` is a terminal (a closed or odd stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _to_stdout():
    """Whether lines go to stdout: Keras' interactive logging is on (or Keras is not loaded)."""
    keras = sys.modules.get("keras")
    return keras is None or keras.config.is_interactive_logging_enabled()


def _in_place():
    """Whether stdout can redraw a line in place: a terminal, or a Jupyter kernel."""
    return interactive(sys.stdout) or "ipykernel" in sys.modules

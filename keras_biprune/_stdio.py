"""Capturing what native code (TensorFlow's C++ logging) writes to the process's stderr.

TensorFlow's converters and start-up code write to file descriptor 2
directly, below Python's ``sys.stderr``, and some of it regardless of
``TF_CPP_MIN_LOG_LEVEL``. `captured_stderr` redirects the descriptor to a
temporary file for the length of a block and gives back the text, so the
caller can drop known chatter and replay the rest. The descriptor is always
restored.
"""

import contextlib
import os
import re
import sys
import tempfile

# A TensorFlow/absl C++ log line: severity letter, date, time, thread, file:line].
_NATIVE_LOG = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:[\d.]+\s+\d+ [^\]]+\] ?(.*)$")


@contextlib.contextmanager
def captured_stderr():
    """Redirects file descriptor 2 for the block; yields a list that then holds the text.

    Where the descriptor cannot be redirected (no fd 2), nothing is captured
    and the list stays empty.
    """
    captured = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield captured
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", errors="replace"))


def replay(text, drop=()):
    """Writes ``text`` to ``sys.stderr`` without native INFO lines and lines matching ``drop``.

    Args:
        text: what `captured_stderr` captured.
        drop: regular expressions; a line matching one (``re.search``) is
            dropped. Native WARNING, ERROR and FATAL lines, and any other
            text, are kept unless they match.
    """
    kept = []
    for line in text.splitlines():
        native = _NATIVE_LOG.match(line)
        if native and native.group(1) == "I":
            continue
        if any(re.search(pattern, line) for pattern in drop):
            continue
        kept.append(line)
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")
        sys.stderr.flush()

"""Keep TensorFlow's start-up notices off the console, and its real warnings on it.

TensorFlow's C++ side prints notices such as "oneDNN custom operations are on" and "All
log messages before absl::InitializeLog() ..." straight to the process's stderr (file
descriptor 2) while it loads, whatever TF_CPP_MIN_LOG_LEVEL says (measured, TF 2.21).
In a Spark job they reach the user's console once per Python worker. While a model loads,
:func:`native_stderr_filtered` sends descriptor 2 to a temporary file and afterwards
copies back every line that is not such a notice (info lines, the absl preamble,
TFLite's delegate notice), so warnings and errors still show.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

NOTICE = re.compile(r"^(I\d{4} |WARNING: All log messages before absl::InitializeLog|INFO: Created TensorFlow Lite)")


def is_notice(line: str) -> bool:
    return bool(NOTICE.match(line))


@contextlib.contextmanager
def native_stderr_filtered():
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (some notebooks): nothing to filter
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode("utf-8", "replace").splitlines(True) if not is_notice(ln)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()

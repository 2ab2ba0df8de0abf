"""The one exception type for bad user input (paths, flags, files).

Entry scripts catch it and print a single line `error: <message>` with a non-zero exit, instead of
a traceback; everything else is a bug and keeps its traceback.
"""
import sys


class InputError(ValueError):
    """Bad input from the user: the message names the file or flag and how to fix it."""


def warn(message: str) -> None:
    """One line `warning: <message>` on stderr: something the user should know that does not stop the run."""
    print(f"warning: {message}", file=sys.stderr)

"""The one exception type for bad user input (paths, flags, files).

Entry scripts catch it and print a single line `error: <message>` with a non-zero exit, instead of
a traceback; everything else is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input from the user: the message names the file or flag and how to fix it."""

"""The toolkit's user-facing error. Owns nothing else; imports nothing from interp."""


class UsageError(Exception):
    """Bad user input; the CLIs print the message on one line and exit 2."""

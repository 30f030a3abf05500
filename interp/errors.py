"""The toolkit's user-facing errors. Owns nothing else; imports nothing from interp."""


class UsageError(Exception):
    """Bad user input; the CLIs print the message on one line and exit 2."""


class ConfigError(UsageError, ValueError):
    """An invalid config value, raised by a config dataclass's ``__post_init__``.
    A ``ValueError`` too, so callers that validate with ``except ValueError`` still work."""

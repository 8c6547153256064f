"""The one base of every expected failure.

Each module raises its own subclass (ImageError, BundleError, ...), which names the thing that
went wrong; the CLI catches this base, prints the message on one line and exits 2.
"""


class DetectionError(Exception):
    """An input, option, file or environment problem the user can fix; the message says how."""

"""User-facing errors.

Library code raises :class:`FaceswapError` for anything a user can fix (bad path, wrong option,
model from another preset). The CLI prints its message as one line on stderr and exits non-zero,
without a traceback. Programming errors stay ordinary exceptions.
"""


class FaceswapError(Exception):
    """A problem with the user's input or environment; the message names it and the fix."""

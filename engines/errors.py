"""Errors a user can cause (bad spec value, missing file, malformed data line).

The CLI maps `UserError` to exit code 2 and prints its message, which names the
file, field or line at fault and says how to fix it.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input, with a message that names the place and the fix."""

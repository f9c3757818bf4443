"""The one exception the store raises for problems a user can cause or fix."""

from __future__ import annotations


class StoreError(Exception):
    """A store problem a user can act on: the message names the file, run or version."""

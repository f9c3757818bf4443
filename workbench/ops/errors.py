"""The one exception type for mistakes a user can fix, and the translation into it.

Engines raise `UserError` (specs raise its subclass `SpecError`), the store raises
`StoreError`; an operation wraps its work in `user_errors()` so that both front ends only
ever catch `OpError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class OpError(Exception):
    """A mistake a user can fix; the message names the thing at fault and the fix."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Re-raise UserError / SpecError / StoreError raised inside as OpError (same message)."""
    try:
        yield
    except OpError:
        raise
    except Exception as e:
        if _is_user_error(e):
            raise OpError(str(e)) from e
        raise


def as_op_error(error: BaseException) -> OpError | None:
    """The OpError a user-fixable error (OpError, UserError, SpecError, StoreError) reads as;
    None for anything else (a bug: the front end shows its traceback)."""
    if isinstance(error, OpError):
        return error
    if isinstance(error, Exception) and _is_user_error(error):
        return OpError(str(error))
    return None


def _is_user_error(error: Exception) -> bool:
    from engines.errors import UserError
    from store.errors import StoreError

    return isinstance(error, UserError | StoreError)

"""Renamed keyword arguments: the old name keeps working for a while, with a warning.

>>> import warnings
>>> @renamed_keyword("profile", "variant")
... def op(x, *, variant="published"):
...     return variant
>>> with warnings.catch_warnings(record=True) as w:
...     warnings.simplefilter("always")
...     op(1, profile="corrected"), w[0].category.__name__
('corrected', 'DeprecationWarning')
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["renamed_keyword"]

F = TypeVar("F", bound=Callable[..., Any])


def renamed_keyword(old: str, new: str) -> Callable[[F], F]:
    """Accept ``old=`` as a deprecated spelling of ``new=`` (a DeprecationWarning names the new
    keyword; passing both is a TypeError)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{fn.__qualname__}() got both {old}= and {new}= ({old}= is the old name)")
                warnings.warn(f"{fn.__qualname__}(): {old}= is deprecated, use {new}=", DeprecationWarning,
                              stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap

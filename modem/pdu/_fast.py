"""Fast constructors for the frozen dataclasses on the decode hot path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar, cast

__all__ = ["fast_constructor"]

T = TypeVar("T")


def fast_constructor(cls: type[T]) -> Callable[..., T]:
    """A positional constructor for a frozen dataclass that skips the frozen __setattr__."""
    # A frozen dataclass __init__ pays for object.__setattr__ on every field; decoding builds
    # about twenty fields per PDU, so the decoder fills the instance directly instead (same
    # object, same equality; two to four times cheaper). Every field must be passed, in
    # declaration order.
    names = [f.name for f in fields(cast(Any, cls))]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [f"def make({', '.join(names)}):", "    o = _new(_cls)"]
    if "__slots__" in cls.__dict__:
        for name in names:
            namespace[f"_set_{name}"] = getattr(cls, name).__set__
        lines += [f"    _set_{name}(o, {name})" for name in names]
    else:
        lines.append("    d = o.__dict__")
        lines += [f"    d[{name!r}] = {name}" for name in names]
    lines.append("    return o")
    exec("\n".join(lines), namespace)
    return cast(Callable[..., T], namespace["make"])

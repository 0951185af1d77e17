"""Frozen dataclasses made in one step.

A frozen dataclass's __init__ sets each field through object.__setattr__ (its own __setattr__
refuses): ~0.8 k instructions a field. The stages make a few of these a buyer a lead (a request,
a reply, an answer, a bid), so those classes get an __init__ with the very parameters, defaults
and default factories the dataclass wrote, that puts the fields into the instance's __dict__
at once, as records' from_row does. Everything else (equality, hash, repr, replace, asdict,
the refusal to assign) is the dataclass's.
"""
from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, TypeVar

T = TypeVar("T")


class _NoValue:
    def __repr__(self) -> str:
        return "<factory>"


_NO_VALUE = _NoValue()


def one_step_init(cls: type[T]) -> type[T]:
    """Give a frozen dataclass (no __post_init__, slots, ClassVar, InitVar, init=False or
    keyword-only field: refused) the one-step __init__; its own stays as _dataclass_init."""
    found = fields(cls)          # type: ignore[arg-type]
    params = getattr(cls, "__dataclass_params__", None)
    if (params is None or not params.frozen or "__slots__" in cls.__dict__
            or hasattr(cls, "__post_init__") or len(cls.__dataclass_fields__) != len(found)   # type: ignore[attr-defined]
            or any(not f.init or f.kw_only for f in found)):
        raise TypeError(f"{cls.__name__}: not a plain frozen dataclass")
    scope: dict[str, Any] = {"_NO_VALUE": _NO_VALUE}
    arguments, items = [], []
    for f in found:
        if f.default is not MISSING:
            scope[f"_default_{f.name}"] = f.default
            arguments.append(f"{f.name}=_default_{f.name}")
            items.append(f"{f.name!r}: {f.name}")
        elif f.default_factory is not MISSING:
            scope[f"_factory_{f.name}"] = f.default_factory
            arguments.append(f"{f.name}=_NO_VALUE")
            items.append(f"{f.name!r}: _factory_{f.name}() if {f.name} is _NO_VALUE else {f.name}")
        else:
            arguments.append(f.name)
            items.append(f"{f.name!r}: {f.name}")
    exec(f"def __init__(self, {', '.join(arguments)}):\n"          # noqa: S102 (names from fields)
         f"    self.__dict__.update({{{', '.join(items)}}})\n", scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls._dataclass_init = cls.__init__   # type: ignore[attr-defined]
    cls.__init__ = init                  # type: ignore[method-assign]
    return cls

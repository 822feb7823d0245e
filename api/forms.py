"""Form and query-string decoding shared by the provider dialects: tolerant of non-UTF-8 input."""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import unquote_to_bytes


def decode_pairs(raw: bytes) -> list[tuple[str, str | None]]:
    """Decode `a=1&b=2` keeping order and repeats; a value that is not UTF-8 becomes None
    (so the dialect can answer with its own error) and a name that is not UTF-8 is dropped."""
    pairs: list[tuple[str, str | None]] = []
    for chunk in raw.split(b"&"):
        if not chunk:
            continue
        name_raw, _, value_raw = chunk.partition(b"=")
        try:
            name = unquote_to_bytes(name_raw.replace(b"+", b" ")).decode()
        except UnicodeDecodeError:
            continue
        try:
            value: str | None = unquote_to_bytes(value_raw.replace(b"+", b" ")).decode()
        except UnicodeDecodeError:
            value = None
        pairs.append((name, value))
    return pairs


class FieldProblem(StrEnum):
    """Why a form or query field cannot be used as given."""

    NOT_UTF8 = "not valid UTF-8"
    REPEATED = "given more than once with different values"


class FieldError(ValueError):
    """A field the dialect must refuse, in its own error format."""

    def __init__(self, name: str, problem: FieldProblem) -> None:
        super().__init__(f"{name} is {problem}")
        self.name = name
        self.problem = problem


class FormFields:
    """Query and form pairs grouped by name; a name given twice must carry one value."""

    def __init__(self, pairs: list[tuple[str, str | None]], *, fold_case: bool = True) -> None:
        self._fold = fold_case
        self._values: dict[str, list[str | None]] = {}
        for name, value in pairs:
            self._values.setdefault(name.lower() if fold_case else name, []).append(value)

    def raw(self, name: str) -> str | None:
        """The one value of `name` as sent (None when absent), or FieldError."""
        values = self._values.get(name.lower() if self._fold else name)
        if not values:
            return None
        if len(values) == 1 and values[0] is not None:  # as nearly every field comes
            return values[0] or ""
        if any(v is None for v in values):
            raise FieldError(name, FieldProblem.NOT_UTF8)
        if len(set(values)) > 1:
            raise FieldError(name, FieldProblem.REPEATED)
        return values[0] or ""

    def names(self) -> set[str]:
        """Every field name present (lower-cased when case is folded)."""
        return set(self._values)

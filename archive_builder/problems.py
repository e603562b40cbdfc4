"""Problems found in the data: collected, never raised one by one."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any


class Severity(str, Enum):
    error = "error"
    warning = "warning"

    @property
    def label(self) -> str:
        return "错误" if self is Severity.error else "警告"


_LONG_QUOTE = 80
_LONG_QUOTED = re.compile("「([^」]{%d,})」" % (_LONG_QUOTE + 1))


def _shorten(match: re.Match[str]) -> str:
    text = match.group(1)
    return f"「{text[:40]}…{text[-10:]}」（共 {len(text)} 个字符）"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the data, located as precisely as the source allows."""

    severity: Severity
    message: str
    hint: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None
    village: str | None = None
    household_id: str | None = None
    field: str | None = None

    def __post_init__(self) -> None:
        # a value quoted in a message (「…」) is shown in part when long: a pasted 1 MB name
        # must not fill the screen and the report
        for name in ("message", "hint"):
            text = getattr(self, name)
            if text and len(text) > _LONG_QUOTE:
                object.__setattr__(self, name, _LONG_QUOTED.sub(_shorten, text))

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.error

    def to_json(self) -> dict[str, Any]:
        """Return the stable JSON shape used by ``validate --json`` and manifest.json."""
        data = asdict(self)
        data["severity"] = self.severity.value
        return {
            key: data[key]
            for key in (
                "severity",
                "file",
                "line",
                "column",
                "village",
                "household_id",
                "field",
                "message",
                "hint",
            )
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Problem:
        """Inverse of :meth:`to_json`."""
        fields = {k: data.get(k) for k in ("hint", "file", "line", "column", "village", "household_id", "field")}
        return cls(Severity(data["severity"]), data["message"], **fields)

    def location(self) -> str:
        """Return ``file:line:column`` (as much as is known)."""
        parts = [self.file or "?"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def format(self) -> str:
        """Return the one-paragraph Chinese text shown to a clerk."""
        where = self.location()
        field = f" [{self.field}]" if self.field else ""
        text = f"{self.severity.label} {where}{field}：{self.message}"
        if self.hint:
            text += f"\n    提示：{self.hint}"
        return text


def error(message: str, hint: str | None = None, **where: Any) -> Problem:
    return Problem(Severity.error, message, hint, **where)


def warning(message: str, hint: str | None = None, **where: Any) -> Problem:
    return Problem(Severity.warning, message, hint, **where)


def count(problems: Iterable[Problem]) -> tuple[int, int]:
    """Return ``(errors, warnings)``."""
    errors = warnings = 0
    for problem in problems:
        if problem.is_error:
            errors += 1
        else:
            warnings += 1
    return errors, warnings


def escalate(problems: Iterable[Problem]) -> list[Problem]:
    """Return the problems with every warning turned into an error (``--strict``)."""
    return [p if p.is_error else replace(p, severity=Severity.error) for p in problems]

"""Body validation at the edge with zod v3's wording (api.md §0.1), then typed attrs models.

A schema is a dict of field name → Rule. `parse(schema, body, Model)` collects every issue
(like zod), raises ValidationFailed, or returns Model(**clean) with unknown keys dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import attrs

from agentim.errors import ValidationFailed
from agentim.protocol.jsontypes import type_name
from agentim.protocol.textrules import is_blank, utf16_len

T = TypeVar("T")
MISSING: Final = object()
Issue = tuple[str, str]  # (path, message)


@attrs.frozen(kw_only=True)
class Rule:
    """One field's rule; subclasses check the value's own type."""

    optional: bool = False
    nullable: bool = False
    default: Any = MISSING

    def check(self, value: Any, path: str, issues: list[Issue]) -> Any:
        if value is MISSING:
            if self.default is not MISSING:
                return self.default
            if not self.optional:
                issues.append((path, "Required"))
            return MISSING
        if value is None and self.nullable:
            return None
        return self.check_value(value, path, issues)

    def check_value(self, value: Any, path: str, issues: list[Issue]) -> Any:
        raise NotImplementedError

    def openapi(self) -> dict[str, Any]:
        return {}


@attrs.frozen(kw_only=True)
class Str(Rule):
    min: int | None = None
    max: int | None = None
    blank_message: str | None = None  # "… cannot be only whitespace"
    pattern: str | None = None
    pattern_message: str = "Invalid"
    custom: Callable[[str], str | None] | None = None

    def check_value(self, value: Any, path: str, issues: list[Issue]) -> Any:
        if not isinstance(value, str):
            issues.append((path, f"Expected string, received {type_name(value)}"))
            return MISSING
        before = len(issues)
        length = utf16_len(value)
        if self.min is not None and length < self.min:
            issues.append((path, f"String must contain at least {self.min} character(s)"))
        if self.max is not None and length > self.max:
            issues.append((path, f"String must contain at most {self.max} character(s)"))
        if self.pattern is not None and not re.search(self.pattern, value):
            issues.append((path, self.pattern_message))
        if self.blank_message and is_blank(value):
            issues.append((path, self.blank_message))
        if self.custom is not None and (problem := self.custom(value)):
            issues.append((path, problem))
        return value if len(issues) == before else MISSING

    def openapi(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "string"}
        if self.min is not None:
            spec["minLength"] = self.min
        if self.max is not None:
            spec["maxLength"] = self.max
        return spec


@attrs.frozen(kw_only=True)
class Int(Rule):
    min: int | None = None
    max: int | None = None

    def check_value(self, value: Any, path: str, issues: list[Issue]) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            issues.append((path, f"Expected number, received {type_name(value)}"))
            return MISSING
        if isinstance(value, float) and not value.is_integer():
            issues.append((path, "Expected integer, received float"))
            return MISSING
        before = len(issues)
        if self.min is not None and value < self.min:
            issues.append((path, f"Number must be greater than or equal to {self.min}"))
        if self.max is not None and value > self.max:
            issues.append((path, f"Number must be less than or equal to {self.max}"))
        return int(value) if len(issues) == before else MISSING

    def openapi(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.min, "maximum": self.max}


@attrs.frozen(kw_only=True)
class Bool(Rule):
    def check_value(self, value: Any, path: str, issues: list[Issue]) -> Any:
        if not isinstance(value, bool):
            issues.append((path, f"Expected boolean, received {type_name(value)}"))
            return MISSING
        return value

    def openapi(self) -> dict[str, Any]:
        return {"type": "boolean"}


@attrs.frozen(kw_only=True)
class Enum(Rule):
    values: tuple[str, ...] = ()

    def check_value(self, value: Any, path: str, issues: list[Issue]) -> Any:
        if value in self.values:
            return value
        if not isinstance(value, str):
            expected = " | ".join(f"'{v}'" for v in self.values)
            issues.append((path, f"Expected {expected}, received {type_name(value)}"))
            return MISSING
        expected = " | ".join(f"'{v}'" for v in self.values)
        issues.append((path, f"Invalid enum value. Expected {expected}, received '{value}'"))
        return MISSING

    def openapi(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.values)}


@attrs.frozen(kw_only=True)
class List(Rule):
    item: Rule = attrs.field(factory=Str)
    min: int | None = None
    max: int | None = None

    def check_value(self, value: Any, path: str, issues: list[Issue]) -> Any:
        if not isinstance(value, list):
            issues.append((path, f"Expected array, received {type_name(value)}"))
            return MISSING
        before = len(issues)
        if self.min is not None and len(value) < self.min:
            issues.append((path, f"Array must contain at least {self.min} element(s)"))
        if self.max is not None and len(value) > self.max:
            issues.append((path, f"Array must contain at most {self.max} element(s)"))
        clean = [self.item.check(v, _join(path, str(i)), issues) for i, v in enumerate(value)]
        return clean if len(issues) == before else MISSING

    def openapi(self) -> dict[str, Any]:
        return {"type": "array", "items": self.item.openapi(), "maxItems": self.max}


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def collect(schema: Mapping[str, Rule], body: Any) -> tuple[dict[str, Any], list[Issue]]:
    if not isinstance(body, dict):
        return {}, [("(root)", f"Expected object, received {type_name(body)}")]
    issues: list[Issue] = []
    clean: dict[str, Any] = {}
    for name, rule in schema.items():
        value = rule.check(body.get(name, MISSING), name, issues)
        if value is not MISSING:
            clean[name] = value
    return clean, issues


def fields_of(issues: Sequence[Issue]) -> list[dict[str, str]]:
    return [{"field": path, "message": message} for path, message in issues]


def parse_dict(schema: Mapping[str, Rule], body: Any) -> dict[str, Any]:
    """Validate; the result holds only keys that were present (or defaulted)."""
    clean, issues = collect(schema, body)
    if issues:
        raise ValidationFailed(fields_of(issues))
    return clean


def parse(schema: Mapping[str, Rule], body: Any, model: Callable[..., T]) -> T:
    return model(**parse_dict(schema, body))

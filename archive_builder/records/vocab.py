"""Open vocabularies (户类型, 致贫原因, 与户主关系 …) kept as data files in ``records/vocab/``.

Each file holds ``title``, ``labels`` (canonical Chinese labels) and ``variants`` (other
spellings seen in the field → canonical label). Looking a value up ignores blanks and the
difference between full-width and half-width brackets. A known variant is normalised
silently; an unknown label is kept as written and reported by the validator as a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import yaml

#: every vocabulary the record format uses, by file name (without .yaml)
NAMES = (
    "household_type",
    "poverty_attribute",
    "poverty_status",
    "cause",
    "monitor_category",
    "monitor_risk",
    "relation",
    "education",
    "student_status",
    "health",
    "labour",
    "insurance",
    "measure_category",
    "evidence_type",
    "procedure_kind",
    "unit_level",
    "dangerous_house",
    "eliminate_method",
    "ethnicity",
)

_FOLD = str.maketrans({"（": "(", "）": ")", "\u3000": "", " ": "", "\t": ""})


def _key(text: str) -> str:
    return text.translate(_FOLD)


@dataclass(frozen=True)
class Vocabulary:
    """One open list of labels with its known variants."""

    name: str
    title: str
    labels: tuple[str, ...]
    variants: dict[str, str] = field(default_factory=dict)
    #: relation vocabulary only: label → implied sex (男/女)
    sex: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lookup = {_key(label): label for label in self.labels}
        for variant, canonical in self.variants.items():
            lookup.setdefault(_key(variant), canonical)
        object.__setattr__(self, "_lookup", lookup)

    def normalize(self, value: str) -> str:
        """Return the canonical label for ``value``, or ``value`` stripped when unknown."""
        lookup: dict[str, str] = self.__dict__["_lookup"]
        return lookup.get(_key(value), value.strip())

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and value in self.labels


@cache
def get(name: str) -> Vocabulary:
    """Return the vocabulary stored in ``records/vocab/<name>.yaml``."""
    if name not in NAMES:
        raise KeyError(name)
    text = (
        resources.files(__package__)
        .joinpath("vocab", f"{name}.yaml")
        .read_text("utf-8")
    )
    # libyaml's loader when present: the pure-Python one is a noticeable part of a cold
    # `archive-builder packet`.
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    return Vocabulary(
        name=name,
        title=str(data.get("title", name)),
        labels=tuple(str(label) for label in data.get("labels", [])),
        variants={str(k): str(v) for k, v in (data.get("variants") or {}).items()},
        sex={str(k): str(v) for k, v in (data.get("sex") or {}).items()},
    )


def normalize(name: str, value: str) -> str:
    """Return the canonical label of ``value`` in vocabulary ``name``."""
    return get(name).normalize(value)


def implied_sex(relation: str) -> str | None:
    """Return 男/女 when the relation to the household head implies it (之子 → 男)."""
    return get("relation").sex.get(relation)

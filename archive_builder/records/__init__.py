"""Household records: models, vocabularies, ID numbers and loading a data directory."""

from __future__ import annotations

from .models import FIELD_LABELS, Household, IncomeYear, Member, label_of

__all__ = ["FIELD_LABELS", "Household", "IncomeYear", "Member", "label_of"]

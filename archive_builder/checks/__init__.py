"""Policy audit of household records (问题台账): rules as data, the ledger as .xlsx / PDF / JSON.

``run_audit(data_dir)`` returns an ``AuditResult``; ``write_xlsx`` / ``write_pdf`` write it;
``household_ledger`` and ``village_ledger`` give the rows of one household or village.
"""

from __future__ import annotations

from .audit import (
    COLUMNS,
    STATUSES,
    AuditResult,
    LedgerRow,
    audit_dataset,
    household_ledger,
    run_audit,
    village_ledger,
)
from .ledger import LedgerError, read_ledger, write_pdf, write_xlsx
from .rules import RuleFileError, RuleSet, load_rule_set, rule_files

__all__ = [
    "COLUMNS", "STATUSES", "AuditResult", "LedgerError", "LedgerRow", "RuleFileError", "RuleSet", "audit_dataset",
    "household_ledger", "load_rule_set", "read_ledger", "rule_files", "run_audit", "village_ledger", "write_pdf",
    "write_xlsx",
]

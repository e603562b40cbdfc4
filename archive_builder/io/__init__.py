"""Spreadsheets in and out: import from and export to the national system's one-row-per-person
sheets."""

"""The version store and what reads it: history, comparisons and their reports, verification
of paper copies."""

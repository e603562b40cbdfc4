"""The string distance behind "did you mean …" suggestions (户编号, command-line options).

A module of its own, outside the core, so the CLI's suggestions and the loader's 户编号
suggestions share it without the CLI reaching into the loader.
"""

from __future__ import annotations


def edit_distance(a: str, b: str, stop: int) -> int:
    """Levenshtein distance of ``a`` and ``b``, giving up (returning ``stop``) beyond ``stop``."""
    if abs(len(a) - len(b)) >= stop:
        return stop
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) >= stop:
            return stop
        previous = current
    return min(previous[-1], stop)

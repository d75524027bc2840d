"""Match an unknown settings key to the known key it is probably a misspelling of."""

from __future__ import annotations

import difflib

# Share of matching characters (difflib's ratio) from which an unknown key counts as a
# misspelt setting. 0.8 flags 'inital_pool_size' and 'max_connection' but stays silent
# on unrelated keys such as 'name' or 'targets'.
NEAR_MISS_CUTOFF = 0.8
# Keys at least this long also count as misspelt when one edit away, which catches swapped
# letters in short names ('hots' for 'host') that the ratio rates below the cutoff.
NEAR_MISS_MIN_EDIT_LENGTH = 4


def _one_edit_apart(first: str, second: str) -> bool:
    """Tell whether one insertion, deletion, substitution or swap of neighbours turns `first` into `second`."""
    if first == second or abs(len(first) - len(second)) > 1:
        return False
    if len(first) == len(second):
        differences = [i for i, (a, b) in enumerate(zip(first, second)) if a != b]
        if len(differences) == 1:
            return True
        i, j = (differences + [0, 0])[:2]
        return len(differences) == 2 and j == i + 1 and first[i] == second[j] and first[j] == second[i]
    shorter, longer = sorted((first, second), key=len)
    index = next((i for i, (a, b) in enumerate(zip(shorter, longer)) if a != b), len(shorter))
    return shorter[index:] == longer[index + 1:]


def closest_key(name: str, known: tuple[str, ...]) -> str | None:
    """Return the known key that `name` is probably a misspelling of, or None."""
    matches = difflib.get_close_matches(name, known, n=1, cutoff=NEAR_MISS_CUTOFF)
    if matches:
        return matches[0]
    for candidate in known:
        if len(candidate) >= NEAR_MISS_MIN_EDIT_LENGTH and _one_edit_apart(name, candidate):
            return candidate
    return None

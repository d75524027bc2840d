"""Decide which new line keeps the end-of-line comment of the legacy MAX_CLIENTS_POOL line.

The legacy value was both the startup size and the ceiling, so its comment may describe
either. A comment that mentions a ceiling or a limit stays true on the MAX_POOL_SIZE
line, and any other comment (usually about preallocation) on the INITIAL_POOL_SIZE line.
"""

from __future__ import annotations

import re

# Words that mark a comment as describing the pool's ceiling, in English and Chinese.
_CEILING_WORDS = re.compile(r"ceiling|limit|maximum|上限|最大", re.IGNORECASE)


def comment_key(comment: str) -> str:
    """Return "max_pool_size" when the comment describes the ceiling, else "initial_pool_size"."""
    return "max_pool_size" if _CEILING_WORDS.search(comment) else "initial_pool_size"

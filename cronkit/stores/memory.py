"""The ``memory://`` store: the SQL store on a private in-memory SQLite database.

It shares every line of query code with the SQLite and PostgreSQL stores, so the
contract suite runs the same logic everywhere; nothing survives the process.
Use it where the store is not what is tested.
"""

from __future__ import annotations

from .sql import SQLStore


class MemoryStore(SQLStore):
    """``read_only`` (or ``memory://?mode=ro``): an empty store that refuses writes."""

    def __init__(self, url: str = "memory://", read_only: bool = False):
        super().__init__(url, read_only=read_only)

"""Runtime fixtures: the PostgreSQL server a fault test may stop and start (the store suite's).

Only with the server extra installed: the store's fixtures need SQLAlchemy, and most runtime
tests do not (they must still run without it).
"""

from __future__ import annotations

from importlib.util import find_spec

if find_spec("sqlalchemy") is not None:
    from tests.store.conftest import own_pg  # noqa: F401 (re-exported fixture)

"""The mock driver: a persistent, multi-user fake cloud with Deltacloud's mock fixtures.

Modules: :mod:`.driver` (MockDriver, the operations), :mod:`.store` (SQLite and blob files),
:mod:`.fixtures` (seed data, realms, hardware profiles), :mod:`.records` (stored records to
models), :mod:`.keys` (fake key material), :mod:`.failures` (errors on purpose).
"""

from .driver import MockDriver

__all__ = ["MockDriver"]

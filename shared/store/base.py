"""The store interface: a handful of row operations with conditional writes.

Every logical table holds rows addressed by a partition key `pk` and a sort key `sk` (both
strings). A row's `data` is a JSON-serialisable dict and its `rev` a revision number that starts at
1 and grows by one on every update. Writes that can race are conditional: `put_new` succeeds only
if the row is absent, `update` and `delete` only if the row still has the revision the caller read.
A failed condition raises `Conflict`; callers re-read and decide. Nothing here knows what a key or a
secret is, and nothing here ever sees plaintext key material (callers wrap it first).

Two backends implement it: `sqlite.SqliteStore` (embedded default) and
`tablestore.TablestoreStore` (scale-out). `tests/store/` runs one contract suite against both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import ServiceUnavailableTemporary

# Logical table -> physical table name, in one place. Tablestore names allow [A-Za-z0-9_].
TABLES = {
    "accounts": "kms_accounts",  # pk=account id, sk="" : KMS service status per account
    "keys": "kms_keys",  # pk=scope (account/region), sk=key id
    "key_versions": "kms_key_versions",  # pk=scope/key id, sk=version id
    "aliases": "kms_aliases",  # pk=scope, sk=alias name
    "secrets": "kms_secrets",  # pk=scope, sk=secret name
    "secret_versions": "kms_secret_versions",  # pk=scope/secret name, sk=version id
    "access_keys": "kms_access_keys",  # pk=access key id, sk=""
    "nonces": "kms_nonces",  # pk=access key id/nonce, sk="" (Tablestore; SQLite uses nonces.py)
    "import_tokens": "kms_import_tokens",  # pk=scope/key id, sk=token
    "ops": "kms_ops",  # pk="timer/<job>" (its last run) or "health/<host>" (the health probe), sk=""
}


class Conflict(Exception):
    """A conditional write found the row in another state than expected."""


class StoreUnavailable(ServiceUnavailableTemporary):
    """The store did not answer within its deadline (or kept failing): the call answers the documented
    503 ServiceUnavailableTemporary. A write that raises this may or may not have been applied; the
    callers order their writes so that either outcome is a consistent state."""


class NonceTableFull(Exception):
    """More nonces within the replay window than the store can hold: refuse, never forget one."""


class Item(NamedTuple):
    """One row as read. Immutable like the frozen dataclass it was, and built on every store read:
    a named tuple is built in about half the time (a frozen dataclass sets each field through
    object.__setattr__)."""

    pk: str
    sk: str
    data: dict
    rev: int


@dataclass(frozen=True)
class Page:
    items: list[Item]
    # Sort key to pass as `start_after` for the next page, or None when this was the last page.
    next: str | None


class Store(ABC):
    """Row storage with conditional writes. `table` is a logical name from TABLES."""

    @abstractmethod
    def get(self, table: str, pk: str, sk: str = "") -> Item | None:
        """The row, or None."""

    @abstractmethod
    def put_new(self, table: str, pk: str, sk: str, data: dict) -> Item:
        """Insert a row that must not exist yet (rev 1); raise Conflict if it does."""

    @abstractmethod
    def update(self, table: str, pk: str, sk: str, data: dict, expected_rev: int) -> Item:
        """Replace `data` if the row exists with `expected_rev`; the new rev is expected_rev + 1."""

    @abstractmethod
    def delete(self, table: str, pk: str, sk: str = "", expected_rev: int | None = None) -> None:
        """Delete the row. With `expected_rev`, only if it still has that revision (else Conflict);
        without, deleting an absent row is not an error."""

    @abstractmethod
    def query(self, table: str, pk: str, start_after: str | None = None, limit: int = 100) -> Page:
        """Rows of one partition in ascending `sk` order, after `start_after`, at most `limit`."""

    @abstractmethod
    def scan(self, table: str, start_after: tuple[str, str] | None = None, limit: int = 100) -> list[Item]:
        """Rows of the whole table in ascending (pk, sk) order after `start_after`, at most `limit`.
        Used by timer sweeps; a short page (fewer than `limit`) means the end."""

    @abstractmethod
    def count(self, table: str, pk: str) -> int:
        """Number of rows in one partition."""

    def query_all(self, table: str, pk: str, page_size: int = 500):
        """Every row of one partition, paging under the hood."""
        start = None
        while True:
            page = self.query(table, pk, start_after=start, limit=page_size)
            yield from page.items
            if page.next is None:
                return
            start = page.next

    def scan_all(self, table: str, page_size: int = 500):
        """Every row of a table, paging under the hood."""
        start = None
        while True:
            items = self.scan(table, start_after=start, limit=page_size)
            yield from items
            if len(items) < page_size:
                return
            start = (items[-1].pk, items[-1].sk)

    def changes(self, table: str) -> int | None:
        """A count that moves whenever any process sharing this store writes to `table`, or None
        where the store keeps none (Tablestore: instances share nothing but the service). Lets a
        cache of the table (access keys, on every request) check itself without a store read."""
        return None

    def remember_nonce(self, key: str, now: int, ttl: int) -> bool:
        """Record a request nonce until `now + ttl`; True if it is new (or its earlier use has
        expired), False if it is a replay. May raise NonceTableFull rather than forget a nonce.

        Two instances receiving the same nonce at once race on `put_new`, so exactly one wins.
        """
        try:
            self.put_new("nonces", key, "", {"e": now + ttl})
            return True
        except Conflict:
            old = self.get("nonces", key, "")
            if old is None or old.data.get("e", 0) > now:
                return False
            try:
                self.update("nonces", key, "", {"e": now + ttl}, old.rev)
                return True
            except Conflict:
                return False

    # Seams for a process that keeps the store open across calls (the local runner). Each is a no-op
    # where the backend keeps nothing of the kind; the SQLite store overrides them.

    def release(self) -> None:  # noqa: B027 - a no-op unless the backend holds something (SQLite)
        """End whatever this thread holds open between calls (SQLite: its read snapshot), before the
        thread goes idle. Called by the runner after each call in a call thread and when idle."""

    def nonce_usage(self, now: int) -> tuple[int, int] | None:
        """(live nonces, slots) of a nonce table kept in this host's memory, or None where nonces are
        rows of the store (Tablestore: the service bounds them)."""
        return None

    def save_nonces(self) -> None:  # noqa: B027 - a no-op unless the backend keeps a local table (SQLite)
        """Copy a nonce table kept outside the store's files into them (at shutdown), so that replay
        protection survives a reboot; nothing to do where nonces are rows of the store."""

    def close(self) -> None:  # noqa: B027 - optional: only some backends hold connections
        """Release connections (optional)."""

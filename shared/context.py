"""`Context`: what an action or a timer job knows about the call it serves.

Its own module so that the domain modules (keys, versions, secrets...) depend on this small record,
never on the Function Compute wrapper (`runtime.py`) that builds it.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import registry
from .config import Config
from .store import Store


@dataclass(slots=True)  # built on every request: slots, not frozen, make it several times cheaper
class Context:
    request_id: str
    account_id: str
    region: str
    access_key_id: str
    source_ip: str
    now: float  # epoch seconds; timer jobs take it from the trigger time
    store: Store
    config: Config
    action: registry.Action | None = None  # None for timer jobs
    # Secrets the authorization read for this call (name -> record), taken once by the action's own
    # read (secrets.get), so that check and action see one row and the row is read once.
    read: dict | None = None

    @property
    def scope(self) -> str:
        """Partition of every per-account, per-region resource."""
        return f"{self.account_id}/{self.region}"

    def arn(self, kind: str, name: str) -> str:
        return f"acs:kms:{self.region}:{self.account_id}:{kind}/{name}"

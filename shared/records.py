"""Typed records: every kind of stored row, where it lives, and the one conditional-write retry policy.

Each record class names its logical table and builds its own partition and sort key from its
identity, so no action or timer job spells a table name or a storage key. A record carries the
revision it was read at (`rev`, 0 = not stored yet); `insert` stores a new one (Conflict if the row
exists), `save` replaces it only if nobody wrote it since it was read, `remove` deletes it on the
same condition. The stored JSON layout is the one the rows had before these classes existed, so no
data moves; fields a newer writer stored and this code does not know ride along in `extra`.

    record        table            partition key          sort key
    Account       accounts         account id             ""
    Key           keys             scope (account/region) key id
    KeyVersion    key_versions     scope/key id           version id
    Alias         aliases          scope                  "alias/<name>"
    Secret        secrets          scope                  secret name
    SecretVersion secret_versions  scope/secret name      "<version id>@<random>"
    ImportToken   import_tokens    scope/key id           token
    AccessKeyRow  access_keys      access key id          ""

`retrying(attempt)` is the single policy for read-modify-write races: re-run `attempt` (which
re-reads) on Conflict with jittered backoff, bounded in tries and time, and then answer
ServiceUnavailableTemporary: the common 503 every action documents, which clients may retry.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from . import errors
from .store import Conflict, Item, Store

if TYPE_CHECKING:  # typing.Self is 3.11+; Function Compute's python3.10 runs this module too
    from typing_extensions import Self

_NOTHING: Mapping = MappingProxyType({})
T = TypeVar("T")

# The conflict policy: at most this many attempts within this many seconds, sleeping a random
# time up to base * 2**attempt (capped) between them so racing writers spread out.
CONFLICT_ATTEMPTS = 12
CONFLICT_SECONDS = 2.0
_BACKOFF_BASE, _BACKOFF_CAP = 0.002, 0.1


def retrying(attempt: Callable[[], T], *, attempts: int = CONFLICT_ATTEMPTS, seconds: float = CONFLICT_SECONDS) -> T:
    """`attempt()` until it returns without Conflict; ServiceUnavailableTemporary when it keeps losing."""
    deadline = time.monotonic() + seconds
    for n in range(attempts):
        try:
            return attempt()
        except Conflict:
            if n + 1 == attempts or time.monotonic() >= deadline:
                break
            time.sleep(random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** n)))
    raise errors.ServiceUnavailableTemporary()


# Records are plain (not slotted) dataclasses: loading one fills its __dict__ from the decoded row
# in a few dict operations, where calling the generated __init__ with two dozen keyword arguments
# cost more than the rest of a DescribeKey.
@dataclass(kw_only=True)
class Record:
    TABLE: ClassVar[str]
    _IDENTITY: ClassVar[tuple[str, ...]] = ()  # fields in the storage key but not in the row's data
    _NAMES: ClassVar[dict[str, str]] = {}  # field -> stored name, where they differ
    # Set below for each class from its fields:
    _STORED: ClassVar[tuple[str, ...]] = ()  # fields in the row's data
    _ROW_NAMES: ClassVar[tuple[str, ...]] = ()  # the names of the last row found to hold exactly those
    _KNOWN: ClassVar[frozenset] = frozenset()  # the same, as a set
    _REQUIRED: ClassVar[frozenset] = frozenset()  # stored fields without a default
    _DEFAULTS: ClassVar[dict] = {}  # stored fields with a plain default
    _FACTORIES: ClassVar[tuple] = ()  # (field, factory) of fields whose default is made per record

    rev: int = 0
    extra: Mapping = field(default_factory=dict, repr=False)

    # Every record class defines `where(self) -> (pk, sk)`, its storage key, and the classmethod
    # `identity_of(item) -> dict`, its identity fields read back from a stored row's key.
    if TYPE_CHECKING:
        def where(self) -> tuple[str, str]: ...

        @classmethod
        def identity_of(cls, item: Item) -> dict: ...

    # --- row <-> record ----------------------------------------------------------------------------

    @classmethod
    def from_item(cls, item: Item, **identity) -> Self:
        """The record a decoded row holds. The row's dict becomes the record's attribute dict: a row
        this code wrote has exactly the stored fields in order, and then loading costs a tuple
        comparison and a few stores. Older or newer rows take the careful path.

        The comparison is against the last row's names found equal to the fields (`_ROW_NAMES`):
        the JSON decoder hands out the same name objects row after row, and comparing those goes by
        identity, where comparing them with the field names compares every string's characters."""
        data = item.data
        if cls._NAMES:
            data = {field_name: data[stored] for field_name, stored in cls._NAMES.items() if stored in data}
        record = cls.__new__(cls)
        names = tuple(data)
        if names != cls._ROW_NAMES:
            if names != cls._STORED:
                data = cls._completed(data)
            else:
                cls._ROW_NAMES = names
        data.update(identity)
        data["rev"] = item.rev
        record.__dict__ = data
        return record

    @classmethod
    def _completed(cls, data: dict) -> dict:
        """A row from another version of this code: defaults for fields it lacks, fields this code
        does not know kept aside in `extra` (written back unchanged); TypeError if a required field
        is missing."""
        missing = cls._REQUIRED - data.keys()
        if missing:
            raise TypeError(f"{cls.__name__} row lacks {sorted(missing)}")
        values = dict(cls._DEFAULTS)
        values.update((k, v) for k, v in data.items() if k in cls._KNOWN)
        for name, factory in cls._FACTORIES:
            if name not in values:
                values[name] = factory()
        values["extra"] = {k: v for k, v in data.items() if k not in cls._KNOWN}
        return values

    def data(self) -> dict:
        values = self.__dict__
        out = {name: values[name] for name in self._STORED}
        if self._NAMES:
            out = {self._NAMES.get(k, k): v for k, v in out.items()}
        if self.extra:
            out.update(self.extra)
        return out

    # --- reads -------------------------------------------------------------------------------------

    @classmethod
    def _load(cls, store: Store, pk: str, sk: str, **identity) -> Self | None:
        item = store.get(cls.TABLE, pk, sk)
        return None if item is None else cls.from_item(item, **identity)

    @classmethod
    def _partition(cls, store: Store, pk: str, **identity) -> Iterator[Self]:
        for item in store.query_all(cls.TABLE, pk):
            yield cls.from_item(item, **identity)

    @classmethod
    def scan(cls, store: Store, broken: Callable[[Item, Exception], None] | None = None) -> Iterator[Self]:
        """Every record of the kind (timer sweeps). A row that is not a valid record goes to
        `broken(item, error)` when given, so one bad row does not stop a sweep."""
        for item in store.scan_all(cls.TABLE):
            try:
                record = cls.from_item(item, **cls.identity_of(item))
            except (TypeError, ValueError, KeyError) as exc:
                if broken is None:
                    raise
                broken(item, exc)
                continue
            yield record

    # --- writes (conditional) ----------------------------------------------------------------------

    def insert(self, store: Store) -> Self:
        """Store a new record; Conflict if one exists already."""
        pk, sk = self.where()
        self.rev = store.put_new(self.TABLE, pk, sk, self.data()).rev
        return self

    def save(self, store: Store) -> Self:
        """Replace the stored record if it still has the revision this one was read at; else Conflict."""
        pk, sk = self.where()
        self.rev = store.update(self.TABLE, pk, sk, self.data(), self.rev).rev
        return self

    def remove(self, store: Store, *, conditional: bool = True) -> None:
        """Delete the record: only at the revision it was read at (Conflict otherwise), or whatever
        its revision with `conditional=False` (an absent row is then not an error)."""
        pk, sk = self.where()
        store.delete(self.TABLE, pk, sk, self.rev if conditional else None)


def _split_scope(pk: str) -> tuple[str, str]:
    """"account/region/rest" -> ("account/region", "rest"); account ids and regions hold no "/"."""
    account, region, rest = pk.split("/", 2)
    return f"{account}/{region}", rest


@dataclass(kw_only=True)
class Account(Record):
    TABLE = "accounts"
    _IDENTITY = ("account_id",)
    _NAMES: ClassVar[dict[str, str]] = {"status": "Status", "opened_at": "OpenedAt"}
    account_id: str
    status: str
    opened_at: int = 0

    def where(self) -> tuple[str, str]:
        return self.account_id, ""

    @classmethod
    def identity_of(cls, item: Item) -> dict:
        return {"account_id": item.pk}

    @classmethod
    def get(cls, store: Store, account_id: str) -> Account | None:
        return cls._load(store, account_id, "", account_id=account_id)


@dataclass(kw_only=True)
class Key(Record):
    TABLE = "keys"
    _IDENTITY = ("scope",)
    scope: str
    key_id: str
    creation_date: int
    creator: str
    description: str
    key_spec: str
    key_usage: str
    origin: str
    protection_level: str
    state: str
    delete_date: int | None = None
    automatic_rotation: bool = False
    rotation_interval: int | None = None
    last_rotation_date: int | None = None
    primary_key_version: str | None = None
    version_count: int = 0
    material_expire_time: int | None = None
    material_fingerprint: str | None = None  # wrapped SHA-256 of imported material (byok.py)
    imported_material: str | None = None  # EXTERNAL keys: the material, wrapped (versions.import_into)
    tags: dict = field(default_factory=dict)
    policy: Any = None
    creator_type: str = "User"
    deletion_protection: bool = False
    deletion_protection_description: str = ""

    def where(self) -> tuple[str, str]:
        return self.scope, self.key_id

    @classmethod
    def identity_of(cls, item: Item) -> dict:
        return {"scope": item.pk}

    @classmethod
    def get(cls, store: Store, scope: str, key_id: str) -> Key | None:
        item = store.get(cls.TABLE, scope, key_id)  # the hot path: no detour through _load
        return None if item is None else cls.from_item(item, scope=scope)

    @classmethod
    def all(cls, store: Store, scope: str) -> Iterator[Key]:
        return cls._partition(store, scope, scope=scope)

    @classmethod
    def count(cls, store: Store, scope: str) -> int:
        return store.count(cls.TABLE, scope)


@dataclass(kw_only=True)
class KeyVersion(Record):
    TABLE = "key_versions"
    _IDENTITY = ("scope", "key_id")
    scope: str
    key_id: str
    version_id: str
    seq: int
    creation_date: int
    material: str  # wrapped under the root key, AAD versions.material_aad

    def where(self) -> tuple[str, str]:
        return f"{self.scope}/{self.key_id}", self.version_id

    @classmethod
    def identity_of(cls, item: Item) -> dict:
        scope, key_id = item.pk.rsplit("/", 1)
        return {"scope": scope, "key_id": key_id}

    @classmethod
    def get(cls, store: Store, scope: str, key_id: str, version_id: str) -> KeyVersion | None:
        return cls._load(store, f"{scope}/{key_id}", version_id, scope=scope, key_id=key_id)

    @classmethod
    def all(cls, store: Store, scope: str, key_id: str) -> Iterator[KeyVersion]:
        return cls._partition(store, f"{scope}/{key_id}", scope=scope, key_id=key_id)


@dataclass(kw_only=True)
class Alias(Record):
    TABLE = "aliases"
    _IDENTITY = ("scope", "name")
    scope: str
    name: str  # "alias/<name>"
    key_id: str
    creation_date: int = 0

    def where(self) -> tuple[str, str]:
        return self.scope, self.name

    @classmethod
    def identity_of(cls, item: Item) -> dict:
        return {"scope": item.pk, "name": item.sk}

    @classmethod
    def get(cls, store: Store, scope: str, name: str) -> Alias | None:
        return cls._load(store, scope, name, scope=scope, name=name)

    @classmethod
    def all(cls, store: Store, scope: str) -> Iterator[Alias]:
        for item in store.query_all(cls.TABLE, scope):
            yield cls.from_item(item, scope=scope, name=item.sk)


@dataclass(kw_only=True)
class Secret(Record):
    TABLE = "secrets"
    _IDENTITY = ("scope",)
    scope: str
    name: str
    secret_type: str
    creator: str
    description: str
    encryption_key_id: str
    create_time: int
    update_time: int
    planned_delete_time: int | None = None
    tags: dict = field(default_factory=dict)
    policy: Any = None
    versions: list = field(default_factory=list)  # [{"id", "created"}], oldest first
    stages: dict = field(default_factory=dict)  # label -> version id
    incarnation: str | None = None  # random per CreateSecret (secrets.read_value's cache)

    def where(self) -> tuple[str, str]:
        return self.scope, self.name

    @classmethod
    def identity_of(cls, item: Item) -> dict:
        return {"scope": item.pk}

    @classmethod
    def get(cls, store: Store, scope: str, name: str) -> Secret | None:
        item = store.get(cls.TABLE, scope, name)
        return None if item is None else cls.from_item(item, scope=scope)

    @classmethod
    def all(cls, store: Store, scope: str) -> Iterator[Secret]:
        return cls._partition(store, scope, scope=scope)

    @classmethod
    def count(cls, store: Store, scope: str) -> int:
        return store.count(cls.TABLE, scope)


@dataclass(kw_only=True)
class SecretVersion(Record):
    TABLE = "secret_versions"
    _IDENTITY = ("scope", "name", "row")
    scope: str
    name: str  # the secret's name
    row: str  # the row's own key: "<version id>@<random>" (secrets.py), the bare id in older rows
    version_id: str
    created: int
    data_type: str
    key_id: str  # the KMS key the data key is encrypted under
    data_key: str
    iv: str
    value: str

    def where(self) -> tuple[str, str]:
        return f"{self.scope}/{self.name}", self.row

    @classmethod
    def identity_of(cls, item: Item) -> dict:
        scope, name = _split_scope(item.pk)
        return {"scope": scope, "name": name, "row": item.sk}

    @classmethod
    def get(cls, store: Store, scope: str, name: str, row: str) -> SecretVersion | None:
        return cls._load(store, f"{scope}/{name}", row, scope=scope, name=name, row=row)

    @classmethod
    def drop(cls, store: Store, scope: str, name: str, row: str) -> None:
        """Delete a value row by its key, whatever its revision (absent is not an error)."""
        store.delete(cls.TABLE, f"{scope}/{name}", row)


@dataclass(kw_only=True)
class ImportToken(Record):
    TABLE = "import_tokens"
    _IDENTITY = ("scope", "key_id", "token")
    scope: str
    key_id: str
    token: str
    spec: str
    algorithm: str
    expires: int
    private: str  # the wrapping private key, wrapped under the root key
    created: float = 0.0  # when it was made (byok keeps the newest; 0 in rows from before it was kept)

    def where(self) -> tuple[str, str]:
        return f"{self.scope}/{self.key_id}", self.token

    @classmethod
    def identity_of(cls, item: Item) -> dict:
        scope, key_id = item.pk.rsplit("/", 1)
        return {"scope": scope, "key_id": key_id, "token": item.sk}

    @classmethod
    def get(cls, store: Store, scope: str, key_id: str, token: str) -> ImportToken | None:
        return cls._load(store, f"{scope}/{key_id}", token, scope=scope, key_id=key_id, token=token)


@dataclass(kw_only=True)
class AccessKeyRow(Record):
    """An access key as stored (identity.AccessKey is the checked, unwrapped view requests use)."""
    TABLE = "access_keys"
    _IDENTITY = ("access_key_id",)
    access_key_id: str
    account_id: str
    secret: str  # wrapped under the root key
    status: str
    policies: list | None = None
    created: int = 0

    def where(self) -> tuple[str, str]:
        return self.access_key_id, ""

    @classmethod
    def identity_of(cls, item: Item) -> dict:
        return {"access_key_id": item.pk}

    @classmethod
    def get(cls, store: Store, access_key_id: str) -> AccessKeyRow | None:
        return cls._load(store, access_key_id, "", access_key_id=access_key_id)


def _describe(cls: type[Record]) -> None:
    stored = [f for f in fields(cls) if f.name not in ("rev", "extra") + cls._IDENTITY]
    cls._STORED = tuple(f.name for f in stored)
    cls._KNOWN = frozenset(cls._STORED)
    cls._REQUIRED = frozenset(f.name for f in stored if f.default is MISSING and f.default_factory is MISSING)
    cls._DEFAULTS = {f.name: f.default for f in stored if f.default is not MISSING}
    cls._FACTORIES = tuple((f.name, f.default_factory) for f in fields(cls) if f.default_factory is not MISSING)
    cls.extra = _NOTHING  # what a record loaded on the fast path (no unknown fields) reads as `extra`


for _cls in (Account, Key, KeyVersion, Alias, Secret, SecretVersion, ImportToken, AccessKeyRow):
    _describe(_cls)
del _cls

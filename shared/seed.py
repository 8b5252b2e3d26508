"""Seed files: keys with fixed ids, aliases and material, and secrets, loaded into a store at start.

The test double (`mock_kms(seed=...)`) and the local runner (`alikms serve --seed FILE`) read the
same file, YAML or JSON (or a dict):

    seed: my-project-tests          # fixes generated material: same seed, same keys, every run
    region: cn-hangzhou             # default region of the entries (default: the service's)
    keys:
      - alias: alias/app            # or a list; the id is derived from seed, region and alias ...
        id: 2f6a0b5c-...            # ... unless given
        spec: Aliyun_AES_256        # KeySpec; usage, description, tags, enabled: false as you like
        rotation_interval: 30d      # automatic rotation
      - alias: alias/imported
        material: <base64>          # imported (BYOK) material; material_expires: 2030-01-01T00:00:00Z
      - alias: alias/signer
        spec: RSA_2048
        private_key: |              # RSA and SM2 keys cannot follow a seed: give them as PEM
          -----BEGIN PRIVATE KEY-----
    secrets:
      - name: db/password
        value: s3cret               # type: binary for base64 values; version_id (v1); key: alias/app

Ciphertexts made under a seeded key decrypt in every later run: the key id, the version id (derived
from the key id) and the material are all fixed. Without `seed` or `material`, material is random.
Loading is idempotent: what exists already is kept (a key must still have the same material, an
alias the same key), so a runner can load the file on every start. Aliases and secrets are created
through the actions' own code, with their validation; key rows are written here, since no action
creates a key with a given id.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import json
import re
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from . import byok, crypto, errors, keys, keyspecs, lifecycle, registry, versions
from .config import Config
from .context import Context
from .crypto import derive
from .models import KeyRotationInterval, parse_request
from .records import Alias, Key, Secret
from .store import Conflict, Store

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")  # what a ciphertext blob can name
_NAMESPACE = uuid.UUID("0d7f5a43-3f4b-4c8e-9a51-6b2f0c9e1d27")
_ROTATION = TypeAdapter(KeyRotationInterval)


class SeedError(ValueError):
    """A seed file that cannot be loaded as written; the message names the entry and the reason."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class SeedKey(_Entry):
    id: str | None = None
    alias: str | list[str] = Field(default_factory=list)
    spec: str = "Aliyun_AES_256"
    usage: str | None = None
    description: str = ""
    material: str | None = None
    material_expires: int | str | None = None
    private_key: str | None = None
    rotation_interval: int | str | None = None
    enabled: bool = True
    tags: dict[str, str] = Field(default_factory=dict)
    region: str | None = None

    @property
    def aliases(self) -> list[str]:
        return [self.alias] if isinstance(self.alias, str) else list(self.alias)


class SeedSecret(_Entry):
    name: str
    value: str
    type: str = "text"
    version_id: str = "v1"
    key: str | None = None
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    region: str | None = None


class Seed(_Entry):
    seed: str | None = None
    region: str | None = None
    keys: list[SeedKey] = Field(default_factory=list)
    secrets: list[SeedSecret] = Field(default_factory=list)


def load(source: str | Path | dict | Seed) -> Seed:
    """A seed from a YAML or JSON file, a dict, or a Seed; SeedError if malformed."""
    if isinstance(source, Seed):
        return source
    if not isinstance(source, dict):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SeedError(f"cannot read seed file {path}: {exc.strerror}") from None
        source = _parse(text, path.suffix.lower())
    try:
        return Seed.model_validate(source)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SeedError(f"seed: {where}: {first['msg']}") from None


def _parse(text: str, suffix: str) -> Any:
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SeedError(f"seed file is not valid JSON: {exc}") from None
    import yaml  # JSON is YAML too, so any other file is read as YAML

    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SeedError(f"seed file is not valid YAML: {exc}") from None


def apply(seed: Seed, store: Store, cfg: Config, now: float) -> dict:
    """Create what the seed describes and is not there yet. Returns the ids of the keys by entry."""
    key_ids = []
    for n, entry in enumerate(seed.keys):
        ctx = _context(store, cfg, entry.region or seed.region or cfg.region, now)
        try:
            key_ids.append(_key(ctx, seed, entry))
        except (errors.KmsError, ValueError) as exc:
            raise SeedError(f"seed: keys.{n}: {_reason(exc)}") from None
    for n, secret in enumerate(seed.secrets):
        ctx = _context(store, cfg, secret.region or seed.region or cfg.region, now)
        try:
            _secret(ctx, secret)
        except (errors.KmsError, ValueError) as exc:
            raise SeedError(f"seed: secrets.{n} ({secret.name}): {_reason(exc)}") from None
    return {"keys": key_ids, "secrets": [s.name for s in seed.secrets]}


def _reason(exc: Exception) -> str:
    return f"{exc.code}: {exc.detail}" if isinstance(exc, errors.KmsError) else str(exc)


def _context(store: Store, cfg: Config, region: str, now: float) -> Context:
    return Context("seed", cfg.account_id, region, cfg.access_key_id, "", now, store, cfg)


def _call(ctx: Context, action: str, params: dict[str, str]) -> None:
    """Run one action's own code (validation included) as the account, without the HTTP wrapper."""
    import importlib

    spec = registry.action(action)
    assert spec is not None, action  # the seed runs actions of the registry, named here
    handler = importlib.import_module(spec.module).handler
    handler.run(parse_request(handler.request_model, params), dataclasses.replace(ctx, action=spec))


def key_id(seed: Seed, entry: SeedKey, region: str) -> str:
    if entry.id is not None:
        if not _ID.match(entry.id):
            raise ValueError("id: 1-64 letters, digits and '-'")
        return entry.id
    if not entry.aliases:
        raise ValueError("a key needs an id or an alias")
    return str(uuid.uuid5(_NAMESPACE, f"{seed.seed or ''}/{region}/{entry.aliases[0]}"))


def _key(ctx: Context, seed: Seed, entry: SeedKey) -> str:
    spec = keyspecs.SPECS.get(entry.spec)
    if spec is None:
        raise ValueError(f"spec: unknown KeySpec {entry.spec!r}")
    kid = key_id(seed, entry, ctx.region)
    imported = entry.material is not None
    material = _material(seed, entry, kid, ctx.region)
    created = False
    if Key.get(ctx.store, ctx.scope, kid) is None:
        created = _create_key(ctx, entry, kid, material, imported)
    if not created and material is not None:  # there before (an earlier start, or another instance now)
        key = Key.get(ctx.store, ctx.scope, kid)
        vid = versions.version_id(kid, 1)
        if key is None or not hmac.compare_digest(versions.material(ctx, key, vid), material):
            raise ValueError(f"key {kid} exists with other material")
    for alias in entry.aliases:
        if Alias.get(ctx.store, ctx.scope, alias) is None:
            try:
                _call(ctx, "CreateAlias", {"AliasName": alias, "KeyId": kid})
            except errors.AliasAlreadyExists:
                pass  # another instance loading the same seed made it; checked below
        found = Alias.get(ctx.store, ctx.scope, alias)
        if found is None or found.key_id != kid:
            raise ValueError(f"{alias} already names another key")
    return kid


def _material(seed: Seed, entry: SeedKey, kid: str, region: str) -> bytes | None:
    """The fixed material of version 1, or None for random material."""
    if entry.material is not None:
        if entry.spec not in crypto.SYMMETRIC_SIZES:
            raise ValueError("material: only symmetric keys import material; give private_key")
        try:
            raw = base64.b64decode(entry.material, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("material: not base64") from None
        if len(raw) != crypto.SYMMETRIC_SIZES[entry.spec]:
            raise ValueError(f"material: {entry.spec} takes {crypto.SYMMETRIC_SIZES[entry.spec]} bytes")
        return raw
    if entry.private_key is not None:
        if entry.spec in crypto.SYMMETRIC_SIZES:
            raise ValueError("private_key: only for asymmetric keys")
        return derive.private_key_from_pem(entry.spec, entry.private_key)
    if seed.seed is not None:
        return derive.material(entry.spec, seed.seed.encode(), f"{region}/{kid}/1")
    return None


def _create_key(ctx: Context, entry: SeedKey, kid: str, material: bytes | None, imported: bool) -> bool:
    """Write the key row and its first version; False if another writer created the key first."""
    spec = keyspecs.SPECS[entry.spec]
    usage = entry.usage or spec.default_usage
    if usage not in spec.usages:
        raise ValueError(f"usage: {entry.spec} keys cannot be {usage}")
    if not crypto.spec_supported(entry.spec):
        raise ValueError(f"{entry.spec} needs OpenSSL 3 on this host")
    interval = None
    if entry.rotation_interval is not None:
        if imported or not spec.symmetric:
            raise ValueError("rotation_interval: only keys of symmetric, generated material rotate")
        try:
            interval = _ROTATION.validate_python(entry.rotation_interval)
        except ValidationError:
            raise ValueError("rotation_interval: 7 to 730 days, e.g. 30d or 2592000s") from None
    expires = _epoch(entry.material_expires) if entry.material_expires is not None else None
    if expires is not None and not imported:
        raise ValueError("material_expires: only for imported material")
    now = int(ctx.now)
    # The record CreateKey writes (functions/keys/create_key.py), with the id and material fixed here.
    key = Key(scope=ctx.scope, key_id=kid, creation_date=now, creator=ctx.account_id, description=entry.description,
              key_spec=entry.spec, key_usage=usage, origin="EXTERNAL" if imported else "Aliyun_KMS",
              protection_level="SOFTWARE", state=lifecycle.ENABLED if entry.enabled else lifecycle.DISABLED,
              automatic_rotation=interval is not None, rotation_interval=interval, last_rotation_date=now,
              version_count=1, material_expire_time=expires, tags=_tags(entry.tags))
    material = material if material is not None else crypto.new_key_material(entry.spec)
    if imported:  # imported material lives in the key record itself (versions.import_into)
        versions.import_into(ctx, key, material, now)
        key.material_fingerprint = byok.fingerprint(ctx, kid, material)
    else:  # the version row first: a key record never points at a version that is not there
        key.primary_key_version = versions.create(ctx, key, 1, material, now)
    try:
        key.insert(ctx.store)
    except Conflict:
        return False
    return True


def _tags(tags: dict[str, str]) -> dict[str, str]:
    from .tags import MAX_ON_CREATE, parse_tags

    return parse_tags([{"TagKey": k, "TagValue": v} for k, v in tags.items()], MAX_ON_CREATE)


def _epoch(value: int | str) -> int:
    if isinstance(value, int):
        return value
    import datetime

    try:
        return int(datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise ValueError("material_expires: epoch seconds or 2030-01-01T00:00:00Z") from None


def _secret(ctx: Context, secret: SeedSecret) -> None:
    if Secret.get(ctx.store, ctx.scope, secret.name) is not None:
        return
    params = {"SecretName": secret.name, "VersionId": secret.version_id, "SecretData": secret.value,
              "SecretDataType": secret.type, "Description": secret.description}
    if secret.key is not None:  # CreateSecret takes a key id or ARN; a seed may name the alias
        params["EncryptionKeyId"] = keys.key_id_from(ctx, secret.key)
    if secret.tags:
        params["Tags"] = json.dumps([{"TagKey": k, "TagValue": v} for k, v in secret.tags.items()])
    try:
        _call(ctx, "CreateSecret", params)
    except errors.ResourceExist:
        pass  # another instance loading the same seed created it first

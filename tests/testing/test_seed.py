"""Seed files: keys with fixed ids, aliases and material, and secrets; what one run encrypts, the
next decrypts."""

from __future__ import annotations

import base64
import json

import pytest
import yaml
from alibabacloud_kms20160120 import models
from alibabacloud_kms20160120.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from alikms.shared import seed as seeds
from alikms.shared.crypto import blob
from alikms.testing import mock_kms

MATERIAL = bytes(range(32))
SEED = {
    "seed": "tests of the seed loader",
    "keys": [
        {"alias": ["alias/app", "alias/app-2"], "description": "app data", "tags": {"team": "payments"}},
        {"id": "key-imported-0001", "alias": "alias/byok", "material": base64.b64encode(MATERIAL).decode(),
         "material_expires": "2099-01-01T00:00:00Z"},
        {"alias": "alias/signer", "spec": "EC_P256"},
        {"alias": "alias/rotating", "rotation_interval": "30d"},
        {"alias": "alias/off", "enabled": False},
        {"alias": "alias/elsewhere", "region": "cn-shanghai"},
    ],
    "secrets": [
        {"name": "db/password", "value": "s3cret", "key": "alias/app"},
        {"name": "tls/key", "value": base64.b64encode(b"\x00\x01binary").decode(), "type": "binary",
         "version_id": "2024-01", "tags": {"env": "prod"}},
    ],
}


def tea(region: str = "cn-hangzhou") -> Client:
    return Client(Config(access_key_id="LTAI5tSeed", access_key_secret="x", region_id=region))


def describe(key: str, region: str = "cn-hangzhou"):
    return tea(region).describe_key(models.DescribeKeyRequest(key_id=key)).body.key_metadata


def test_yaml_json_and_dict_give_the_same_seed(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SEED))
    (tmp_path / "s.json").write_text(json.dumps(SEED))
    (tmp_path / "s.seed").write_text(json.dumps(SEED))  # any other name is read as YAML, a superset of JSON
    loaded = [seeds.load(tmp_path / name) for name in ("s.yaml", "s.json", "s.seed")] + [seeds.load(SEED)]
    assert len({s.model_dump_json() for s in loaded}) == 1 and len(loaded[0].keys) == len(SEED["keys"])
    (tmp_path / "broken.yaml").write_text("keys: [unclosed")
    with pytest.raises(seeds.SeedError, match="not valid YAML"):
        seeds.load(tmp_path / "broken.yaml")
    with pytest.raises(seeds.SeedError, match="cannot read"):
        seeds.load(tmp_path / "missing.yaml")


def test_what_a_seed_creates():
    with mock_kms(seed=SEED) as kms:
        app = describe("alias/app")
        assert (app.description, app.key_state, app.origin) == ("app data", "Enabled", "Aliyun_KMS")
        assert describe("alias/app-2").key_id == app.key_id
        tags = tea().list_resource_tags(models.ListResourceTagsRequest(key_id=app.key_id)).body.tags.tag
        assert [(t.tag_key, t.tag_value) for t in tags] == [("team", "payments")]
        byok = describe("alias/byok")
        assert (byok.key_id, byok.origin, byok.material_expire_time) == ("key-imported-0001", "EXTERNAL",
                                                                         "2099-01-01T00:00:00Z")
        assert describe("alias/signer").key_spec == "EC_P256"
        assert describe("alias/rotating").automatic_rotation == "Enabled"
        assert describe("alias/rotating").rotation_interval == "2592000s"
        assert describe("alias/off").key_state == "Disabled"
        assert describe("alias/elsewhere", "cn-shanghai").arn.startswith("acs:kms:cn-shanghai:")
        with pytest.raises(ClientException):
            describe("alias/elsewhere")
        secret = tea().get_secret_value(models.GetSecretValueRequest(secret_name="db/password")).body
        assert secret.secret_data == "s3cret"
        described = tea().describe_secret(models.DescribeSecretRequest(secret_name="db/password")).body
        assert described.encryption_key_id == app.key_id
        binary = tea().get_secret_value(models.GetSecretValueRequest(secret_name="tls/key")).body
        assert (binary.secret_data_type, binary.version_id) == ("binary", "2024-01")
        assert kms.calls[0].action == "DescribeKey"  # seeding itself makes no requests


def test_what_one_run_encrypts_the_next_decrypts():
    with mock_kms(seed=SEED):
        blobs = {alias: tea().encrypt(models.EncryptRequest(key_id=alias, plaintext="cnVuIDE=")).body.ciphertext_blob
                 for alias in ("alias/app", "alias/byok")}
        signer = describe("alias/signer").key_id
        versions = tea().list_key_versions(models.ListKeyVersionsRequest(key_id=signer)).body
        version = versions.key_versions.key_version[0].key_version_id
        digest = base64.b64encode(b"\x11" * 32).decode()
        signature = tea().asymmetric_sign(models.AsymmetricSignRequest(
            key_id=signer, key_version_id=version, algorithm="ECDSA_SHA_256", digest=digest)).body.value
    with mock_kms(seed=SEED):  # a new state: new root key, new store, the same seed
        for ciphertext in blobs.values():
            assert tea().decrypt(models.DecryptRequest(ciphertext_blob=ciphertext)).body.plaintext == "cnVuIDE="
        verify = tea().asymmetric_verify(models.AsymmetricVerifyRequest(
            key_id=signer, key_version_id=version, algorithm="ECDSA_SHA_256", digest=digest, value=signature))
        assert verify.body.value is True
    with mock_kms(seed={**SEED, "seed": "another seed"}):
        with pytest.raises(ClientException) as err:
            tea().decrypt(models.DecryptRequest(ciphertext_blob=blobs["alias/app"]))
        assert err.value.code in ("InvalidParameter", "Forbidden.KeyNotFound")  # other ids, other material


def test_imported_material_is_the_material_given():
    with mock_kms(seed=SEED):
        ciphertext = tea().encrypt(models.EncryptRequest(key_id="alias/byok", plaintext="Ynlvaw==",
                                                         encryption_context={"k": "v"})).body.ciphertext_blob
    parsed = blob.parse(base64.b64decode(ciphertext))
    opened = AESGCM(MATERIAL).decrypt(parsed.iv, parsed.sealed, parsed.header + blob.context_aad({"k": "v"}))
    assert opened == b"byok"


def test_asymmetric_keys_from_pem():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    with mock_kms(seed={"keys": [{"alias": "alias/rsa", "spec": "RSA_2048", "usage": "ENCRYPT/DECRYPT",
                                  "private_key": pem}]}):
        key_id = describe("alias/rsa").key_id
        version = tea().list_key_versions(models.ListKeyVersionsRequest(key_id=key_id)).body
        vid = version.key_versions.key_version[0].key_version_id
        public = tea().get_public_key(models.GetPublicKeyRequest(key_id=key_id, key_version_id=vid)).body.public_key
        assert serialization.load_pem_public_key(public.encode()).public_numbers() == \
            rsa_key.public_key().public_numbers()
        sealed = rsa_key.public_key().encrypt(b"for the seeded key", padding.OAEP(
            mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
        plain = tea().asymmetric_decrypt(models.AsymmetricDecryptRequest(
            key_id=key_id, key_version_id=vid, algorithm="RSAES_OAEP_SHA_256",
            ciphertext_blob=base64.b64encode(sealed).decode())).body.plaintext
        assert base64.b64decode(plain) == b"for the seeded key"


@pytest.mark.parametrize("entry, message", [
    ({"keys": [{"alias": "alias/x", "colour": "red"}]}, "keys.0.colour"),
    ({"keys": [{"alias": "alias/x", "spec": "AES_999"}]}, "unknown KeySpec"),
    ({"keys": [{"alias": "alias/x", "material": "c2hvcnQ="}]}, "takes 32 bytes"),
    ({"keys": [{"alias": "alias/x", "material": "not base64!"}]}, "not base64"),
    ({"keys": [{"description": "no id, no alias"}]}, "an id or an alias"),
    ({"keys": [{"id": "has spaces in it", "alias": "alias/x"}]}, "id:"),
    ({"keys": [{"alias": "bad alias"}]}, "InvalidParameter"),
    ({"seed": "s", "keys": [{"alias": "alias/x", "spec": "RSA_2048"}]}, "give the private key as PEM"),
    ({"keys": [{"alias": "alias/x", "spec": "EC_P256", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                                                   "-----END PRIVATE KEY-----"}]}, "PEM"),
    ({"keys": [{"alias": "alias/x", "rotation_interval": "2d"}]}, "rotation_interval"),
    ({"keys": [{"alias": "alias/x", "spec": "EC_P256", "rotation_interval": "30d"}]}, "rotation_interval"),
    ({"keys": [{"alias": "alias/x", "material_expires": "2030-01-01T00:00:00Z"}]}, "only for imported"),
    ({"secrets": [{"name": "s", "value": "v", "key": "alias/missing"}]}, "Forbidden.AliasNotFound"),
    ({"secrets": [{"name": "s", "value": "not base64!", "type": "binary"}]}, "InvalidParameter"),
])
def test_a_bad_seed_says_which_entry_and_why(entry, message):
    with pytest.raises(seeds.SeedError) as err:
        with mock_kms(seed=entry):
            pass
    assert message in str(err.value)


def test_loading_again_keeps_what_exists_and_refuses_a_changed_key():
    with mock_kms(seed=SEED) as kms:
        before = describe("alias/app").key_id
        kms.seed(SEED)  # a runner loads its seed on every start
        assert describe("alias/app").key_id == before
        changed = {"keys": [{"id": "key-imported-0001", "material": base64.b64encode(bytes(32)).decode()}]}
        with pytest.raises(seeds.SeedError, match="other material"):
            kms.seed(changed)
        with pytest.raises(seeds.SeedError, match="another key"):
            kms.seed({"keys": [{"id": "key-other-0001", "alias": "alias/app"}]})
        assert tea().get_secret_value(models.GetSecretValueRequest(secret_name="db/password")).body.secret_data \
            == "s3cret"


def test_a_seeded_key_row_has_every_field_createkey_writes():
    # Seeding writes key rows itself (no action takes a key id): it must keep up with CreateKey.
    with mock_kms(seed={"keys": [{"id": "key-seeded-0001"}]}) as kms:
        created = tea().create_key(models.CreateKeyRequest()).body.key_metadata.key_id
        scope = f"{kms.account_id}/cn-hangzhou"
        seeded_row = kms.store.get("keys", scope, "key-seeded-0001").data
        assert set(kms.store.get("keys", scope, created).data) <= set(seeded_row)
        seeded, made = describe("key-seeded-0001"), describe(created)
        assert set(vars(seeded)) == set(vars(made))


def test_derived_ids_depend_on_seed_region_and_alias():
    base = seeds.load({"seed": "a", "keys": [{"alias": "alias/x"}]})
    kid = seeds.key_id(base, base.keys[0], "cn-hangzhou")
    assert kid == seeds.key_id(seeds.load({"seed": "a", "keys": [{"alias": "alias/x"}]}), base.keys[0], "cn-hangzhou")
    assert kid != seeds.key_id(base, base.keys[0], "cn-shanghai")
    assert kid != seeds.key_id(seeds.load({"seed": "b"}), base.keys[0], "cn-hangzhou")


def test_ec_material_follows_the_seed():
    from alikms.shared.crypto import derive

    one = derive.material("EC_P256K", b"seed", "label")
    assert one == derive.material("EC_P256K", b"seed", "label") != derive.material("EC_P256K", b"seed", "other")
    key = serialization.load_der_private_key(one, password=None)
    assert isinstance(key.curve, ec.SECP256K1)

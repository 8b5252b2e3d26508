"""alikms.shared.crypto.sm2: round trips, tampering, key formats, published vectors, and snowland-smx
(`pysmx`, pure Python) as an independent oracle in both directions."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading

import pytest
from pysmx import SM2 as smx

from alikms.shared.crypto import _libcrypto, sm2
from tests import support
from tests.der import der_int, der_tlv, sig_der_to_raw, sig_raw_to_der, sm2_ct_der_to_raw, sm2_ct_raw_to_der

# ----------------------------------------------------------------------------- published vectors

# OpenSSL test/recipes/30-test_evp_data/evppkey_sm2.txt ("SM2 tests", key SM2_key1). Its "Verify"
# inputs are 32-byte digests (EVP_PKEY_verify over the digest, as here); the third vector there is a
# 64-byte SHA-512 digest and is left out (this module takes 32-byte digests only).
OPENSSL_KEY1_PEM = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqBHM9VAYItBG0wawIBAQQg0JFWczAXva2An9m7
2MaT9gIwWTFptvlKrxyO4TjMmbWhRANCAAQ5OirZ4n5DrKqrhaGdO4VZHhRAYVcX
Wt3Te/d/8Mr57Tf886i09VwDhSMmH8pmNq/mp6+ioUgqYG9cs6GLLioe
-----END PRIVATE KEY-----
"""
OPENSSL_KEY1_VERIFY = [
    ("D7AD397F6FFA5D4F7F11E7217F241607DC30618C236D2C09C1B9EA8FDADEE2E8",
     ("3046022100AB1DB64DE7C40EDBDE6651C9B8EBDB804673DB836E5D5C7FE15DCF9ED2725037"
      "022100EBA714451FF69B0BB930B379E192E7CD5FA6E3C41C7FBD8303B799AB54A54621")),
    ("B1139602C6ECC9E15E2F3F9C635A1AFE737058BC15387479C1EA0D0B3D90E9E5",
     ("3045022100E6E0414EBD3A656C35602AF14AB20287DBF30D57AF75C49A188ED4B42391F224"
      "02202F54F277C606F4605E1CE9514947FFDDF94C67A539804A4ED17F852288BDBE2E")),
]
OPENSSL_KEY1_CIPHERTEXT = (
    "30818A0220466BE2EF5C11782EC77864A0055417F407A5AFC11D653C6BCE69E417BB1D05B6"
    "022062B572E21FF0DDF5C726BD3F9FF2EAE56E6294713A607E9B9525628965F62CC8"
    "04203C1B5713B5DB2728EB7BF775E44F4689FC32668BDC564F52EA45B09E8DF2A5F4"
    "0422084A9D0CC2997092B7D3C404FCE95956EB604D732B2307A8E5B8900ED6608CA5B197")
OPENSSL_KEY1_PLAINTEXT = b"The floofy bunnies hop at midnight"

# GB/T 32918.5-2017 = GM/T 0003.5-2012, Annex A (signature) and Annex C (encryption), on the
# recommended curve. The same d, k, r, s and ciphertext appear in OpenSSL test/sm2_internal_test.c
# (sm2_sig_test / sm2_crypt_test; the ciphertext there is serialised as GM/T 0009 DER). Z_A and e are
# the intermediate values printed in Annex A.
GBT_D = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"
GBT_PX = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
GBT_PY = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
GBT_UID = b"1234567812345678"
GBT_SIGN_MSG = b"message digest"
GBT_ZA = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3"
GBT_E = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640"
GBT_R = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
GBT_S = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
GBT_ENC_MSG = b"encryption standard"
GBT_CIPHERTEXT = (
    "307C"
    "022004EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73"
    "022100E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0"
    "042059983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766"
    "041321886CA989CA9C7D58087307CA93092D651EFA")

SM2_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123

# ----------------------------------------------------------------------------- DER helpers (test only)

# Fixed encodings around an SM2 key: id-ecPublicKey (1.2.840.10045.2.1) + namedCurve sm2 (1.2.156.10197.1.301).
SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d03420004")
PKCS8_PREFIX = bytes.fromhex("308187020100301306072a8648ce3d020106082a811ccf5501822d046d306b0201010420")
PKCS8_PUB_TAG = bytes.fromhex("a14403420004")


def tlv_offsets(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the TLV at `pos`: where a test cuts or splices."""
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    return tag, pos, pos + length


def field_offsets(data: bytes) -> list[tuple[int, int, int]]:
    """The TLVs inside the outer SEQUENCE, as (tag, start, end) offsets into `data`."""
    tag, pos, end = tlv_offsets(data, 0)
    assert tag == 0x30 and end == len(data)
    out = []
    while pos < end:
        field = tlv_offsets(data, pos)
        out.append(field)
        pos = field[2]
    return out


def pkcs8_from_scalar(d: bytes, xy: bytes | None) -> bytes:
    """PKCS#8 for an SM2 key from the raw scalar (and optionally the public point x || y)."""
    ec = der_int(1) + der_tlv(0x04, d)
    if xy is not None:
        ec += der_tlv(0xA1, der_tlv(0x03, b"\x00\x04" + xy))
    alg = der_tlv(0x30, bytes.fromhex("06072a8648ce3d0201") + bytes.fromhex("06082a811ccf5501822d"))
    return der_tlv(0x30, der_int(0) + alg + der_tlv(0x04, der_tlv(0x30, ec)))


def spki_from_point(xy: bytes) -> bytes:
    return SPKI_PREFIX + xy


def scalar_of(key: sm2.PrivateKey) -> bytes:
    der = key.to_der()
    assert der.startswith(PKCS8_PREFIX) and der[len(PKCS8_PREFIX) + 32:].startswith(PKCS8_PUB_TAG)
    return der[len(PKCS8_PREFIX):len(PKCS8_PREFIX) + 32]


def point_of(key: sm2.PublicKey) -> bytes:
    der = key.to_der()
    assert der.startswith(SPKI_PREFIX) and len(der) == len(SPKI_PREFIX) + 64
    return der[len(SPKI_PREFIX):]


def sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def smx_nonce() -> str:
    return "%064x" % (secrets.randbelow(SM2_N - 1) + 1)


@pytest.fixture(scope="module")
def key() -> sm2.PrivateKey:
    return sm2.generate()


@pytest.fixture(scope="module")
def gbt_key() -> sm2.PrivateKey:
    return sm2.PrivateKey.from_der(pkcs8_from_scalar(bytes.fromhex(GBT_D), bytes.fromhex(GBT_PX + GBT_PY)))


# ----------------------------------------------------------------------------- basics

def test_available():
    assert sm2.available() is True


def test_sign_verify_round_trip(key):
    pub = key.public_key()
    for _ in range(20):
        digest = os.urandom(32)
        sig = key.sign_digest(digest)
        assert sig[0] == 0x30 and 8 <= len(sig) <= 72
        assert sig_raw_to_der(sig_der_to_raw(sig)) == sig  # strict DER r, s
        assert pub.verify_digest(digest, sig) is True


def test_signatures_are_randomised(key):
    digest = os.urandom(32)
    assert key.sign_digest(digest) != key.sign_digest(digest)


def test_verify_false_for_modified_digest_signature_or_key(key):
    pub = key.public_key()
    digest = os.urandom(32)
    sig = key.sign_digest(digest)
    # modified digest, every byte position
    for i in range(32):
        bad = bytearray(digest)
        bad[i] ^= 0x01
        assert pub.verify_digest(bytes(bad), sig) is False
    # modified signature, every byte position (structure, r and s alike)
    for i in range(len(sig)):
        bad = bytearray(sig)
        bad[i] ^= 0x01
        assert pub.verify_digest(digest, bytes(bad)) is False
    # truncated, extended, empty, raw r||s, garbage
    assert pub.verify_digest(digest, sig[:-1]) is False
    assert pub.verify_digest(digest, sig + b"\x00") is False
    assert pub.verify_digest(digest, b"") is False
    assert pub.verify_digest(digest, sig_der_to_raw(sig)) is False
    assert pub.verify_digest(digest, b"\x30\x06\x02\x01\x01\x02\x01\x01") is False
    # a non-minimal (padded) INTEGER encoding of the same r, s is refused
    raw = sig_der_to_raw(sig)
    r_padded = der_tlv(0x02, b"\x00\x00" + raw[:32])
    assert pub.verify_digest(digest, der_tlv(0x30, r_padded + der_int(int.from_bytes(raw[32:], "big")))) is False
    # s replaced by n - s / r + n are refused
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    assert pub.verify_digest(digest, der_tlv(0x30, der_int(r) + der_int(SM2_N - s))) is False
    assert pub.verify_digest(digest, der_tlv(0x30, der_int(r + SM2_N) + der_int(s))) is False
    # wrong key
    assert sm2.generate().public_key().verify_digest(digest, sig) is False


def test_digest_must_be_32_bytes(key):
    pub = key.public_key()
    for n in (0, 20, 31, 33, 64):
        with pytest.raises(ValueError):
            key.sign_digest(b"\x01" * n)
        with pytest.raises(ValueError):
            pub.verify_digest(b"\x01" * n, b"\x30\x00")
    with pytest.raises(TypeError):
        key.sign_digest("00" * 32)


@pytest.mark.parametrize("size", [1, 32, 255, 256, 6047])
def test_encrypt_decrypt_round_trip(key, size):
    plaintext = os.urandom(size)
    ct = key.public_key().encrypt(plaintext)
    fields = field_offsets(ct)
    assert [f[0] for f in fields] == [0x02, 0x02, 0x04, 0x04]  # x, y, C3, C2
    assert fields[2][2] - fields[2][1] == 32 and fields[3][2] - fields[3][1] == size
    assert key.decrypt(ct) == plaintext
    assert key.public_key().encrypt(plaintext) != ct  # fresh ephemeral key each time


def test_encrypt_rejects_empty_plaintext(key):
    with pytest.raises(ValueError):
        key.public_key().encrypt(b"")


def test_decrypt_with_the_wrong_key_fails(key):
    ct = key.public_key().encrypt(b"secret")
    with pytest.raises(sm2.SM2Error):
        sm2.generate().decrypt(ct)


def test_tampering_any_region_of_a_ciphertext_fails(key):
    plaintext = os.urandom(64)
    ct = key.public_key().encrypt(plaintext)
    (_, x0, x1), (_, y0, y1), (_, h0, h1), (_, c0, c1) = field_offsets(ct)
    regions = {
        "outer header": range(2), "x": range(x0, x1), "y": range(y0, y1), "C3": range(h0, h1),
        "C2": range(c0, c1), "C2 header": range(c0 - 2, c0), "C3 header": range(h0 - 2, h0),
    }
    for name, positions in regions.items():
        for i in positions:
            for flip in (0x01, 0x80):
                bad = bytearray(ct)
                bad[i] ^= flip
                with pytest.raises(sm2.SM2Error):
                    key.decrypt(bytes(bad))
                    pytest.fail(f"tampered {name} byte {i} decrypted")
    for bad in (ct[:-1], ct + b"\x00", ct[:len(ct) // 2], b"", b"\x30\x00", b"\x00" * len(ct)):
        with pytest.raises(sm2.SM2Error):
            key.decrypt(bad)
    # swapping C3 and C2 contents is also refused
    c3, c2 = ct[h0:h1], ct[c0:c1]
    swapped = ct[:h0 - 2] + der_tlv(0x04, c2) + der_tlv(0x04, c3)
    swapped = der_tlv(0x30, swapped[tlv_offsets(swapped, 0)[1]:])
    with pytest.raises(sm2.SM2Error):
        key.decrypt(swapped)
    assert key.decrypt(ct) == plaintext


# ----------------------------------------------------------------------------- key formats

def test_private_key_der_round_trip(key):
    der = key.to_der()
    assert der.startswith(PKCS8_PREFIX)  # PKCS#8, id-ecPublicKey, namedCurve sm2, public key included
    again = sm2.PrivateKey.from_der(der)
    assert again.to_der() == der
    assert again.public_key().to_der() == key.public_key().to_der()
    digest = os.urandom(32)
    assert key.public_key().verify_digest(digest, again.sign_digest(digest))
    assert again.decrypt(key.public_key().encrypt(b"x")) == b"x"
    assert sm2.PrivateKey.from_der(bytearray(der)).to_der() == der


def test_public_key_der_round_trip(key):
    pub = key.public_key()
    der = pub.to_der()
    assert der.startswith(SPKI_PREFIX) and len(der) == 91
    again = sm2.PublicKey.from_der(der)
    assert again.to_der() == der
    assert again.point() == pub.point() == der[-64:]
    digest = os.urandom(32)
    assert again.verify_digest(digest, key.sign_digest(digest))
    assert key.decrypt(again.encrypt(b"y")) == b"y"


def test_pem_shape(key):
    pem = key.public_key().to_pem()
    lines = pem.split("\n")
    assert lines[0] == "-----BEGIN PUBLIC KEY-----"
    assert lines[-2] == "-----END PUBLIC KEY-----" and lines[-1] == ""
    body = lines[1:-2]
    assert all(len(line) == 64 for line in body[:-1]) and 0 < len(body[-1]) <= 64
    assert base64.b64decode("".join(body), validate=True) == key.public_key().to_der()
    assert pem.endswith("-----END PUBLIC KEY-----\n")


def test_bad_key_der_raises(key):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p256 = ec.generate_private_key(ec.SECP256R1())
    p256_pkcs8 = p256.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    p256_spki = p256.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    priv, pub = key.to_der(), key.public_key().to_der()
    for bad in (b"", b"\x00", b"garbage", priv[:-1], priv + b"\x00", pub, p256_pkcs8):
        with pytest.raises(sm2.SM2Error):
            sm2.PrivateKey.from_der(bad)
    for bad in (b"", b"\x30\x00", pub[:-1], pub + b"\x00", priv, p256_spki,
                SPKI_PREFIX + b"\x01" * 64):  # last: a point not on the curve
        with pytest.raises(sm2.SM2Error):
            sm2.PublicKey.from_der(bad)
    with pytest.raises(TypeError):
        sm2.PublicKey.from_der(base64.b64encode(pub).decode())


def test_failures_leave_the_openssl_error_queue_empty(key):
    lib = _libcrypto._load()
    for call in (lambda: key.decrypt(b"\x30\x03\x02\x01\x00"), lambda: sm2.PublicKey.from_der(b"\x30\x00"),
                 lambda: sm2.PrivateKey.from_der(key.public_key().to_der())):
        with pytest.raises(sm2.SM2Error):
            call()
        assert lib.ERR_get_error() == 0
    assert key.public_key().verify_digest(b"\x00" * 32, b"\x30\x00") is False
    assert lib.ERR_get_error() == 0
    assert hashlib.new("sm3", b"abc").hexdigest().startswith("66c7f0f4")  # hashlib (same libcrypto) unaffected


def test_close_and_context_manager():
    k = sm2.generate()
    pub = k.public_key()
    with sm2.generate() as other:
        assert other.sign_digest(b"\x00" * 32)
    with pytest.raises(sm2.SM2Error):
        other.sign_digest(b"\x00" * 32)
    k.close()
    k.close()  # idempotent
    for call in (lambda: k.sign_digest(b"\x00" * 32), k.to_der, lambda: k.decrypt(b"\x30\x00")):
        with pytest.raises(sm2.SM2Error):
            call()
    assert pub.verify_digest(b"\x00" * 32, b"\x30\x00") is False  # the public key lives on
    pub.close()
    with pytest.raises(sm2.SM2Error):
        pub.encrypt(b"a")


# ----------------------------------------------------------------------------- published vectors

def test_openssl_evppkey_sm2_vectors():
    body = "".join(OPENSSL_KEY1_PEM.strip().split("\n")[1:-1])
    k = sm2.PrivateKey.from_der(base64.b64decode(body))
    pub = k.public_key()
    for digest_hex, sig_hex in OPENSSL_KEY1_VERIFY:
        digest, sig = bytes.fromhex(digest_hex), bytes.fromhex(sig_hex)
        assert pub.verify_digest(digest, sig) is True
        assert pub.verify_digest(digest[::-1], sig) is False
    # the two vectors' signatures are not interchangeable
    first_digest, second_sig = OPENSSL_KEY1_VERIFY[0][0], OPENSSL_KEY1_VERIFY[1][1]
    assert pub.verify_digest(bytes.fromhex(first_digest), bytes.fromhex(second_sig)) is False
    assert k.decrypt(bytes.fromhex(OPENSSL_KEY1_CIPHERTEXT)) == OPENSSL_KEY1_PLAINTEXT


def test_gbt32918_public_key_derived_from_d():
    # PKCS#8 without the optional public key: OpenSSL derives P = dG, which must be the published P_A.
    k = sm2.PrivateKey.from_der(pkcs8_from_scalar(bytes.fromhex(GBT_D), None))
    assert k.public_key().point() == bytes.fromhex(GBT_PX + GBT_PY)


def test_gbt32918_za_and_e(gbt_key):
    pub = gbt_key.public_key()
    assert sm2.za_digest(pub, GBT_SIGN_MSG) == bytes.fromhex(GBT_E)
    assert sm2.za_digest(pub, GBT_SIGN_MSG, GBT_UID) == bytes.fromhex(GBT_E)
    # e for the empty message is SM3(Z_A || "") = SM3(Z_A), which pins Z_A itself
    assert sm2.za_digest(pub, b"") == sm3(bytes.fromhex(GBT_ZA))
    assert sm2.za_digest(pub, GBT_SIGN_MSG, b"ALICE123@YAHOO.COM") != bytes.fromhex(GBT_E)
    # the same key loaded from SubjectPublicKeyInfo gives the same digest
    spki = sm2.PublicKey.from_der(spki_from_point(bytes.fromhex(GBT_PX + GBT_PY)))
    assert sm2.za_digest(spki, GBT_SIGN_MSG) == bytes.fromhex(GBT_E)


def test_gbt32918_signature_verifies(gbt_key):
    pub = sm2.PublicKey.from_der(spki_from_point(bytes.fromhex(GBT_PX + GBT_PY)))
    sig = sig_raw_to_der(bytes.fromhex(GBT_R + GBT_S))
    assert pub.verify_digest(bytes.fromhex(GBT_E), sig) is True
    assert gbt_key.public_key().verify_digest(bytes.fromhex(GBT_E), sig) is True
    assert pub.verify_digest(sm2.za_digest(pub, b"message digesT"), sig) is False
    # and our own signature over e verifies with the published key
    assert pub.verify_digest(bytes.fromhex(GBT_E), gbt_key.sign_digest(bytes.fromhex(GBT_E)))


def test_gbt32918_ciphertext_decrypts(gbt_key):
    assert gbt_key.decrypt(bytes.fromhex(GBT_CIPHERTEXT)) == GBT_ENC_MSG


# ----------------------------------------------------------------------------- snowland-smx oracle

def test_oracle_za_digest_matches():
    kp = smx.generate_keypair()
    pub = sm2.PublicKey.from_der(spki_from_point(kp.publicKey))
    msg = os.urandom(50)
    za = bytes.fromhex(smx.get_za(GBT_UID, kp.publicKey))
    assert sm2.za_digest(pub, msg) == sm3(za + msg)
    assert bytes.fromhex(smx.get_za(GBT_UID, bytes.fromhex(GBT_PX + GBT_PY))) == bytes.fromhex(GBT_ZA)


def test_oracle_signatures_both_ways(key):
    # theirs -> ours
    kp = smx.generate_keypair()
    pub = sm2.PublicKey.from_der(spki_from_point(kp.publicKey))
    for _ in range(3):
        digest = os.urandom(32)
        raw = smx.Sign(digest, kp.privateKey, smx_nonce(), 64)
        assert pub.verify_digest(digest, sig_raw_to_der(raw)) is True
        assert pub.verify_digest(os.urandom(32), sig_raw_to_der(raw)) is False
    # the message-level path: pysmx computes e = SM3(Z_A || M) itself with uid; we use za_digest
    msg = b"sign me"
    raw = smx.Sign(msg, kp.privateKey, smx_nonce(), 64, uid=GBT_UID)
    assert pub.verify_digest(sm2.za_digest(pub, msg), sig_raw_to_der(raw)) is True
    # ours -> theirs
    point = point_of(key.public_key())
    for _ in range(3):
        digest = os.urandom(32)
        raw = sig_der_to_raw(key.sign_digest(digest))
        assert smx.Verify(raw, digest, point, 64) is True
        assert smx.Verify(raw, os.urandom(32), point, 64) is False
    msg = b"verify me"
    raw = sig_der_to_raw(key.sign_digest(sm2.za_digest(key.public_key(), msg)))
    assert smx.Verify(raw, msg, point, 64, uid=GBT_UID) is True


@pytest.mark.parametrize("size", [1, 32, 255, 6047])
def test_oracle_ciphertexts_both_ways(key, size):
    plaintext = os.urandom(size)
    # theirs -> ours
    kp = smx.generate_keypair()
    theirs = sm2.PrivateKey.from_der(pkcs8_from_scalar(kp.privateKey, kp.publicKey))
    assert point_of(theirs.public_key()) == kp.publicKey
    raw = support.smx_encrypt(plaintext, kp.publicKey)
    assert theirs.decrypt(sm2_ct_raw_to_der(raw)) == plaintext
    # ours -> theirs
    ct = key.public_key().encrypt(plaintext)
    assert smx.Decrypt(sm2_ct_der_to_raw(ct), scalar_of(key), 64) == plaintext
    # their decryption also rejects our ciphertext with a flipped C3 bit (sanity of the conversion)
    raw = bytearray(sm2_ct_der_to_raw(ct))
    raw[64] ^= 1
    assert smx.Decrypt(bytes(raw), scalar_of(key), 64) is None


def test_oracle_accepts_published_ciphertext():
    # the Annex C ciphertext through the test's own DER conversion and pysmx, to cross-check the helpers
    raw = sm2_ct_der_to_raw(bytes.fromhex(GBT_CIPHERTEXT))
    assert smx.Decrypt(raw, bytes.fromhex(GBT_D), 64) == GBT_ENC_MSG
    assert sm2_ct_raw_to_der(raw) == bytes.fromhex(GBT_CIPHERTEXT)


# ----------------------------------------------------------------------------- threads

def test_threads_share_one_key(key):
    pub = key.public_key()
    errors: list[BaseException] = []
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        try:
            start.wait()
            local = []
            for i in range(60):
                digest = hashlib.sha256(b"%d-%d" % (n, i)).digest()
                sig = key.sign_digest(digest)
                local.append(pub.verify_digest(digest, sig))
                local.append(not pub.verify_digest(digest[::-1], sig))
                if i % 10 == 0:
                    msg = os.urandom(40)
                    local.append(key.decrypt(pub.encrypt(msg)) == msg)
                    local.append(sm2.PublicKey.from_der(pub.to_der()).point() == pub.point())
            with lock:
                results.extend(local)
        except BaseException as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 8 * (120 + 12) and all(results)


def test_close_while_other_threads_use_the_key():
    # close() from one thread while others are mid-operation must raise SM2Error, never crash.
    k = sm2.generate()
    digest = b"\x11" * 32
    outcomes: list[str] = []
    lock = threading.Lock()
    go = threading.Event()

    def worker() -> None:
        go.wait()
        for _ in range(200):
            try:
                k.sign_digest(digest)
                outcome = "ok"
            except sm2.SM2Error:
                outcome = "closed"
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    go.set()
    k.close()
    for t in threads:
        t.join()
    assert len(outcomes) == 800 and set(outcomes) <= {"ok", "closed"} and outcomes.count("closed") > 0


def test_without_openssl_3_sm2_keys_are_refused_cleanly(local_env, invoke, monkeypatch):
    """On a host whose libcrypto is not OpenSSL 3 (e.g. Debian 10/11 runtimes) SM2 is unsupported:
    a documented 400, never a 500."""
    monkeypatch.setattr(sm2, "available", lambda: False)
    status, body = invoke("CreateKey", {"KeySpec": "EC_SM2", "KeyUsage": "SIGN/VERIFY"})
    assert (status, body["Code"]) == (400, "UnsupportedOperation")
    status, body = invoke("CreateKey", {"KeySpec": "RSA_2048"})
    assert status == 200

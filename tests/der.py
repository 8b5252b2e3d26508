"""DER, just enough for SM2 values: the codec, and the conversions between the service's DER forms
(signatures, GM/T 0009 ciphertexts, SubjectPublicKeyInfo, PKCS#8) and pysmx's raw forms. Written
here rather than taken from a library, so that the tests check the service's encodings independently."""

from __future__ import annotations


def der_read(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """(tag, content, next position) of the TLV at `pos`."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    assert pos + length <= len(data), "truncated DER"
    return tag, data[pos:pos + length], pos + length


def der_items(content: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(content):
        tag, value, pos = der_read(content, pos)
        out.append((tag, value))
    return out


def der_tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + value


def der_int(n: int) -> bytes:
    return der_tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


def der_seq(*parts: bytes) -> bytes:
    return der_tlv(0x30, b"".join(parts))


def sig_der_to_raw(der: bytes) -> bytes:
    """DER SEQUENCE{r, s} -> r || s (32 bytes each)."""
    tag, content, end = der_read(der)
    assert tag == 0x30 and end == len(der)
    (t1, r), (t2, s) = der_items(content)
    assert t1 == t2 == 0x02
    return int.from_bytes(r, "big").to_bytes(32, "big") + int.from_bytes(s, "big").to_bytes(32, "big")


def sig_raw_to_der(raw: bytes) -> bytes:
    return der_seq(der_int(int.from_bytes(raw[:32], "big")), der_int(int.from_bytes(raw[32:], "big")))


def sm2_ct_der_to_raw(der: bytes) -> bytes:
    """GM/T 0009 DER SEQUENCE{x, y, C3, C2} -> pysmx's raw x || y || C3 || C2."""
    tag, content, end = der_read(der)
    assert tag == 0x30 and end == len(der)
    (tx, x), (ty, y), (t3, c3), (t2, c2) = der_items(content)
    assert (tx, ty, t3, t2) == (0x02, 0x02, 0x04, 0x04) and len(c3) == 32
    return (int.from_bytes(x, "big").to_bytes(32, "big") + int.from_bytes(y, "big").to_bytes(32, "big")
            + c3 + c2)


def sm2_ct_raw_to_der(raw: bytes) -> bytes:
    x, y, c3, c2 = raw[:32], raw[32:64], raw[64:96], raw[96:]
    return der_seq(der_int(int.from_bytes(x, "big")), der_int(int.from_bytes(y, "big")),
                   der_tlv(0x04, c3), der_tlv(0x04, c2))


def spki_point(spki: bytes) -> bytes:
    """x || y of an EC SubjectPublicKeyInfo (uncompressed point), parsed here rather than by a library."""
    _, content, _ = der_read(spki)
    (_, _alg), (tag, bits) = der_items(content)
    assert tag == 0x03 and bits[0] == 0 and bits[1] == 0x04 and len(bits) == 66
    return bits[2:]


def pkcs8_sm2_scalar(pkcs8: bytes) -> bytes:
    """The private scalar d (32 bytes) of an EC PKCS#8 PrivateKeyInfo."""
    _, content, _ = der_read(pkcs8)
    items = der_items(content)
    assert items[2][0] == 0x04
    _, ec_key, _ = der_read(items[2][1])
    (_, version), (tag, d) = der_items(ec_key)[:2]
    assert version == b"\x01" and tag == 0x04
    return d.rjust(32, b"\x00")

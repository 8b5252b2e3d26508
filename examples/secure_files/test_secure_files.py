"""Tests of secure_files under alikms's mock_kms: the application code is unchanged, its client is
configured for the real cloud, and the `mock_kms` fixture (alikms's pytest plugin) answers it with
the real service, in process, seeded from seed.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import secure_files
from Tea.exceptions import TeaException

HERE = Path(__file__).parent
pytestmark = pytest.mark.mock_kms(seed=HERE / "seed.yaml")


def test_a_file_round_trips(mock_kms, tmp_path):
    (tmp_path / "report.txt").write_bytes(b"quarterly numbers\n")
    secure_files.encrypt_file(tmp_path / "report.txt", tmp_path / "report.enc")
    assert b"quarterly" not in (tmp_path / "report.enc").read_bytes()
    secure_files.decrypt_file(tmp_path / "report.enc", tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_bytes() == b"quarterly numbers\n"
    assert [c.action for c in mock_kms.calls] == ["GenerateDataKey", "Decrypt"]


def test_a_file_from_an_earlier_run_still_opens(mock_kms, tmp_path):
    # testdata/hello.txt.enc was written once under the seeded key; the seed fixes its material.
    secure_files.decrypt_file(HERE / "testdata" / "hello.txt.enc", tmp_path / "hello.txt")
    assert (tmp_path / "hello.txt").read_text() == "hello from an earlier run\n"


def test_a_renamed_file_does_not_open(mock_kms, tmp_path):
    # The file name is the EncryptionContext of its data key: a swapped file fails at KMS.
    (tmp_path / "a.txt").write_text("a")
    secure_files.encrypt_file(tmp_path / "a.txt", tmp_path / "a.enc")
    text = (tmp_path / "a.enc").read_text().replace('"name": "a.txt"', '"name": "b.txt"')
    (tmp_path / "b.enc").write_text(text)
    with pytest.raises(TeaException) as err:
        secure_files.decrypt_file(tmp_path / "b.enc", tmp_path / "b.txt")
    assert err.value.code == "InvalidParameter"


def test_the_database_password_comes_from_secrets_manager(mock_kms):
    assert secure_files.database_password() == "correct horse battery staple"


def test_files_stay_readable_across_a_key_rotation(mock_kms, tmp_path):
    (tmp_path / "old.txt").write_text("before")
    secure_files.encrypt_file(tmp_path / "old.txt", tmp_path / "old.enc")
    runs = mock_kms.advance(days=31)  # the seed rotates the key every 30 days
    assert [job for job, _, _ in runs] == ["RotateKeys"]
    (tmp_path / "new.txt").write_text("after")
    secure_files.encrypt_file(tmp_path / "new.txt", tmp_path / "new.enc")
    for name in ("old", "new"):
        secure_files.decrypt_file(tmp_path / f"{name}.enc", tmp_path / f"{name}.out")
    assert (tmp_path / "old.out").read_text() == "before" and (tmp_path / "new.out").read_text() == "after"


def test_a_disabled_key_stops_the_application(mock_kms, tmp_path):
    from alibabacloud_kms20160120 import models

    client = secure_files.kms_client()
    key_id = client.describe_key(models.DescribeKeyRequest(key_id=secure_files.KEY_ALIAS)).body.key_metadata.key_id
    client.disable_key(models.DisableKeyRequest(key_id=key_id))
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(TeaException) as err:
        secure_files.encrypt_file(tmp_path / "x.txt", tmp_path / "x.enc")
    assert err.value.code == "Rejected.Disabled"


@pytest.mark.mock_kms(seed=HERE / "seed.yaml", strict=True)
def test_the_application_signs_with_its_configured_credentials(mock_kms, monkeypatch):
    # Strict mode checks every signature: the application's credentials (the environment, set by
    # mock_kms to its own key pair) must be the ones it signs with.
    assert secure_files.database_password() == "correct horse battery staple"
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-the-secret")
    with pytest.raises(TeaException) as err:
        secure_files.database_password()
    assert err.value.code == "SignatureDoesNotMatch"

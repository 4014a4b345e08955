import pickle

import pytest

from daemon.config import Secret, SecretError, resolve_secret

VALUE = "hunter2-not-for-logs"


def test_secret_is_masked_in_repr_str_and_format():
    secret = Secret(VALUE)
    assert repr(secret) == "Secret('****')"
    assert str(secret) == "Secret('****')"
    assert f"{secret}" == "Secret('****')"
    assert VALUE not in repr([secret, {"k": secret}])
    assert secret.reveal() == VALUE


def test_secret_equality_and_hash_follow_the_value():
    assert Secret(VALUE) == Secret(VALUE)
    assert Secret(VALUE) != Secret("other")
    assert Secret(VALUE) != VALUE
    assert len({Secret(VALUE), Secret(VALUE)}) == 1


def test_secret_refuses_pickling_and_empty_values():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(VALUE))
    with pytest.raises(ValueError, match="empty"):
        Secret("")
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


def test_resolve_from_environment(tmp_path):
    secret = resolve_secret("PW", None, environ={"PW": VALUE}, base_dir=tmp_path)
    assert secret == Secret(VALUE)


def test_resolve_neither_is_none(tmp_path):
    assert resolve_secret(None, None, environ={}, base_dir=tmp_path) is None


def test_resolve_from_relative_file_strips_one_newline(tmp_path):
    (tmp_path / "pw.txt").write_text(VALUE + "\n")
    secret = resolve_secret(None, "pw.txt", environ={}, base_dir=tmp_path)
    assert secret is not None and secret.reveal() == VALUE


@pytest.mark.parametrize(("env", "file", "environ", "source", "reason"), [
    ("PW", None, {}, "env", 'environment variable "PW" is not set'),
    ("PW", None, {"PW": ""}, "env", 'environment variable "PW" is empty'),
    ("PW", "pw.txt", {"PW": VALUE}, "file", "give the _env or the _file setting, not both"),
])
def test_resolve_errors_name_the_variable(tmp_path, env, file, environ, source, reason):
    with pytest.raises(SecretError) as info:
        resolve_secret(env, file, environ=environ, base_dir=tmp_path)
    assert (info.value.source, info.value.reason) == (source, reason)


def test_resolve_missing_and_empty_files(tmp_path):
    with pytest.raises(SecretError) as missing:
        resolve_secret(None, "nope.txt", environ={}, base_dir=tmp_path)
    assert missing.value.reason == f'file "{tmp_path / "nope.txt"}" does not exist'
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(SecretError) as empty:
        resolve_secret(None, "empty.txt", environ={}, base_dir=tmp_path)
    assert empty.value.reason == f'file "{tmp_path / "empty.txt"}" is empty'
    with pytest.raises(SecretError) as folder:
        resolve_secret(None, ".", environ={}, base_dir=tmp_path)
    assert folder.value.source == "file"
    assert "cannot be read" in folder.value.reason

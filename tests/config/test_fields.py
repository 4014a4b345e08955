"""daemon.config.fields: secret indirections on every model, loopback hosts."""

import pytest

from daemon.config import Secret, is_loopback
from tests.config.conftest import (
    API_TOKEN,
    ENTRA_SECRET,
    FILE_SECRET,
    PASSWORD,
    SECRET_KEY,
    problems,
)


def test_secrets_are_resolved_from_env_and_files(full):
    assert full.daemon.secret_key == Secret(SECRET_KEY)
    assert full.http.api_token == Secret(API_TOKEN)
    assert full.oauth_apps[0].client_secret == Secret(ENTRA_SECRET)
    assert full.oauth_apps[1].client_secret == Secret(FILE_SECRET)
    assert full.account("support").password == Secret(PASSWORD)


@pytest.mark.parametrize(("section", "key"), [
    ("[daemon]", "secret_key"),
    ("[http]", "api_token"),
])
def test_literal_secrets_are_refused(here, section, key):
    found = problems(here, f'{section}\n{key} = "hunter2-hunter2-hunter2-hunter2-x"\n')
    assert found == [f"postroom.toml: {section.strip('[]')}.{key}: secrets come from "
                     f"{key}_env or {key}_file, never from the file itself"]


def test_unset_variable_and_missing_file_name_the_key(here):
    text = """
    [http]
    api_token_env = "NOT_SET_ANYWHERE"

    [[oauth_apps]]
    id = "g"
    provider = "google"
    client_id = "x"
    client_secret_file = "secrets/google.txt"
    """
    assert problems(here, text, environ={}) == [
        'postroom.toml: http.api_token_env: environment variable "NOT_SET_ANYWHERE" is not set',
        f'postroom.toml: oauth_apps[0].client_secret_file: file "{here}/secrets/google.txt" '
        "does not exist",
    ]


def test_both_env_and_file_is_an_error(here):
    (here / "token").write_text("x")
    text = '[http]\napi_token_env = "TEST_API_TOKEN"\napi_token_file = "token"\n'
    assert problems(here, text) == [
        "postroom.toml: http.api_token_file: give the _env or the _file setting, not both"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.9.9.9", "::1", "[::1]"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["mail.example.com", "10.0.0.1", "0.0.0.0", "::"])
def test_non_loopback_hosts(host):
    assert not is_loopback(host)

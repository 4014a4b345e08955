"""daemon.config.load: the whole file, the cross-checks between sections, warnings."""

import dataclasses
import shutil
from datetime import date, timedelta

import pytest

from daemon.config import AutoReply, Config, DaemonSettings, HttpSettings, load_config, parse_config
from daemon.config.runtime import RuntimeConfig
from daemon.errors import ConfigError
from tests.config.conftest import ALL_SECRETS, ENV, MAILDIR_ACCOUNT, ROOT, load, problems


def test_full_file_loads(full):
    folder = full.base_dir
    assert full.path == folder / "postroom.toml"
    assert full.daemon.store == f"sqlite:///{folder}/state/postroom.db"
    assert full.daemon.sqlite_path == folder / "state" / "postroom.db"
    assert full.daemon.runtime == folder / "runtime.json"
    assert full.daemon.seed_objects == folder / "seed.json"
    assert full.daemon.public_base_url == "https://crm.example.com"
    assert full.daemon.log_level == "debug"
    assert full.daemon.shutdown_grace_seconds == 5.0
    assert full.daemon.message_id_domain == "mail.example.com"
    assert full.http.host == "127.0.0.1" and full.http.port == 8125
    assert full.imap_connections[0].ca_file == folder / "ca.pem"
    assert full.account("demo").maildir == folder / "demo" / "Maildir"
    assert [a.id for a in full.accounts] == ["support", "sales", "demo"]
    assert full.plugins == {"whitelist": {"allow": ["alerts@monitoring.example.com"]}}
    assert full.runtime.identification_methods == frozenset({"messageId", "subject"})
    assert full.warnings == ()


def test_from_toml_is_load_config(full):
    again = Config.from_toml(full.path, environ=ENV)
    assert again == full
    with pytest.raises(ConfigError) as info:
        Config.from_toml(full.base_dir / "missing.toml", environ=ENV)
    assert [p.reason for p in info.value.problems] == ["no such file"]


def test_config_never_shows_a_secret(full):
    for text in (repr(full), str(full), repr(full.accounts), str(full.daemon)):
        for secret in ALL_SECRETS:
            assert secret not in text
    assert "Secret('****')" in repr(full)


def test_account_lookup_and_connections(full):
    support = full.account("support")
    assert full.connection_for(support) is full.imap_connections[0]
    assert full.connection_for("sales") is full.oauth_apps[0]
    assert full.connection_for("demo") is None
    assert support.login == "support" and full.account("sales").login == "sales@example.com"
    assert support.addresses == frozenset({"support@example.com", "help@example.com"})
    assert str(support.zone) == "Europe/Stockholm"
    with pytest.raises(KeyError):
        full.account("nobody")


def test_config_is_frozen(full):
    with pytest.raises(dataclasses.FrozenInstanceError):
        full.accounts = ()  # type: ignore[misc]
    with pytest.raises(ValueError, match="frozen"):
        full.accounts[0].email = "x@example.com"  # type: ignore[misc]


def test_minimal_file_gets_documented_defaults(here):
    config = load(here, MAILDIR_ACCOUNT)
    assert config.daemon == DaemonSettings(store=f"sqlite:///{here}/var/lib/postroom/postroom.db")
    assert config.daemon.store == f"sqlite:///{here}/var/lib/postroom/postroom.db"
    assert config.daemon.shutdown_grace_seconds == 15.0
    assert (config.daemon.log_format, config.daemon.log_level) == ("auto", "info")
    assert config.http == HttpSettings()
    assert (config.http.enabled, config.http.bind) == (True, "127.0.0.1:8025")
    assert config.runtime == RuntimeConfig()
    account = config.accounts[0]
    assert (account.folder, account.failure_folder, account.sent_folder) == (
        "INBOX", "postroom-failed", None)
    assert (account.timezone, account.language, account.template) == ("UTC", "en", "default")
    assert (account.max_outgoing_bytes, account.max_message_bytes) == (25_000_000, 25_000_000)
    assert (account.idle, account.idle_renew_seconds, account.poll_interval_seconds) == (
        True, 600.0, 60.0)
    assert (account.backoff_cap_seconds, account.stable_after_seconds,
            account.auth_failures_before_park) == (300.0, 300.0, 3)
    assert account.auto_reply == AutoReply(enabled=False, max_age_hours=24,
                                           rate_limit_per_hour=5)
    assert config.plugins == {} and config.warnings == ()


def test_empty_file_is_valid(here):
    config = load(here, "")
    assert config.accounts == () and config.oauth_apps == ()


def test_postgres_needs_a_configured_secret_key(here):
    assert problems(here, '[daemon]\nstore = "postgresql://127.0.0.1/test"\n') == [
        "postroom.toml: daemon.secret_key_env: required when the store is not SQLite "
        "(or set secret_key_file)"]


def test_auth_must_name_an_app_or_connection(here):
    text = MAILDIR_ACCOUNT + """
    [[accounts]]
    id = "b"
    email = "b@example.com"
    auth = "maildir"
    maildir = "b"

    [[accounts]]
    id = "c"
    email = "c@example.com"
    auth = "onprem"
    """
    assert problems(here, text) == [
        'postroom.toml: accounts[2].auth: no oauth_app or imap_connection named "onprem"']


def test_unknown_key_with_and_without_hint(here):
    text = MAILDIR_ACCOUNT + 'pasword = "hunter2"\nfrobnicate = 1\n'
    found = problems(here, text)
    assert found == [
        "postroom.toml: accounts[0].pasword: unknown key (did you mean 'password_env'?)",
        "postroom.toml: accounts[0].frobnicate: unknown key",
    ]


def test_unknown_sections_and_nested_keys(here):
    text = """
    [deamon]
    store = "sqlite:///x.db"

    [http]
    enable = false
    """ + MAILDIR_ACCOUNT + "auto_reply = { enabeld = true }\n"
    assert problems(here, text) == [
        "postroom.toml: deamon: unknown key (did you mean 'daemon'?)",
        "postroom.toml: http.enable: unknown key (did you mean 'enabled'?)",
        "postroom.toml: accounts[0].auto_reply.enabeld: unknown key (did you mean 'enabled'?)",
    ]


def test_sections_must_have_the_right_shape(here):
    text = """
    daemon = 3

    [accounts]
    id = "a"

    [plugins]
    whitelist = 1
    """
    assert problems(here, text) == [
        "postroom.toml: daemon: must be a table",
        "postroom.toml: accounts: must be an array of tables: write [[accounts]]",
        "postroom.toml: plugins.whitelist: must be a table: write [plugins.<name>]",
    ]


def test_literal_password_and_client_secret_are_refused(here):
    text = """
    [[oauth_apps]]
    id = "g"
    provider = "google"
    client_id = "x"
    client_secret = "hunter2"

    [[imap_connections]]
    id = "local"
    imap_host = "127.0.0.1"
    smtp_host = "127.0.0.1"

    [[accounts]]
    id = "a"
    email = "a@example.com"
    auth = "local"
    password = "hunter2"

    [plugins.crm]
    api_token = "hunter2"
    """
    found = problems(here, text)
    assert found == [
        "postroom.toml: oauth_apps[0].client_secret: secrets come from client_secret_env or "
        "client_secret_file, never from the file itself",
        "postroom.toml: accounts[0].password: secrets come from password_env or "
        "password_file, never from the file itself",
        "postroom.toml: plugins.crm.api_token: secrets come from api_token_env or "
        "api_token_file, never from the file itself",
    ]
    assert "hunter2" not in "\n".join(found)


def test_duplicate_and_clashing_ids(here):
    text = """
    [[oauth_apps]]
    id = "maildir"
    provider = "google"
    client_id = "x"
    client_secret_env = "TEST_ENTRA_SECRET"

    [[imap_connections]]
    id = "maildir"
    imap_host = "127.0.0.1"
    smtp_host = "127.0.0.1"
    """ + MAILDIR_ACCOUNT + MAILDIR_ACCOUNT.replace("demo@", "other@")
    assert problems(here, text) == [
        'postroom.toml: accounts[1].id: duplicate id "demo" (also accounts[0])',
        'postroom.toml: imap_connections[0].id: "maildir" is also the id of oauth_apps[0]; '
        "accounts could not tell them apart",
        'postroom.toml: oauth_apps[0].id: "maildir" is reserved for accounts that read a '
        "local Maildir",
        'postroom.toml: imap_connections[0].id: "maildir" is reserved for accounts that read '
        "a local Maildir",
    ]


def test_auth_specific_account_keys(here):
    text = """
    [[imap_connections]]
    id = "local"
    imap_host = "127.0.0.1"
    smtp_host = "127.0.0.1"

    [[accounts]]
    id = "a"
    email = "a@example.com"
    auth = "local"

    [[accounts]]
    id = "b"
    email = "b@example.com"
    auth = "maildir"
    maildir = "b"
    password_env = "TEST_SUPPORT_PASSWORD"

    [[accounts]]
    id = "c"
    email = "c@example.com"
    auth = "local"
    password_env = "TEST_SUPPORT_PASSWORD"
    maildir = "c"
    folder = "postroom-failed"
    """
    assert problems(here, text) == [
        'postroom.toml: accounts[2].maildir: only used when auth = "maildir"',
        "postroom.toml: accounts[2].failure_folder: must differ from folder",
        "postroom.toml: accounts[0].password_env: required when auth names an imap_connection "
        "(or set password_file)",
        "postroom.toml: accounts[1].password_env: only used when auth names an "
        "imap_connection",
    ]


def test_an_address_belongs_to_one_account(here):
    text = MAILDIR_ACCOUNT + 'aliases = ["Help@example.com", "demo@example.com"]\n' + """
    [[accounts]]
    id = "other"
    email = "help@example.com"
    auth = "maildir"
    maildir = "o"
    """
    assert problems(here, text) == [
        'postroom.toml: accounts[0].aliases[1]: "demo@example.com" is already an address of '
        "this account",
        'postroom.toml: accounts[1].email: "help@example.com" is already an address of '
        "accounts[0]",
    ]


def test_type_errors_never_echo_the_value(here):
    text = MAILDIR_ACCOUNT + 'max_message_bytes = "hunter2"\nenabled = "hunter2"\n'
    found = problems(here, text)
    assert found == [
        "postroom.toml: accounts[0].enabled: must be a valid boolean, unable to interpret "
        "input",
        "postroom.toml: accounts[0].max_message_bytes: must be a valid integer, unable to "
        "parse string as an integer",
    ]


def test_toml_syntax_error_has_line_and_column(here):
    (here / "postroom.toml").write_text('[daemon]\nstore = "x"\nbind = = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config("postroom.toml", environ=ENV)
    assert str(info.value) == "postroom.toml: line 3, column 8: Invalid value"


def test_missing_toml_file(here):
    with pytest.raises(ConfigError) as info:
        load_config("nope.toml", environ=ENV)
    assert str(info.value) == "nope.toml: no such file"


def test_runtime_problems_carry_the_json_file_name(here):
    (here / "runtime.json").write_text('{"conversationParents": [{"limetype": "h", '
                                       '"properties": [{"property": "x"}]}], "foo": 1}')
    assert problems(here, '[daemon]\nruntime = "runtime.json"\n' + MAILDIR_ACCOUNT) == [
        "runtime.json: conversationParents[0].properties[0]: needs at least one of "
        "messageProperty, searchPath or default",
        "runtime.json: foo: unknown key",
    ]


def test_errors_from_every_section_and_the_runtime_arrive_together(here):
    (here / "runtime.json").write_text('{\n  "identificationMethod": "thread"\n}\n')
    text = """
    [daemon]
    runtime = "runtime.json"
    log_level = "loud"

    [http]
    api_token_env = "UNSET"

    [[accounts]]
    id = "a"
    email = "a@example.com"
    auth = "nowhere"

    [[accounts]]
    id = "b"
    email = "b@example.com"
    auth = "maildir"
    """
    assert problems(here, text) == [
        "postroom.toml: daemon.log_level: must be 'debug', 'info', 'warning', 'error' or "
        "'critical'",
        'postroom.toml: http.api_token_env: environment variable "UNSET" is not set',
        'postroom.toml: accounts[1].maildir: required when auth = "maildir"',
        'runtime.json: identificationMethod: "thread" is not an identification method; '
        "allowed: messageId, subject",
        'postroom.toml: accounts[0].auth: no oauth_app or imap_connection named "nowhere"',
    ]


def test_json_syntax_error_in_the_runtime(here):
    (here / "runtime.json").write_text('{\n  "conversation": {,}\n}\n')
    found = problems(here, '[daemon]\nruntime = "runtime.json"\n')
    assert found == ["runtime.json: line 2, column 20: Expecting property name enclosed in "
                     "double quotes"]


def test_reference_runtime_placeholder_is_a_warning(here):
    shutil.copy(ROOT / "config" / "runtime.example.json", here / "runtime.json")
    config = load(here, '[daemon]\nruntime = "runtime.json"\n' + MAILDIR_ACCOUNT)
    assert [str(w) for w in config.warnings] == [
        'runtime.json: conversationParents[0].accounts[0]: no account named "<account_id>" '
        "in postroom.toml"]
    assert config.runtime.parent_for("demo").limetype == "helpdesk"


def test_account_served_by_no_parent_is_a_warning(here):
    (here / "runtime.json").write_text(
        '{"conversationParents": [{"limetype": "a", "accounts": ["x"]},'
        ' {"limetype": "b", "accounts": ["y"]}]}')
    config = load(here, '[daemon]\nruntime = "runtime.json"\n' + MAILDIR_ACCOUNT)
    assert [str(w) for w in config.warnings] == [
        'runtime.json: conversationParents[0].accounts[0]: no account named "x" in '
        "postroom.toml",
        'runtime.json: conversationParents[1].accounts[0]: no account named "y" in '
        "postroom.toml",
        'postroom.toml: accounts[0]: no conversationParents entry in runtime.json serves '
        '"demo": its mail cannot start conversations',
    ]


def test_client_secret_expiry_warnings(here):
    text = """
    [[oauth_apps]]
    id = "old"
    provider = "google"
    client_id = "x"
    client_secret_env = "TEST_ENTRA_SECRET"
    client_secret_expires = 2026-01-01

    [[oauth_apps]]
    id = "soon"
    provider = "google"
    client_id = "x"
    client_secret_env = "TEST_ENTRA_SECRET"
    client_secret_expires = 2026-02-10

    [[oauth_apps]]
    id = "fine"
    provider = "google"
    client_id = "x"
    client_secret_env = "TEST_ENTRA_SECRET"
    client_secret_expires = 2026-03-01
    """
    config = load(here, text, today=date(2026, 2, 1))
    assert [str(w) for w in config.warnings] == [
        "postroom.toml: oauth_apps[0].client_secret_expires: the client secret expired on "
        "2026-01-01; create a new one",
        "postroom.toml: oauth_apps[1].client_secret_expires: the client secret expires on "
        "2026-02-10 (in 9 days); renew it now",
    ]


def test_open_listener_and_unverified_tls_are_warnings(here):
    text = """
    [http]
    bind = "0.0.0.0:8025"

    [[imap_connections]]
    id = "c"
    imap_host = "mail.example.com"
    smtp_host = "mail.example.com"
    verify_certificates = false
    """
    config = load(here, text)
    assert [str(w) for w in config.warnings] == [
        "postroom.toml: imap_connections[0].verify_certificates: false: the server's "
        "certificate is not checked",
        'postroom.toml: http.bind: "0.0.0.0:8025" is not a loopback address and no api_token '
        "is set: the API is open to the network",
    ]


def test_parse_config_from_a_mapping(tmp_path):
    config = parse_config({"accounts": [{"id": "a", "email": "a@example.com",
                                         "auth": "maildir", "maildir": "m"}]},
                          file="inline.toml", base_dir=tmp_path, environ={},
                          today=date.today() + timedelta(days=1))
    assert config.account("a").maildir == tmp_path / "m"
    assert config.path == tmp_path / "inline.toml"

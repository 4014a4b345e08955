"""daemon.config.connections: [[oauth_apps]] and [[imap_connections]]."""

from tests.config.conftest import problems


def test_provider_defaults(full):
    entra, gmail = full.oauth_apps
    assert (entra.base_scope, entra.authority_base_url, entra.graph_base_url) == (
        "api", "https://login.microsoftonline.com", "https://graph.microsoft.com/v1.0")
    assert (gmail.base_scope, gmail.authority_base_url) == ("imap_smtp", "http://127.0.0.1:9999")


def test_tls_none_only_for_loopback(here):
    text = """
    [[imap_connections]]
    id = "onprem"
    imap_host = "mail.example.com"
    imap_tls = "none"
    smtp_host = "smtp.example.com"
    smtp_tls = "none"
    """
    assert problems(here, text) == [
        'postroom.toml: imap_connections[0].imap_tls: "none" is only allowed for loopback '
        'hosts, not "mail.example.com"',
        'postroom.toml: imap_connections[0].smtp_tls: "none" is only allowed for loopback '
        'hosts, not "smtp.example.com"',
    ]


def test_oauth_provider_rules(here):
    text = """
    [[oauth_apps]]
    id = "entra"
    provider = "microsoft"
    client_id = "x"
    client_secret_env = "TEST_ENTRA_SECRET"
    graph_base_url = "http://graph.example.com"

    [[oauth_apps]]
    id = "gmail"
    provider = "google"
    client_id = "y"
    tenant_id = "t"
    base_scope = "api"

    [[oauth_apps]]
    id = "yahoo"
    provider = "yahoo"
    client_id = "z"
    client_secret_env = "TEST_ENTRA_SECRET"
    """
    assert problems(here, text) == [
        'postroom.toml: oauth_apps[0].graph_base_url: "http://graph.example.com" must use '
        "https:// (http:// only for loopback hosts)",
        'postroom.toml: oauth_apps[1].client_secret_env: required (or client_secret_file)',
        'postroom.toml: oauth_apps[1].tenant_id: only used with provider "microsoft"',
        'postroom.toml: oauth_apps[1].base_scope: must be "imap_smtp" for provider "google"',
        "postroom.toml: oauth_apps[2].provider: must be 'microsoft' or 'google'",
    ]


def test_microsoft_needs_a_tenant(here):
    text = """
    [[oauth_apps]]
    id = "entra"
    provider = "microsoft"
    client_id = "x"
    client_secret_env = "TEST_ENTRA_SECRET"
    """
    assert problems(here, text) == [
        'postroom.toml: oauth_apps[0].tenant_id: required for provider "microsoft"']

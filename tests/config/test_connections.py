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


OAUTH_APPS = """
[[oauth_apps]]
id = "m365"
name = "Contoso"
provider = "microsoft"
client_id = "x"
client_secret_env = "TEST_ENTRA_SECRET"
tenant_id = "contoso"
base_scope = "imap_smtp"

[[oauth_apps]]
id = "gmail"
provider = "google"
client_id = "y"
client_secret_env = "TEST_ENTRA_SECRET"
publishing_status = "testing"
smtp_host = "127.0.0.1"
smtp_port = 2525
smtp_tls = "none"
redirect_uri = "https://crm.example.com/my-app/limepkg-email/oauth/callback"

[[imap_connections]]
id = "onprem"
name = "On-premise"
imap_host = "mail.example.com"
smtp_host = "mail.example.com"

[[accounts]]
id = "shared"
email = "shared@contoso.example"
auth = "m365"
"""


def test_provider_mail_servers_default_and_are_overridden_on_the_app(here):
    from tests.config.conftest import load

    config = load(here, OAUTH_APPS)
    m365, gmail = config.oauth_apps
    assert (m365.imap_host, m365.imap_port, m365.imap_tls, m365.smtp_host, m365.smtp_port,
            m365.smtp_tls) == ("outlook.office365.com", 993, "implicit",
                               "smtp.office365.com", 587, "starttls")
    servers = gmail.mail_servers()
    assert (servers.imap_host, servers.imap_port, servers.imap_tls, servers.smtp_host,
            servers.smtp_port, servers.smtp_tls) == ("imap.gmail.com", 993, "implicit",
                                                     "127.0.0.1", 2525, "none")
    assert (m365.display_name, gmail.display_name) == ("Contoso", "gmail")
    assert config.imap_connections[0].name == "On-premise"
    assert gmail.redirect_uri == "https://crm.example.com/my-app/limepkg-email/oauth/callback"


def test_an_oauth_account_without_tokens_or_password_is_valid_and_testing_apps_warn(here):
    from tests.config.conftest import load

    config = load(here, OAUTH_APPS)
    assert config.account("shared").password is None
    assert [str(w) for w in config.warnings if "publishing_status" in str(w)] == [
        'postroom.toml: oauth_apps[1].publishing_status: "testing": Google lets refresh '
        "tokens of apps in Testing die after 7 days; publish the app"]


def test_oauth_endpoint_overrides_must_be_https_off_loopback(here):
    text = OAUTH_APPS.replace('publishing_status = "testing"',
                              'token_url = "http://oauth.example.com/token"')
    assert problems(here, text) == [
        'postroom.toml: oauth_apps[1].token_url: "http://oauth.example.com/token" must use '
        "https:// (http:// only for loopback hosts)"]

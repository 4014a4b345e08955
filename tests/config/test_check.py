import io
import shutil
from pathlib import Path

import pytest

from daemon.config import check_config

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "data" / "config"

PASSWORD = "imap-password-VISIBLE-ONLY-IN-TESTS"
FIXTURE_ENV = {"TEST_SECRET_KEY": "k" * 40, "TEST_API_TOKEN": "token",
               "TEST_ENTRA_SECRET": "entra", "TEST_SUPPORT_PASSWORD": PASSWORD}
#: The example's secrets, as the shipped unit's LoadCredential= lines name them.
EXAMPLE_CREDENTIALS = {"secret-key": "k" * 40, "api-token": "token",
                       "entra-secret": "entra", "google-secret": "google",
                       "support-password": PASSWORD}


def run(path, environ=None) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = check_config(path, environ={} if environ is None else environ, out=out)
    return code, out.getvalue().splitlines()


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_valid_toml(here):
    shutil.copytree(FIXTURES, here / "etc")
    code, lines = run("etc/postroom.toml", FIXTURE_ENV)
    assert (code, lines) == (0, [
        "OK: etc/postroom.toml (3 accounts, 2 oauth apps, 1 imap connection; runtime "
        "runtime.json: 2 conversation parents, 2 follower parents, identification by "
        "messageId, subject)"])


def test_the_example_toml_passes_with_its_credentials(here):
    for name, value in EXAMPLE_CREDENTIALS.items():
        (here / name).write_text(value + "\n")
    code, lines = run(ROOT / "config" / "postroom.example.toml",
                      {"CREDENTIALS_DIRECTORY": str(here)})
    assert code == 0
    assert lines[0].startswith("OK: ")
    assert lines[0].endswith("postroom.example.toml (4 accounts, 2 oauth apps, 1 imap "
                             "connection; runtime runtime.example.json: 1 conversation "
                             "parent, 2 follower parents, identification by messageId)")
    assert lines[1:] == [
        'warning: runtime.example.json: conversationParents[0].accounts[0]: no account '
        f'named "<account_id>" in {ROOT / "config" / "postroom.example.toml"}']


def test_the_example_toml_fails_without_its_credentials(here):
    code, lines = run(ROOT / "config" / "postroom.example.toml", {})
    assert code == 1
    unset = "$CREDENTIALS_DIRECTORY is not set (systemd sets it for a unit with LoadCredential=)"
    assert [line.split(": ", 1)[1] for line in lines] == [
        f'daemon.secret_key_file: "%d/secret-key": {unset}',
        f'http.api_token_file: "%d/api-token": {unset}',
        f'oauth_apps[0].client_secret_file: "%d/entra-secret": {unset}',
        f'oauth_apps[1].client_secret_file: "%d/google-secret": {unset}',
        f'accounts[0].password_file: "%d/support-password": {unset}',
    ]


def test_runtime_json_alone(here):
    code, lines = run(ROOT / "config" / "runtime.example.json")
    assert code == 0
    assert lines == [f"OK: {ROOT / 'config' / 'runtime.example.json'} (1 conversation "
                     "parent, 2 follower parents, identification by messageId)"]


def test_broken_runtime_json_alone(here):
    (here / "runtime.json").write_text('{"identificationMethod": "x", "conversation": []}')
    assert run("runtime.json") == (1, [
        'runtime.json: identificationMethod: "x" is not an identification method; allowed: '
        "messageId, subject",
        "runtime.json: conversation: must be an object",
    ])


def test_every_error_one_per_line_and_no_secret(here):
    (here / "postroom.toml").write_text(f"""
[[accounts]]
id = "a"
email = "a@example"
auth = "nowhere"
password = "{PASSWORD}"

[[accounts]]
id = "b"
email = "not an address"
auth = "maildir"
""")
    code, lines = run("postroom.toml")
    assert code == 1
    assert lines == [
        "postroom.toml: accounts[0].password: secrets come from password_env or "
        "password_file, never from the file itself",
        'postroom.toml: accounts[1].email: "not an address" does not look like an email '
        "address",
    ]
    assert PASSWORD not in "\n".join(lines)


def test_warnings_are_printed_after_ok(here):
    (here / "postroom.toml").write_text('[http]\nbind = "0.0.0.0:8025"\n')
    assert run("postroom.toml") == (0, [
        "OK: postroom.toml (0 accounts, 0 oauth apps, 0 imap connections; runtime built-in "
        "defaults: 1 conversation parent, 2 follower parents, identification by messageId)",
        'warning: postroom.toml: http.bind: "0.0.0.0:8025" is not a loopback address and no '
        "api_token is set: the API is open to the network",
    ])


def test_missing_file_and_unknown_extension(here):
    assert run("nope.toml") == (1, ["nope.toml: no such file"])
    assert run("nope.json") == (1, ['nope.json: no such file "nope.json"'])
    assert run("postroom.yaml") == (1, ["postroom.yaml: expected a .toml or a .json file"])


def test_default_output_is_stdout(here, capsys):
    (here / "postroom.toml").write_text("")
    assert check_config("postroom.toml", environ={}) == 0
    assert capsys.readouterr().out.startswith("OK: postroom.toml (0 accounts")


# -- issue 9: what only shows one message at a time -----------------------------------


def account_with(tmp_path, extra: str) -> Path:
    from tests.helpers import write_config

    config = write_config(tmp_path, http=False)
    config.write_text(config.read_text().replace('maildir = "Maildir"\n',
                                                 f'maildir = "Maildir"\n{extra}\n'))
    (tmp_path / "templates").mkdir(exist_ok=True)
    return config


@pytest.mark.parametrize(("source", "line", "reason"), [
    ("<p>Hello</p>\n<p>{{ 1/0 }}</p>\n", 2, "ZeroDivisionError: division by zero"),
    ('<p>\n\n{{ "a" * 10**8 }}</p>', 3, "BudgetExceeded: a repetition would be"),
    ("{% for i in range(10**9) %}x{% endfor %}", 1, "BudgetExceeded"),
    ("<p>{{ recipient_name }</p>\n", 1, "unexpected '}'"),
    ("<p>\n{% for x in y %}\n", 2, "Unexpected end of template"),
])
def test_a_broken_template_is_named_with_its_line(tmp_path, source, line, reason):
    config = account_with(tmp_path, 'template = "broken"')
    (tmp_path / "templates" / "broken.html").write_text(source)
    code, lines = run(config)
    assert code == 1
    (problem,) = lines
    assert problem.startswith(f"templates/broken.html: line {line}: ")
    assert reason in problem


def test_templates_that_need_store_data_or_are_fine_pass(tmp_path):
    config = account_with(tmp_path, 'template = "branded"')
    (tmp_path / "templates" / "branded.html").write_text(
        "<p>{{ recipient_name }} {{ helpdesk.helpdesknumber + 1 }}</p>{{ conversation_messages }}")
    code, lines = run(config)
    assert code == 0 and lines[0].startswith("OK: ")


def test_broken_automatic_reply_texts_are_named_with_their_line(tmp_path):
    # (A missing template is refused when the file loads: see the issue-14 tests below.)
    config = account_with(tmp_path, '[accounts.auto_reply]\n'
                                    'enabled = true\nsubject = "Case {{ 1/0 }}"\n'
                                    'body = "Hello\\n{{ recipient_name"')
    code, lines = run(config)
    assert code == 1
    assert lines[0] == ("postroom.toml: accounts[0].auto_reply.subject: line 1: fails when "
                        "rendered with sample data: ZeroDivisionError: division by zero")
    assert lines[1].startswith("postroom.toml: accounts[0].auto_reply.body: line 2: ")


def test_limetype_and_property_names_the_store_refuses_are_named(tmp_path):
    import json

    config = account_with(tmp_path, "")
    runtime = json.loads((tmp_path / "runtime.json").read_text())
    runtime["conversation"] = {"limetype": "conversation; DROP TABLE x",
                               "propertySubject": "sub-ject"}
    runtime["conversationParents"][0]["properties"] = [
        {"property": "sub ject", "messageProperty": "subject"},
        {"property": "company", "searchPath": "person.company"}]
    (tmp_path / "runtime.json").write_text(json.dumps(runtime))
    code, lines = run(config)
    assert code == 1
    assert lines == [
        'runtime.json: conversationParents[0].properties[0].property: "sub ject" is not a '
        "name the store accepts: letters, digits and _ only ([A-Za-z0-9_]+)",
        'runtime.json: conversation.limetype: "conversation; DROP TABLE x" is not a name '
        "the store accepts: letters, digits and _ only ([A-Za-z0-9_]+)",
        'runtime.json: conversation.propertySubject: "sub-ject" is not a name the store '
        "accepts: letters, digits and _ only ([A-Za-z0-9_]+)",
    ]
    code, lines = run(tmp_path / "runtime.json")
    assert code == 1 and len(lines) == 3 and lines[0].startswith(str(tmp_path))


# -- issue 14: languages, templates, an account on two parents ---------------------------

ISSUE_14_TOML = """\
[daemon]
runtime = "runtime.json"

[[accounts]]
id = "support"
email = "support@a.example"
auth = "maildir"
maildir = "Maildir"
language = "{language}"
template = "{template}"
"""


def test_unknown_language_and_template_are_errors_with_the_key_path(here):
    (here / "runtime.json").write_text("{}")
    (here / "postroom.toml").write_text(ISSUE_14_TOML.format(language="pt-BR",
                                                             template="branded"))
    code, lines = run("postroom.toml")
    assert code == 1
    assert lines == [
        'postroom.toml: accounts[0].language: no phrases for automatic mail in "pt-BR" '
        "(available: da, de, en, es, fi, fr, nb, nl, sv)",
        'postroom.toml: accounts[0].template: no template "branded": neither '
        "templates/branded.html next to postroom.toml nor a shipped one (default)"]


def test_every_catalogued_language_and_a_local_template_pass(here):
    (here / "runtime.json").write_text("{}")
    (here / "templates").mkdir()
    (here / "templates" / "branded.html").write_text("<p>{{ message }}</p>")
    for language in ("en", "sv", "nb", "da", "fi", "de", "nl", "fr", "es", "fi-FI"):
        (here / "postroom.toml").write_text(ISSUE_14_TOML.format(language=language,
                                                                 template="branded"))
        assert run("postroom.toml")[0] == 0, language


def test_an_account_on_two_parents_is_a_warning_naming_the_winner(here):
    (here / "runtime.json").write_text(
        '{"conversationParents": [{"limetype": "helpdesk", "accounts": ["support"]},'
        ' {"limetype": "deal", "accounts": ["sales", "support"]}]}')
    (here / "postroom.toml").write_text(ISSUE_14_TOML.format(language="en",
                                                             template="default"))
    code, lines = run("postroom.toml")
    assert code == 0
    assert 'warning: runtime.json: conversationParents[1].accounts[1]: "support" is also ' \
           "listed by conversationParents[0] (helpdesk), which wins: its new " \
           "conversations get a helpdesk, never a deal" in lines


def test_a_send_message_action_no_plugin_handles_is_a_warning(here):
    from daemon.plugins.actions import plugin_warnings

    park = {"action": {"id": "limepkg_basic_helpdesk.helpdesk-park", "params": {}},
            "label": "Send and update deadline"}
    update = {"action": {"id": "limepkg_standard_actions.update-limeobject",
                         "params": {"limeObject": {"helpdeskstatus": "waiting"}}},
              "label": "Send and wait"}
    import json
    (here / "runtime.json").write_text(json.dumps({"conversationParents": [
        {"limetype": "helpdesk", "sendMessageActions": [update, park]}]}))
    toml = ISSUE_14_TOML.format(language="en", template="default").replace(
        '[daemon]\n', '[daemon]\nplugins = ["plugins_contrib.update_limeobject"]\n')
    (here / "postroom.toml").write_text(toml)
    out = io.StringIO()
    assert check_config("postroom.toml", environ={}, out=out,
                        plugin_checks=plugin_warnings) == 0
    warnings = [line for line in out.getvalue().splitlines() if line.startswith("warning")]
    assert warnings == [
        "warning: runtime.json: conversationParents[0].sendMessageActions[1].action.id: "
        'no loaded plugin handles "limepkg_basic_helpdesk.helpdesk-park": the button '
        '"Send and update deadline" would send the message and do nothing else']


def test_check_config_prints_only_its_verdict_and_a_broken_plugin_warns(here):
    from daemon.plugins.actions import plugin_warnings

    (here / "runtime.json").write_text("{}")
    toml = ISSUE_14_TOML.format(language="en", template="default").replace(
        '[daemon]\n', '[daemon]\nplugins = ["plugins_contrib.update_limeobject", '
        '"no_such_module_here"]\n')
    (here / "postroom.toml").write_text(toml)
    out = io.StringIO()
    assert check_config("postroom.toml", environ={}, out=out,
                        plugin_checks=plugin_warnings) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("OK: postroom.toml")
    assert lines[1:] == [
        "warning: postroom.toml: daemon.plugins: plugin 'no_such_module_here': "
        "plugin.load_failed: ModuleNotFoundError: No module named 'no_such_module_here'"]

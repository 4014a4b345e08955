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
EXAMPLE_ENV = {"POSTROOM_SECRET_KEY": "k" * 40, "POSTROOM_API_TOKEN": "token",
               "POSTROOM_ENTRA_SECRET": "entra", "POSTROOM_GOOGLE_SECRET": "google",
               "POSTROOM_SUPPORT_PASSWORD": PASSWORD}


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


def test_the_example_toml_passes_with_its_variables_set(here):
    code, lines = run(ROOT / "config" / "postroom.example.toml", EXAMPLE_ENV)
    assert code == 0
    assert lines[0].startswith("OK: ")
    assert lines[0].endswith("postroom.example.toml (4 accounts, 2 oauth apps, 1 imap "
                             "connection; runtime runtime.example.json: 1 conversation "
                             "parent, 2 follower parents, identification by messageId)")
    assert lines[1:] == [
        'warning: runtime.example.json: conversationParents[0].accounts[0]: no account '
        f'named "<account_id>" in {ROOT / "config" / "postroom.example.toml"}']


def test_the_example_toml_fails_without_its_variables(here):
    code, lines = run(ROOT / "config" / "postroom.example.toml", {})
    assert code == 1
    assert [line.split(": ", 1)[1] for line in lines] == [
        'daemon.secret_key_env: environment variable "POSTROOM_SECRET_KEY" is not set',
        'http.api_token_env: environment variable "POSTROOM_API_TOKEN" is not set',
        'oauth_apps[0].client_secret_env: environment variable "POSTROOM_ENTRA_SECRET" is '
        "not set",
        'oauth_apps[1].client_secret_env: environment variable "POSTROOM_GOOGLE_SECRET" is '
        "not set",
        'accounts[0].password_env: environment variable "POSTROOM_SUPPORT_PASSWORD" is not '
        "set",
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

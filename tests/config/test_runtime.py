import json
from pathlib import Path

import pytest

from daemon.config.runtime import (
    ConversationParent,
    PropertyMapping,
    RuntimeConfig,
    load_runtime,
    parse_runtime,
)
from daemon.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "runtime.example.json"
REFERENCE = Path("/work/shared/reference/email-integration-configuration.txt")


def problems(data, file="runtime.json"):
    with pytest.raises(ConfigError) as info:
        parse_runtime(data, file=file)
    return [str(p) for p in info.value.problems]


def _reference_example() -> str:
    text = REFERENCE.read_text()
    start = text.index("\nExample Configuration\n")
    end = text.index("\nMessage Action Examples\n", start)
    return text[start:end].removeprefix("\nExample Configuration\n")


# -- the reference example -------------------------------------------------------------

@pytest.mark.skipif(not REFERENCE.exists(), reason="reference notes not available")
def test_example_file_is_the_reference_example_verbatim():
    assert json.loads(EXAMPLE.read_text()) == json.loads(_reference_example())


def test_reference_example_loads_unchanged_and_dumps_back_to_itself():
    runtime = load_runtime(EXAMPLE)
    assert runtime.model_dump(by_alias=True, mode="json") == json.loads(EXAMPLE.read_text())
    parent = runtime.conversation_parents[0]
    assert parent.accounts == ("<account_id>",)
    assert parent.limetype == "helpdesk"
    assert parent.properties[2] == PropertyMapping(
        property="person", message_property="fromAddress", search_path="person.email")
    assert runtime.conversation_message.property_email_engine_id == "emailengineid"
    assert runtime.conversation_message_error.relation_resolved_by == "coworker"
    assert runtime.identification_methods == frozenset({"messageId"})


def test_empty_object_gives_the_reference_defaults_with_every_account():
    runtime = parse_runtime({}, file="runtime.json")
    example = json.loads(EXAMPLE.read_text())
    example["conversationParents"][0]["accounts"] = []
    assert runtime.model_dump(by_alias=True, mode="json") == example
    assert runtime == RuntimeConfig()
    assert runtime.parent_for("anything") is runtime.conversation_parents[0]


def test_partial_section_keeps_the_other_defaults():
    runtime = parse_runtime({"conversation": {"limetype": "ticketthread"}}, file="r.json")
    assert runtime.conversation.limetype == "ticketthread"
    assert runtime.conversation.property_thread_id == "threadid"


def test_snake_case_keys_are_accepted_too():
    runtime = parse_runtime({"allow_automatic_emails": False}, file="r.json")
    assert runtime.allow_automatic_emails is False


@pytest.mark.parametrize("snippet", [
    # The three sendMessageActions examples from the reference, as written there.
    {"action": {"params": {"limeObject": {"helpdeskstatus": {"constant": "waiting_customer"}},
                           "confirm": {"options": {}}, "nextCommand": {"params": {}}},
                "id": "limepkg_standard_actions.update-limeobject"},
     "label": "Send and set status to waiting on customer", "icon": "waiting_room"},
    {"action": {"params": {"deadlinePropertyName": ""},
                "id": "limepkg_basic_helpdesk.helpdesk-park"},
     "label": "Send and update deadline", "icon": "hot_line"},
    {"action": {"params": {"subject": "Something with test."},
                "id": "my_test_solution.my-test-command"},
     "label": "My test action", "icon": "test_tube"},
])
def test_reference_message_actions_load(snippet):
    data = {"conversationParents": [{"limetype": "helpdesk", "sendMessageActions": [snippet]}]}
    action = parse_runtime(data, file="r.json").conversation_parents[0].send_message_actions[0]
    assert action.action.id == snippet["action"]["id"]
    assert action.action.params == snippet["action"]["params"]
    assert action.label == snippet["label"]


# -- identificationMethod --------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("messageId", {"messageId"}),
    ("subject", {"subject"}),
    (["messageId", "subject"], {"messageId", "subject"}),
    ("messageId,subject", {"messageId", "subject"}),
    ("subject, messageId", {"messageId", "subject"}),
])
def test_identification_method_forms(value, expected):
    runtime = parse_runtime({"identificationMethod": value}, file="r.json")
    assert runtime.identification_methods == frozenset(expected)


@pytest.mark.parametrize(("value", "reason"), [
    ("thread", '"thread" is not an identification method; allowed: messageId, subject'),
    (["messageId", 3], "3 is not an identification method; allowed: messageId, subject"),
    ([], 'must be "messageId", "subject", or both (a list, or "messageId,subject")'),
    (True, 'must be "messageId", "subject", or both (a list, or "messageId,subject")'),
])
def test_identification_method_errors(value, reason):
    assert problems({"identificationMethod": value}) == [
        f"runtime.json: identificationMethod: {reason}"]


# -- property mappings -----------------------------------------------------------------

def _parent_with(*properties):
    return {"conversationParents": [{"limetype": "helpdesk", "properties": list(properties)}]}


def test_property_mapping_needs_a_source():
    assert problems(_parent_with({"property": "subject"})) == [
        "runtime.json: conversationParents[0].properties[0]: needs at least one of "
        "messageProperty, searchPath or default"]


def test_explicit_null_default_counts_as_a_source():
    runtime = parse_runtime(_parent_with({"property": "x", "default": None}), file="r.json")
    mapping = runtime.conversation_parents[0].properties[0]
    assert mapping.has_default and mapping.default is None
    assert mapping.model_dump(by_alias=True) == {"property": "x", "default": None}


def test_unknown_message_property_lists_the_allowed_ones():
    assert problems(_parent_with({"property": "p", "messageProperty": "fromEmail"})) == [
        'runtime.json: conversationParents[0].properties[0].messageProperty: "fromEmail" is '
        "not a message property; allowed: subject, plainText, htmlBody, fromAddress, "
        "fromName, toAddresses, ccAddresses, date, messageId, language"]


@pytest.mark.parametrize("path", ["person", "person.", ".email", "person email", "a..b"])
def test_search_path_must_be_dotted(path):
    assert problems(_parent_with({"property": "p", "searchPath": path})) == [
        f'runtime.json: conversationParents[0].properties[0].searchPath: "{path}" must be '
        '"limetype.property" (dotted, at least two parts)']


def test_search_path_may_be_longer_than_two_parts():
    runtime = parse_runtime(_parent_with({"property": "p", "searchPath": "person.company.x"}),
                            file="r.json")
    assert runtime.conversation_parents[0].properties[0].search_path == "person.company.x"


def test_a_property_is_mapped_once():
    assert problems(_parent_with({"property": "p", "default": 1},
                                 {"property": "p", "default": 2})) == [
        'runtime.json: conversationParents[0].properties[1].property: "p" is mapped more '
        "than once"]


# -- structure errors ------------------------------------------------------------------

def test_unknown_keys_use_camel_case_paths_and_hints():
    assert problems({"conversationParents": [{"limetype": "h", "relationConversaton": "c"}],
                     "conversationMessage": {"propertyEmailEngineID": "x"},
                     "zzz": 1}) == [
        "runtime.json: conversationParents[0].relationConversaton: unknown key "
        "(did you mean 'relationConversation'?)",
        "runtime.json: conversationMessage.propertyEmailEngineID: unknown key "
        "(did you mean 'propertyEmailEngineId'?)",
        "runtime.json: zzz: unknown key",
    ]


def test_several_problems_are_reported_together():
    found = problems({
        "personalizedEmails": "sometimes",
        "conversationParents": [{"accounts": "support"}],
        "followerParents": {"limetype": "person"},
        "document": {"documentType": 7},
    })
    assert found == [
        "runtime.json: personalizedEmails: must be a valid boolean, unable to interpret "
        "input",
        "runtime.json: conversationParents[0].limetype: required key missing",
        "runtime.json: conversationParents[0].accounts: must be an array",
        "runtime.json: followerParents: must be an array",
        "runtime.json: document.documentType: must be a valid string",
    ]


def test_empty_conversation_parents_is_an_error():
    assert problems({"conversationParents": []}) == [
        "runtime.json: conversationParents: needs at least one conversation parent (leave "
        "the key out for the default helpdesk parent)"]


def test_top_level_must_be_an_object():
    assert problems([1, 2]) == ["runtime.json: must be a JSON object"]


def test_json_syntax_error_has_line_and_column(tmp_path):
    path = tmp_path / "runtime.json"
    path.write_text('{\n  "conversation": {\n    limetype: "x"\n  }\n}\n')
    with pytest.raises(ConfigError) as info:
        load_runtime(path)
    assert str(info.value) == (f"{path}: line 3, column 5: Expecting property name enclosed "
                               "in double quotes")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_runtime(tmp_path / "nope.json")
    assert str(info.value) == f'{tmp_path / "nope.json"}: no such file "{tmp_path / "nope.json"}"'


def test_models_are_frozen():
    runtime = RuntimeConfig()
    with pytest.raises(ValueError, match="frozen"):
        runtime.allow_automatic_emails = False  # type: ignore[misc]


# -- choosing a parent -----------------------------------------------------------------

def test_parent_for_prefers_a_listing_then_every_account_then_the_only_one():
    runtime = RuntimeConfig(conversation_parents=(
        ConversationParent(limetype="deal", accounts=("sales",)),
        ConversationParent(limetype="helpdesk"),
    ))
    assert runtime.parent_for("sales").limetype == "deal"
    assert runtime.parent_for("support").limetype == "helpdesk"
    only = RuntimeConfig(conversation_parents=(
        ConversationParent(limetype="deal", accounts=("<account_id>",)),))
    assert only.parent_for("support").limetype == "deal"
    none = RuntimeConfig(conversation_parents=(
        ConversationParent(limetype="deal", accounts=("sales",)),
        ConversationParent(limetype="helpdesk", accounts=("support",)),
    ))
    assert none.parent_for("other") is None


# -- issue 14: the simplified properties form ------------------------------------------

REFERENCE_SIMPLIFIED = {
    "subject": "email_subject",
    "description": "email_body",
    "person": "sender_email",
    "company": "company_from_person",
    "source": "email",
}


def test_the_reference_simplified_mapping_loads_as_the_full_form():
    runtime = parse_runtime({"conversationParents": [
        {"limetype": "helpdesk", "properties": REFERENCE_SIMPLIFIED}]}, file="r.json")
    dumped = [m.model_dump(by_alias=True) for m in runtime.conversation_parents[0].properties]
    assert dumped == [
        {"property": "subject", "messageProperty": "subject"},
        {"property": "description", "messageProperty": "plainText"},
        {"property": "person", "messageProperty": "fromAddress", "searchPath": "person.email"},
        {"property": "company", "searchPath": "person.company"},
        {"property": "source", "default": "email"},
    ]


def test_simplified_values_sender_name_literals_and_follower_addresses():
    runtime = parse_runtime({
        "followerParents": [{"limetype": "contact", "propertyAddress": "mail"}],
        "conversationParents": [{"limetype": "deal", "properties": {
            "name": "sender_name", "contact": "sender_email", "from": "sender_email",
            "priority": 2, "open": True}}]}, file="r.json")
    dumped = [m.model_dump(by_alias=True) for m in runtime.conversation_parents[0].properties]
    assert dumped == [
        {"property": "name", "messageProperty": "fromName"},
        {"property": "contact", "messageProperty": "fromAddress", "searchPath": "contact.mail"},
        {"property": "from", "messageProperty": "fromAddress"},
        {"property": "priority", "default": 2},
        {"property": "open", "default": True},
    ]

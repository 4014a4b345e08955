"""The contrib sender whitelist."""

import pytest

from daemon import Address, Classification, MessageKind, ParsedMessage
from plugins_contrib.whitelist import SenderWhitelist

AUTO = Classification(MessageKind.AUTOMATIC, ("header.auto-submitted",))


def message(sender: str) -> ParsedMessage:
    return ParsedMessage(message_id="x@y", subject="Alert", from_=Address(sender))


@pytest.fixture
def plugin():
    p = SenderWhitelist()
    p.postroom_configure({"allow": ["alerts@monitor.example.com", "*@status.example.org"],
                          "block": ["bad@status.example.org"]})
    return p


@pytest.mark.parametrize(("sender", "verdict"), [
    ("alerts@monitor.example.com", True),
    ("ALERTS@Monitor.Example.com", True),
    ("ops@status.example.org", True),
    ("bad@status.example.org", False),
    ("someone@else.example", None),
])
def test_verdicts(plugin, sender, verdict):
    assert plugin.postroom_allow_sender(message(sender), AUTO) is verdict


def test_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="unknown keys"):
        SenderWhitelist().postroom_configure({"alow": ["x"]})


def test_message_without_sender_gets_no_opinion(plugin):
    msg = ParsedMessage(message_id=None, subject="", from_=None)
    assert plugin.postroom_allow_sender(msg, AUTO) is None

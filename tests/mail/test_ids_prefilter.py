"""find_body_markers skips bodies that cannot hold ``[ref:``; it must never skip one that can."""

from __future__ import annotations

import pytest

from daemon.mail.ids import find_body_markers, text_marker
from tests.mail.test_ids import make


@pytest.mark.parametrize("bracket", ["&#91;", "&#091;", "&#x5b;", "&#X5B;", "&lsqb;",
                                     "&lbrack;", "&#91"])
def test_a_bracket_written_as_a_character_reference_is_still_found(bracket):
    marker = text_marker(make())
    token = marker[5:-1]
    body = f"<p>Thanks, see {bracket}{marker[1:]}</p>"
    assert "[" not in body
    assert find_body_markers(body) == [token]


def test_bodies_without_any_bracket_have_no_markers():
    assert find_body_markers("Please send a refund; ref: none &amp; <b>thanks</b>") == []

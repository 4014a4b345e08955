"""without_remote_resources: quoted customer HTML never loads anything from elsewhere."""

from __future__ import annotations

import pytest

from daemon.mail.html import sanitize_html, without_remote_resources


@pytest.mark.parametrize("html, gone", [
    ('<img src="https://t.example/p.gif" width="1">', "t.example"),
    ('<img src="//t.example/p.gif">', "t.example"),
    ('<img src=" HTTP://t.example/p.gif">', "t.example"),
    ('<img srcset="https://t.example/p.gif 1x" src="cid:a">', "t.example"),
    ('<p style="background-color:url(https://t.example/bg)">x</p>', "t.example"),
    ('<p style="width:u\\72l(https://t.example/bg)">x</p>', "t.example"),
    ('<p style="color:red;background-image:image-set(\'https://t.example/a\' 1x)">x</p>',
     "t.example"),
    ('<table background="https://t.example/bg"><tr><td background="https://t.example/c">'
     'x</td></tr></table>', "t.example"),
    ('<img src="data:image/svg+xml;base64,PHN2Zz4=">', "svg"),
    ('<img src="https://t.example/p.gif"><script>x()</script>', "script"),
])
def test_remote_resources_are_removed(html: str, gone: str):
    assert gone in html
    assert gone not in without_remote_resources(html)


def test_local_images_links_and_plain_styles_stay():
    html = ('<p style="color:red">Hi <a href="https://acme.example/x">manual</a></p>'
            '<img src="cid:logo@acme" alt="logo">'
            '<img src="data:image/png;base64,iVBORw0KGgo=" alt="dot">')
    assert without_remote_resources(html) == sanitize_html(html)

"""The one translation boundary (daemon/imap/errors.py): a table of library errors."""

from __future__ import annotations

import imaplib
import ssl

import pytest
from imapclient import exceptions as imap_exc

from daemon.errors import AuthError, ConnectError, PostroomError, ProtocolError
from daemon.imap.errors import map_errors, translate

WHERE = "mail.example.com:993"


def _cert_error() -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] ...")
    exc.verify_message = "unable to get local issuer certificate"
    exc.reason = "CERTIFICATE_VERIFY_FAILED"
    return exc


TABLE = [
    (imap_exc.LoginError("b'[AUTHENTICATIONFAILED] Authentication failed.'"), AuthError,
     f"login refused by {WHERE}: [AUTHENTICATIONFAILED] Authentication failed."),
    (_cert_error(), ConnectError,
     f"certificate verify failed for {WHERE}: unable to get local issuer certificate"),
    (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), ConnectError,
     f"TLS failed with {WHERE}: "),
    (TimeoutError(), ConnectError, f"timed out talking to {WHERE}"),
    (ConnectionRefusedError(111, "Connection refused"), ConnectError,
     f"connection refused by {WHERE}"),
    (ConnectionResetError(104, "Connection reset by peer"), ConnectError,
     f"connection to {WHERE} failed: Connection reset by peer"),
    (imaplib.IMAP4.abort("socket error: EOF"), ConnectError,
     f"connection to {WHERE} lost: socket error: EOF"),
    (imap_exc.IMAPClientError(b"select failed: Mailbox doesn't exist"), ProtocolError,
     f"{WHERE}: select failed: Mailbox doesn't exist"),
    (imap_exc.CapabilityError("Server does not support IDLE"), ProtocolError,
     f"{WHERE}: Server does not support IDLE"),
]


@pytest.mark.parametrize(("exc", "kind", "message"), TABLE,
                         ids=[type(row[0]).__name__ for row in TABLE])
def test_library_errors_map_to_postroom_errors(exc, kind, message):
    with pytest.raises(kind) as caught, map_errors(WHERE, account="support"):
        raise exc
    assert type(caught.value) is kind
    assert str(caught.value).startswith(message)
    assert caught.value.account == "support"
    assert caught.value.__cause__ is exc


def test_unchained_mapping_drops_the_cause_and_its_frames():
    password = "hunter2"

    def login(secret: str) -> None:
        raise imap_exc.LoginError("b'[AUTHENTICATIONFAILED] Authentication failed.'")

    with pytest.raises(AuthError) as caught, map_errors(WHERE, chain=False):
        login(password)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True
    context = caught.value.__context__
    assert context is None or context.__traceback__ is None  # no frame holds the password


@pytest.mark.parametrize("exc", [ValueError("a bug"), PostroomError("ours already")])
def test_other_errors_pass_through_unchanged(exc):
    with pytest.raises(type(exc)) as caught, map_errors(WHERE):
        raise exc
    assert caught.value is exc
    assert translate(ValueError("x"), WHERE) is None

"""Fixtures for the OAuth tests: the Entra and Google emulators, a Dovecot that asks them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.fakes.dovecot import Dovecot, dovecot_binary
from tests.fakes.entra import FakeEntra
from tests.fakes.google_oauth import FakeGoogle

ENTRA_CLIENT = "11111111-2222-4333-8444-555555555555"
ENTRA_SECRET = "entra-client-secret-NEVER-IN-CLEAR-3f9"
GOOGLE_CLIENT = "1234-test.apps.googleusercontent.com"
GOOGLE_SECRET = "google-client-secret-NEVER-IN-CLEAR-77a"


@pytest.fixture(scope="session")
def oauth_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def entra(oauth_ca: trustme.CA, tmp_path: Path) -> Iterator[FakeEntra]:
    server = FakeEntra(oauth_ca, tmp_path, client_id=ENTRA_CLIENT, client_secret=ENTRA_SECRET)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def google(oauth_ca: trustme.CA, tmp_path: Path) -> Iterator[FakeGoogle]:
    server = FakeGoogle(oauth_ca, tmp_path, client_id=GOOGLE_CLIENT,
                        client_secret=GOOGLE_SECRET)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def oauth_dovecot(entra: FakeEntra) -> Iterator[Dovecot]:
    """A Dovecot whose oauth2 passdb asks the Entra emulator about every token."""
    if dovecot_binary() is None:
        pytest.skip("dovecot is not installed")
    server = Dovecot(oauth2_introspection_url=entra.introspection_url)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def google_dovecot(google: FakeGoogle) -> Iterator[Dovecot]:
    """A Dovecot whose oauth2 passdb asks the Google emulator about every token."""
    if dovecot_binary() is None:
        pytest.skip("dovecot is not installed")
    server = Dovecot(oauth2_introspection_url=google.introspection_url)
    server.start()
    yield server
    server.cleanup()

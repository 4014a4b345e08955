"""The emulators behave like the real services where the daemon can tell."""

from __future__ import annotations

import imapclient
import pytest
import requests

from tests.fakes.oauth_server import IssuedToken
from tests.oauth.conftest import ENTRA_CLIENT


def test_dovecot_logs_in_with_a_live_token_and_refuses_a_revoked_one(entra, oauth_dovecot):
    user = oauth_dovecot.add_user("ann@contoso.example")
    access, _ = entra.issue(IssuedToken(user.name, ENTRA_CLIENT, ("IMAP",)))
    with imapclient.IMAPClient(oauth_dovecot.host, oauth_dovecot.imap_port, ssl=False,
                               timeout=10) as client:
        client.oauth2_login(user.name, access)
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    entra.revoke(user.name)
    with imapclient.IMAPClient(oauth_dovecot.host, oauth_dovecot.imap_port, ssl=False,
                               timeout=10) as client:
        with pytest.raises(imapclient.exceptions.LoginError, match="AUTHENTICATIONFAILED"):
            client.oauth2_login(user.name, access)


def test_entra_discovery_is_served_over_https_with_the_test_ca(entra):
    session = requests.Session()
    session.trust_env = False
    found = session.get(f"{entra.base_url}/contoso/v2.0/.well-known/openid-configuration",
                        verify=str(entra.ca_file), timeout=5).json()
    assert found["issuer"] == f"{entra.base_url}/contoso/v2.0"
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"{entra.base_url}/contoso/v2.0/.well-known/openid-configuration",
                    timeout=5)

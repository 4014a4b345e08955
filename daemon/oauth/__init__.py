"""OAuth 2.0 for Microsoft 365 and Google: sign-in, tokens at rest, refresh (issue 11).

Layout (one concept per module)::

    provider.py   what a provider does (begin, finish, refresh) and how refusals classify
    microsoft.py  Entra through msal (one SerializableTokenCache per account)
    google.py     Google through httpx (PKCE, offline access, granular consent checks)
    flow.py       single-use states, one-time start links, redirect URIs and callback paths
    tokens.py     grants sealed with AES-GCM (HKDF from the secret key) in checkpoints
    expiry.py     client secret expiry and Google Testing-status warnings
    commands.py   postroom authenticate and postroom rekey-oauth
    manager.py    the daemon's side: sign-ins, access tokens on demand, status and warnings
    actor.py      an imap_smtp account's actor: needs_authentication, then IMAP XOAUTH2

The routes are in :mod:`daemon.http.oauth`; the XOAUTH2 steps in
:func:`daemon.imap.login.xoauth2_login` and :class:`daemon.outbox.smtp.SmtpSession`.
See docs/oauth.md.
"""

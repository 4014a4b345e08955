"""OAuth: tokens at rest, the consent flow, refresh, XOAUTH2 (issue 11)."""

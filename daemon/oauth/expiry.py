"""Warnings an OAuth app earns before it breaks: its client secret expiring, Google Testing.

Entra client secrets expire (at most two years after creation) and nothing at Microsoft
reminds anyone; Google apps in "Testing" publishing status get refresh tokens that die
after 7 days. Both break every account on the app at once, so they are warned about from
:data:`~daemon.config.load.SECRET_EXPIRY_WARNING_DAYS` ahead (the secret), or always (the
Testing status): at start and daily in the log, in /status, ``postroom accounts`` and
/metrics. The texts come from here so all of those say the same thing.
"""

from __future__ import annotations

__all__ = ["app_warnings", "secret_days_left"]

from datetime import date
from typing import Any

from daemon.config.load import SECRET_EXPIRY_WARNING_DAYS


def secret_days_left(app: Any, today: date) -> int | None:
    """Days until ``client_secret_expires`` (negative after it); None when not set."""
    if app.client_secret_expires is None:
        return None
    return int((app.client_secret_expires - today).days)


def app_warnings(app: Any, today: date) -> list[str]:
    """The app's warnings as of ``today``; empty when all is well."""
    texts = []
    days = secret_days_left(app, today)
    if days is not None and days < 0:
        texts.append(f"the client secret expired on {app.client_secret_expires}")
    elif days is not None and days <= SECRET_EXPIRY_WARNING_DAYS:
        texts.append(f"the client secret expires on {app.client_secret_expires} "
                     f"(in {days} days); renew it now")
    if app.publishing_status == "testing":
        texts.append("the app is in Google's Testing status: refresh tokens die after "
                     "7 days; publish the app")
    return texts

"""Moved: bounce reading lives in the :mod:`daemon.mail.bounces` package.

This module only re-exports its public names for code written against the old path
(a branch merged later may still import ``daemon.mail.bounce``); new code imports
:mod:`daemon.mail.bounces`.
"""

from __future__ import annotations

__all__ = ["BounceReport", "detect_bounce", "from_mail_system", "parse_bounce",
           "parse_delivery_status"]

from daemon.mail.bounces import (
           BounceReport,
           detect_bounce,
           from_mail_system,
           parse_bounce,
           parse_delivery_status,
)

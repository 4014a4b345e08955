"""Outgoing mail: composed from the account's template, queued durably, sent by the outbox.

Layout::

    phrases.py   the sentences we write into mail, per language
    compose.py   templates, merge codes and MIME (pure: values in, bytes out)
    queue.py     queue_to_followers: one composed copy per follower, inside a transaction
    reply.py     an agent's reply from the API: checks, the message, snippets, queueing
    smtp.py      SMTP delivery (smtplib in worker threads) and its error mapping
    transport.py how each account sends: SMTP, the demo's Maildir, or not yet (OAuth)
    sentcopy.py  the copy in the IMAP Sent folder

The actor that drains the queue is :mod:`daemon.actors.outbox`.
"""

from daemon.outbox.compose import OutgoingTooLarge
from daemon.outbox.queue import Outgoing, mail_queuer, queue_to_followers

__all__ = ["Outgoing", "OutgoingTooLarge", "mail_queuer", "queue_to_followers"]

"""Outgoing mail: composed from the account's template, queued durably, sent by the outbox.

Layout::

    phrases.py    the sentences we write into mail, per language
    compose.py    templates, merge codes and MIME (pure: values in, bytes out)
    sandbox.py    templates rendered under a memory and time budget
    outgoing.py   Outgoing: one account's composer (config, secret, clock, templates)
    queue.py      queue_to_followers: one composed copy per follower, inside a transaction
    recipients.py   who receives a copy (the rules)
    content.py      what every copy of one message shares
    copies.py       one copy: message follower row, signed Message-ID, bytes, enqueue
    budget.py     the hourly budget for automatic mail; beyond it, copies are held
    reply.py      an agent's reply from the API: checks, the message, snippets, queueing
    smtp.py       SMTP delivery (smtplib in worker threads) and its error mapping
    transport.py  how each account sends: SMTP, the demo's Maildir, or not yet (OAuth)
    delivery.py   what a delivery result writes to the store (one transaction each)
    sentcopy.py   the copy in the Sent folder, through the SentFolder Protocol

The actor that drains the queue is :mod:`daemon.actors.outbox`.
"""

from daemon.outbox.compose import OutgoingTooLarge
from daemon.outbox.queue import Outgoing, mail_queuer, queue_to_followers

__all__ = ["Outgoing", "OutgoingTooLarge", "mail_queuer", "queue_to_followers"]

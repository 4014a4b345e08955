"""A throw-away Dovecot for the IMAP tests: real server, loopback only, no system config.

:class:`Dovecot` writes a config into a fresh directory and runs ``dovecot -F -c <conf>`` as
a child process. It listens on two free loopback ports: plain IMAP (STARTTLS offered,
plaintext login allowed) and implicit TLS, both with a certificate from a `trustme` CA
(:attr:`Dovecot.ca_file`). Each user has a passwd-file of its own (Dovecot would not
notice a second change to one shared file within the same second), so tests add users
without a restart; mail is Maildir under the
directory, with IDLE, CONDSTORE, MOVE and UIDPLUS as Dovecot has them.

Running as root, Dovecot refuses to run its login processes as root and refuses a mail
user with uid 0, so logins run as ``dovenull``, internal processes as ``dovecot`` and the
mailboxes belong to ``nobody``; the directory is made traversable for them (pytest's own
tmp dirs are mode 0700, hence a directory of our own under the system temp dir). As an
ordinary user, everything runs as that user.

Helpers are blocking (imapclient); from Trio tests call them through
``trio.to_thread.run_sync``.

``Dovecot(oauth2_introspection_url=URL)`` also offers XOAUTH2 and OAUTHBEARER through an
``oauth2`` passdb that POSTs every token to ``URL`` (an emulator from
:mod:`tests.fakes.oauth_server`): ``200 {"active": true, "username": U}`` logs U in,
``200 {"active": false}`` is ``NO [AUTHENTICATIONFAILED]``. Users need no passwd-file
entry for that; :meth:`Dovecot.add_user` still gives the tests an admin login to the same
mailbox (the userdb is static, keyed by the user name).
"""

from __future__ import annotations

__all__ = ["Dovecot", "MailUser", "dovecot_binary", "make_message"]

import contextlib
import grp
import itertools
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import trustme
from imapclient import IMAPClient

HOST = "127.0.0.1"
_users = itertools.count(1)


def dovecot_binary() -> str | None:
    """Path of the ``dovecot`` binary, or None when it is not installed."""
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.path.exists(p)),
        None)


def make_message(subject: str = "Hello", *, message_id: str | None = None,
                 body: str = "Hello there.", extra_headers: str = "",
                 size: int | None = None) -> bytes:
    """A small RFC 5322 message; ``size`` pads the body to about that many bytes."""
    mid = message_id or f"<{uuid.uuid4().hex}@test.postroom>"
    text = (f"From: Ann Example <ann@example.com>\r\nTo: support@example.com\r\n"
            f"Subject: {subject}\r\nMessage-ID: {mid}\r\n"
            f"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n{extra_headers}"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n")
    raw = text.encode()
    if size is not None and size > len(raw):
        line = b"x" * 76 + b"\r\n"
        raw += line * ((size - len(raw)) // len(line) + 1)
    return raw


@dataclass(frozen=True)
class MailUser:
    """A Dovecot user: log in with ``name`` / ``password``."""

    name: str
    password: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _accounts() -> tuple[str, str, int, int]:
    """(login user, internal user, mail uid, mail gid) for this process."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return me.pw_name, me.pw_name, me.pw_uid, me.pw_gid
    nobody = pwd.getpwnam("nobody")
    try:
        gid = grp.getgrnam("nogroup").gr_gid
    except KeyError:
        gid = nobody.pw_gid
    return "dovenull", "dovecot", nobody.pw_uid, gid


_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = {instance}
listen = {host}
protocols = imap
ssl = yes
ssl_cert = <{root}/tls/cert.pem
ssl_key = <{root}/tls/key.pem
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain login{extra_mechanisms}
disable_plaintext_auth = no
auth_failure_delay = 0
auth_cache_size = 0
login_trusted_networks = 127.0.0.0/8
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:~/Maildir
mail_fsync = never
default_process_limit = 500
default_client_limit = 4000
imap_idle_notify_interval = 2 mins
# IDLE learns of new mail through inotify; past fs.inotify.max_user_instances (128 by
# default, shared by every IDLE process running as the mail user) Dovecot falls back to
# looking every mailbox_idle_check_interval (30 s by default). Keep that fallback fast.
mailbox_idle_check_interval = 1 secs
{oauth2_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u{passwd_mechanisms}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {imaps_port}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = 1
}}
service imap {{
  process_limit = 500
}}
# No auth penalty (growing delays after failed logins from one IP): the wrong-password
# tests fail logins on purpose, all from 127.0.0.1.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 500
}}
"""

_OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
"""

_OAUTH2_ARGS = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
force_introspection = yes
"""


class Dovecot:
    """One Dovecot instance in its own directory. Not thread-safe; one per test session.

    Attributes:
        root: the instance directory (config, log, passwd-file, mailboxes, TLS files).
        host: always ``127.0.0.1``.
        imap_port: plain IMAP with STARTTLS.
        imaps_port: implicit TLS.
        ca_file: the trustme CA that signed the server certificate (PEM).
        ca: the trustme CA object itself.
    """

    host = HOST

    def __init__(self, *, oauth2_introspection_url: str | None = None) -> None:
        binary = dovecot_binary()
        if binary is None:
            raise RuntimeError("dovecot is not installed")
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="postroom-dovecot-"))
        self.root.chmod(0o755)
        self.instance_name = f"postroom-test-{self.root.name}"
        self.imap_port = _free_port()
        self.imaps_port = _free_port()
        self._login_user, self._internal_user, self.mail_uid, self.mail_gid = _accounts()
        self._process: subprocess.Popen[bytes] | None = None
        self.oauth2_introspection_url = oauth2_introspection_url
        self._write_tls()
        self._write_config()

    # -- lifecycle ------------------------------------------------------------------------

    def _write_tls(self) -> None:
        tls = self.root / "tls"
        tls.mkdir()
        self.ca = trustme.CA()
        leaf = self.ca.issue_cert(HOST, "localhost")
        leaf.private_key_pem.write_to_path(tls / "key.pem")
        leaf.cert_chain_pems[0].write_to_path(tls / "cert.pem")
        for pem in leaf.cert_chain_pems[1:]:
            pem.write_to_path(tls / "cert.pem", append=True)
        self.ca_file = tls / "ca.pem"
        self.ca.cert_pem.write_to_path(self.ca_file)

    def _write_config(self) -> None:
        for sub in ("run", "state"):
            (self.root / sub).mkdir()
        home = self.root / "home"
        home.mkdir()
        os.chown(home, self.mail_uid, self.mail_gid)
        (self.root / "users").mkdir()
        self.config = self.root / "dovecot.conf"
        oauth = self.oauth2_introspection_url
        if oauth is not None:
            (self.root / "dovecot-oauth2.conf.ext").write_text(_OAUTH2_ARGS.format(url=oauth))
        self.config.write_text(_CONFIG.format(
            extra_mechanisms=" xoauth2 oauthbearer" if oauth else "",
            oauth2_passdb=_OAUTH2_PASSDB.format(root=self.root) if oauth else "",
            passwd_mechanisms="\n  mechanisms = plain login" if oauth else "",
            root=self.root, host=HOST, instance=self.instance_name, imap_port=self.imap_port,
            imaps_port=self.imaps_port, login_user=self._login_user,
            internal_user=self._internal_user, uid=self.mail_uid, gid=self.mail_gid))

    def start(self, timeout: float = 15.0) -> None:
        """Start Dovecot and return once it greets on the IMAP port."""
        if self._process is not None:
            raise RuntimeError("already running")
        out = (self.root / "stdout.log").open("ab")
        self._process = subprocess.Popen([self.binary, "-F", "-c", str(self.config)],
                                         stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"dovecot exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.imap_port), timeout=1) as s:
                    if s.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dovecot did not answer in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.02)  # polling a child process's readiness, not test ordering

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Dovecot (SIGTERM, then SIGKILL); its clients see the connection drop.

        The master does not wait for its ``imap`` processes: a client in IDLE would keep
        its session for a while. So the instance's leftover processes (found by their
        process title, which carries this instance's unique name) are ended too, as a
        real server stop or crash would.
        """
        process, self._process = self._process, None
        if process is None:
            return
        children = self._leftover_pids()
        process.send_signal(signal.SIGTERM)
        self._signal(children, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._end_leftovers(timeout)

    def _leftover_pids(self) -> list[int]:
        title = f"dovecot-{self.instance_name}/".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if (entry / "cmdline").read_bytes().startswith(title):
                    pids.append(int(entry.name))
            except OSError:
                continue
        return pids

    @staticmethod
    def _signal(pids: list[int], signum: int) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def _end_leftovers(self, timeout: float) -> None:
        pids = self._leftover_pids()
        self._signal(pids, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pids and (pids := [p for p in pids if _alive(p)]):
            if time.monotonic() > deadline:
                self._signal(pids, signal.SIGKILL)
                return
            time.sleep(0.01)  # waiting for processes to exit, not ordering test steps

    def restart(self) -> None:
        """Stop and start again on the same ports with the same mailboxes."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop and remove the instance directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The end of Dovecot's log, for failure messages."""
        text = ""
        for name in ("dovecot.log", "stdout.log"):
            path = self.root / name
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- users ----------------------------------------------------------------------------

    def add_user(self, name: str | None = None, password: str | None = None) -> MailUser:
        """Add a user: one passwd-file per user, so no cached file can hide it."""
        user = MailUser(name or f"user{next(_users)}-{uuid.uuid4().hex[:6]}",
                        password or uuid.uuid4().hex)
        (self.root / "users" / user.name).write_text(
            f"{user.name}:{{PLAIN}}{user.password}::::::\n")
        return user

    # -- IMAP helpers (blocking) ---------------------------------------------------------

    @contextlib.contextmanager
    def client(self, user: MailUser, *, tls: bool = False) -> Iterator[IMAPClient]:
        """A logged-in admin connection (plain IMAP, or implicit TLS with the test CA)."""
        if tls:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            client = IMAPClient(HOST, self.imaps_port, ssl=True, ssl_context=context,
                                timeout=10)
        else:
            client = IMAPClient(HOST, self.imap_port, ssl=False, timeout=10)
        try:
            client.login(user.name, user.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(self, user: MailUser, raw: bytes, folder: str = "INBOX",
               flags: tuple[bytes, ...] = (), when: datetime | None = None) -> int:
        """APPEND a message; return its UID (from APPENDUID)."""
        with self.client(user) as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            resp = c.append(folder, raw, flags=flags, msg_time=when)
        return int(resp.split(b"APPENDUID", 1)[1].split()[1].rstrip(b"]"))

    def append_many(self, user: MailUser, raws: Iterable[bytes], folder: str = "INBOX",
                    flags: tuple[bytes, ...] = ()) -> list[int]:
        """APPEND many messages over one connection (a big backlog in seconds); their UIDs."""
        uids = []
        with self.client(user) as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            for raw in raws:
                resp = c.append(folder, raw, flags=flags)
                uids.append(int(resp.split(b"APPENDUID", 1)[1].split()[1].rstrip(b"]")))
        return uids

    def create_folder(self, user: MailUser, folder: str) -> None:
        with self.client(user) as c:
            c.create_folder(folder)

    def delete_folder(self, user: MailUser, folder: str) -> None:
        with self.client(user) as c:
            c.delete_folder(folder)

    def folder_exists(self, user: MailUser, folder: str) -> bool:
        with self.client(user) as c:
            return bool(c.folder_exists(folder))

    def uidvalidity(self, user: MailUser, folder: str = "INBOX") -> int:
        with self.client(user) as c:
            return int(c.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def messages(self, user: MailUser, folder: str = "INBOX",
                 ) -> dict[int, tuple[tuple[bytes, ...], bytes]]:
        """``{uid: (flags, raw)}`` of every message in ``folder`` (read-only, no \\Seen)."""
        with self.client(user) as c:
            if not c.folder_exists(folder):
                return {}
            c.select_folder(folder, readonly=True)
            uids = c.search(["ALL"])
            data = c.fetch(uids, ["FLAGS", "BODY.PEEK[]"]) if uids else {}
        return {uid: (tuple(d[b"FLAGS"]), d[b"BODY[]"]) for uid, d in data.items()}

    def deliver_to_maildir(self, user: MailUser, raw: bytes) -> Path:
        """Drop a message into the user's ``Maildir/new`` as a local MDA would.

        Works while Dovecot is stopped; Dovecot assigns it a UID when it next looks.
        """
        maildir = self.root / "home" / user.name / "Maildir"
        for path in (maildir.parent, maildir, maildir / "new", maildir / "cur",
                     maildir / "tmp"):
            path.mkdir(exist_ok=True)
            os.chown(path, self.mail_uid, self.mail_gid)
        name = f"{time.time_ns()}.P{os.getpid()}.postroom-test"
        tmp = maildir / "tmp" / name
        tmp.write_bytes(raw)
        os.chown(tmp, self.mail_uid, self.mail_gid)
        target = maildir / "new" / name
        tmp.rename(target)
        return target

"""Delivery channels: email over SMTP, webhooks (Slack- and Teams-compatible JSON) and the console.

Each channel's `send` blocks until the other side accepted the message or raises DeliveryError; the notifier
runs it in a worker thread and retries failures with back-off. Errors never carry a webhook URL (Slack and
Teams webhook URLs are secrets) nor the SMTP password.
"""

from __future__ import annotations

import contextlib
import json
import queue
import quopri
import smtplib
import ssl
import sys
import threading
import urllib.error
import urllib.request
from email.header import Header
from email.utils import formatdate, make_msgid
from typing import Protocol, TextIO

from notify.messages import Outgoing, slack_payload, teams_payload
from schemas.errors import SafeguardError


class DeliveryError(SafeguardError):
    """A channel did not accept a message; it will be retried."""


class Channel(Protocol):
    def send(self, message: Outgoing, address: str) -> None: ...

    def close(self) -> None: ...


class ConsoleChannel:
    """Prints each message on a stream (stdout): deliveries are visible without a mail server."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: Outgoing, address: str) -> None:
        stream = self._stream or sys.stdout
        text = f"=== to {message.contact_name} ({address}) · {message.subject}\n{message.text()}\n"
        with self._lock:
            stream.write(text)
            stream.flush()

    def close(self) -> None:
        return None


class SmtpChannel:
    """Email over SMTP (optionally STARTTLS and login), keeping a few connections open for bursts."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout_s: float = 10.0,
        pool_size: int = 4,
    ) -> None:
        self._host, self._port, self._sender = host, port, sender
        self._username, self._password = username, password
        self._starttls, self._timeout = starttls, timeout_s
        self._pool: queue.LifoQueue[smtplib.SMTP] = queue.LifoQueue(maxsize=pool_size)

    def _connect(self) -> smtplib.SMTP:
        conn = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        try:
            conn.ehlo()
            if self._starttls:
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if self._username:
                conn.login(self._username, self._password or "")
        except BaseException:
            _quietly_close(conn)
            raise
        return conn

    def build(self, message: Outgoing, address: str) -> bytes:
        """The RFC 5322 message as bytes: plain text, UTF-8 (quoted-printable when not ASCII).

        Written out directly rather than through `email.message.EmailMessage`, whose policy machinery costs
        about half a millisecond per message: a burst of a thousand alerts is a thousand messages."""
        body = message.text().replace("\r", "").replace("\n", "\r\n")
        if body.isascii():
            encoding, payload = "7bit", body.encode("ascii")
        else:
            encoding, payload = "quoted-printable", quopri.encodestring(body.encode("utf-8")).replace(b"\n", b"\r\n")
        headers = [
            ("From", self._sender),
            ("To", address),
            ("Subject", _header(message.subject)),
            ("Date", formatdate(localtime=False, usegmt=True)),
            ("Message-ID", make_msgid(domain="safeguard.notify")),
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Transfer-Encoding", encoding),
            ("X-Safeguard-Message", str(message.message_id)),
            ("X-Safeguard-Alerts", ",".join(a.alert_id for a in message.alerts)),
        ]
        head = "".join(f"{name}: {_one_line(value)}\r\n" for name, value in headers)
        return head.encode("ascii") + b"\r\n" + payload

    def send(self, message: Outgoing, address: str) -> None:
        mail = self.build(message, address)
        for fresh in (False, True):  # a pooled connection the server has since closed gets one fresh retry
            conn: smtplib.SMTP | None = None
            try:
                conn = self._connect() if fresh else self._take()
                conn.sendmail(self._sender, [address], mail)
            except smtplib.SMTPServerDisconnected as exc:
                if conn is not None:
                    _quietly_close(conn)
                if fresh:
                    raise DeliveryError(f"SMTP server {self._host}:{self._port} disconnected: {exc}") from None
                continue
            except smtplib.SMTPRecipientsRefused as exc:
                _quietly_close(conn)
                codes = ", ".join(f"{code}" for code, _ in exc.recipients.values())
                raise DeliveryError(f"SMTP server refused the recipient ({codes})") from None
            except smtplib.SMTPResponseException as exc:
                _quietly_close(conn)
                raise DeliveryError(f"SMTP server answered {exc.smtp_code}: {exc.smtp_error!r}"[:300]) from None
            except (smtplib.SMTPException, OSError) as exc:
                _quietly_close(conn)
                raise DeliveryError(f"SMTP {self._host}:{self._port}: {type(exc).__name__}: {exc}"[:300]) from None
            self._give_back(conn)
            return

    def _take(self) -> smtplib.SMTP:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return self._connect()

    def _give_back(self, conn: smtplib.SMTP) -> None:
        try:
            self._pool.put_nowait(conn)
        except queue.Full:
            _quietly_close(conn)

    def close(self) -> None:
        while True:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                return
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                _quietly_close(conn)


def _one_line(value: str) -> str:
    """A header value can never start another header."""
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def _header(value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8").encode()


def _quietly_close(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        with contextlib.suppress(OSError):
            conn.close()


class WebhookChannel:
    """POSTs the message as Slack- or Teams-compatible JSON; any 2xx answer is acceptance."""

    def __init__(self, fmt: str, timeout_s: float = 10.0) -> None:
        if fmt not in ("slack", "teams"):
            raise ValueError(f"unknown webhook format {fmt!r}")
        self._fmt = fmt
        self._timeout = timeout_s

    def send(self, message: Outgoing, address: str) -> None:
        if not address.startswith(("http://", "https://")):
            raise DeliveryError("the webhook address is not an http(s) URL")
        payload = slack_payload(message) if self._fmt == "slack" else teams_payload(message)
        request = urllib.request.Request(  # noqa: S310 (scheme checked above)
            address,
            data=json.dumps(payload).encode("utf-8"),
            headers={"Content-Type": "application/json", "User-Agent": "safeguard-notify"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310 (scheme checked)
                status = response.status
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"webhook answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise DeliveryError(f"webhook unreachable: {type(reason).__name__}: {reason}"[:300]) from None
        if not 200 <= status < 300:
            raise DeliveryError(f"webhook answered HTTP {status}")

    def close(self) -> None:
        return None

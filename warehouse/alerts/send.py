"""Sending one notice to one channel, with retries and backoff.

A webhook is POSTed its flavour's JSON (``messages.webhook_body``); it is delivered when the
answer is 2xx and, for the services that answer 200 with an error code in the body (Feishu,
WeCom, DingTalk), that code is 0. An e-mail goes over SMTP (``smtplib``). Every failure is
retried ``attempts`` times in all, ``backoff_s`` doubling between them; the last one is
raised as ``DeliveryError``, whose message names the channel and what went wrong (a status,
an error code, an exception's class) and never the URL, the body or a password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from warehouse.alerts.channels import Channel, EmailChannel, WebhookChannel
from warehouse.alerts.messages import Notice, email_message, webhook_body


class DeliveryError(Exception):
    """A notice that did not reach its channel after every attempt."""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    attempts: int = 3
    backoff_s: float = 1.0
    timeout_s: float = 10.0


def send(
    channel: Channel,
    notice: Notice,
    *,
    retry: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Deliver ``notice`` to ``channel``; the attempts it took. Raises DeliveryError."""
    wait = retry.backoff_s
    for attempt in range(1, retry.attempts + 1):
        try:
            if isinstance(channel, WebhookChannel):
                _post(channel, notice, retry.timeout_s)
            else:
                _mail(channel, notice, retry.timeout_s)
            return attempt
        except DeliveryError as exc:
            if attempt == retry.attempts:
                raise DeliveryError(
                    f"alert channel {channel.name} ({channel.type}): {exc} after {attempt} attempts"
                ) from None
        sleep(wait)
        wait *= 2
    raise AssertionError("unreachable")


def signed(channel: WebhookChannel, body: dict[str, Any], now: float) -> tuple[str, dict[str, Any]]:
    """The URL and body of a message to a bot with a signing secret: DingTalk's ``timestamp``
    (ms) and ``sign`` query parameters, Feishu's ``timestamp`` (s) and ``sign`` body fields;
    both sign ``"<timestamp>\n<secret>"`` with HMAC-SHA256, in base64."""
    if not channel.secret:
        return channel.url, body
    if channel.type == "dingtalk":
        stamp = str(int(now * 1000))
        to_sign = f"{stamp}\n{channel.secret}".encode()
        digest = hmac.new(channel.secret.encode(), to_sign, hashlib.sha256).digest()
        sign = base64.b64encode(digest).decode()
        joiner = "&" if "?" in channel.url else "?"
        return f"{channel.url}{joiner}{urlencode({'timestamp': stamp, 'sign': sign})}", body
    stamp = str(int(now))
    key = f"{stamp}\n{channel.secret}".encode()
    sign = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    return channel.url, {"timestamp": stamp, "sign": sign, **body}


def _post(channel: WebhookChannel, notice: Notice, timeout_s: float) -> None:
    url, body = signed(channel, webhook_body(channel.type, notice), time.time())
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
            answer = client.post(url, json=body)
    except httpx.HTTPError as exc:
        raise DeliveryError(type(exc).__name__) from None
    if not answer.is_success:
        raise DeliveryError(f"HTTP {answer.status_code}")
    if channel.type in ("feishu", "wecom", "dingtalk"):
        try:
            body = answer.json()
        except ValueError:
            raise DeliveryError("an answer that is not JSON") from None
        code = body.get("code", body.get("errcode", body.get("StatusCode", 0)))
        if code not in (0, None):
            raise DeliveryError(f"error code {code}")


def _mail(channel: EmailChannel, notice: Notice, timeout_s: float) -> None:
    message = email_message(notice, sender=channel.sender, to=channel.to)
    try:
        smtp: smtplib.SMTP
        if channel.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                channel.host, channel.port, timeout=timeout_s, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(channel.host, channel.port, timeout=timeout_s)
        with smtp:
            if channel.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if channel.username and channel.password:
                smtp.login(channel.username, channel.password)
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP {exc.smtp_code}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(type(exc).__name__) from None

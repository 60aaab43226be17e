"""Where alerts go: the channels of ``COC_ALERT_CHANNELS``, a JSON list (or ``@path`` of a
file holding it).

Each channel is an object with a ``type`` and an optional ``name`` (what logs and the
delivery state call it; default ``<type>-<n>``, never the URL):

- ``{"type": "webhook", "url": "https://..."}``: the episode as generic JSON;
- ``{"type": "slack" | "feishu" | "wecom" | "dingtalk", "url": "https://..."}``: that
  service's incoming-webhook (custom bot) message; ``"secret": "..."`` signs a Feishu or
  DingTalk bot's messages when its signature check is on;
- ``{"type": "email", "host": "smtp.example.com", "port": 587, "sender": "coc@x",
  "to": ["oncall@x"], "username": "...", "password": "...", "security": "starttls"}``:
  ``security`` one of ``starttls`` (default), ``ssl``, ``none`` (loopback only).

Webhook URLs carry their token and are secrets like SMTP passwords: they are kept out of
``repr`` and never appear in an error, a log line or Dagster metadata; an error names the
channel by its ``name`` and position.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pipelines.errors import ConfigError

#: the webhook flavours, each a body format of ``messages.py``
WEBHOOK_TYPES = ("webhook", "slack", "feishu", "wecom", "dingtalk")
SECURITY = ("starttls", "ssl", "none")


@dataclass(frozen=True, kw_only=True)
class WebhookChannel:
    name: str
    type: str
    url: str = field(repr=False)
    #: the signing secret of a Feishu or DingTalk bot with signature checks (``send.py``)
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class EmailChannel:
    name: str
    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security: str = "starttls"
    type: str = "email"


Channel = WebhookChannel | EmailChannel


def channels_from_text(text: str | None) -> tuple[Channel, ...]:
    """The channels of a ``COC_ALERT_CHANNELS`` value: JSON, or ``@path`` of a JSON file;
    empty or unset: none. A ConfigError names what is wrong, never a URL or password."""
    text = (text or "").strip()
    if not text:
        return ()
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"COC_ALERT_CHANNELS: cannot read {path}: {exc.strerror}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"COC_ALERT_CHANNELS is not JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise ConfigError("COC_ALERT_CHANNELS must be a JSON list of channel objects")
    channels = [_channel(n, item) for n, item in enumerate(raw, 1)]
    names = [c.name for c in channels]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"COC_ALERT_CHANNELS: channel names must differ: {', '.join(twice)}")
    return tuple(channels)


def _channel(n: int, item: object) -> Channel:
    if not isinstance(item, dict):
        raise ConfigError(f"COC_ALERT_CHANNELS: channel {n} is not an object")
    kind = str(item.get("type", "")).strip().lower()
    name = str(item.get("name") or f"{kind or 'channel'}-{n}")
    where = f"COC_ALERT_CHANNELS: channel {n} ({name})"
    if kind in WEBHOOK_TYPES:
        url = str(item.get("url") or "")
        _check_url(url, where)
        secret = item.get("secret")
        if secret is not None and kind not in ("feishu", "dingtalk"):
            raise ConfigError(f"{where}: 'secret' signs feishu and dingtalk messages only")
        return WebhookChannel(name=name, type=kind, url=url, secret=secret and str(secret))
    if kind == "email":
        to = item.get("to")
        recipients = (to,) if isinstance(to, str) else tuple(to or ())
        if not recipients or not all(isinstance(r, str) and "@" in r for r in recipients):
            raise ConfigError(f"{where}: 'to' must be one or more e-mail addresses")
        sender = str(item.get("sender") or "")
        if "@" not in sender:
            raise ConfigError(f"{where}: 'sender' must be an e-mail address")
        host = str(item.get("host") or "")
        if not host:
            raise ConfigError(f"{where}: 'host' (the SMTP server) is missing")
        security = str(item.get("security") or "starttls")
        if security not in SECURITY:
            raise ConfigError(f"{where}: 'security' must be one of {', '.join(SECURITY)}")
        if security == "none" and not _loopback(host):
            raise ConfigError(f"{where}: 'security': 'none' is for a loopback SMTP server only")
        try:
            port = int(item.get("port") or (465 if security == "ssl" else 587))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: 'port' must be a number") from None
        return EmailChannel(
            name=name,
            host=host,
            port=port,
            sender=sender,
            to=recipients,
            username=item.get("username"),
            password=item.get("password"),
            security=security,
        )
    kinds = ", ".join((*WEBHOOK_TYPES, "email"))
    raise ConfigError(f"{where}: 'type' must be one of {kinds}")


def _check_url(url: str, where: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(f"{where}: 'url' is not a URL") from None
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return
    raise ConfigError(f"{where}: 'url' must be https:// (plain http:// for loopback hosts only)")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

"""What an alert says, in each channel's format.

A ``Notice`` is one event of one episode of ``alert_episodes``: ``opened`` (a new episode,
still open), ``closed`` (the key is back), ``open`` (a line of the daily digest) or
``withdrawn`` (an episode sent as opened that a later build no longer finds: its days were
ingested again, with other data). Every
message names the dimension and key, the failure rate against the baseline frozen at the
onset, since when, the instances and failures over the episode, and a link to the dashboard
filtered to the key when ``COC_DASHBOARD_URL`` is set.

Body formats, one per webhook flavour:

- ``webhook``: ``{"event", "dimension", "key", "opened", "closed", "last_alerted", "days",
  "failure_rate", "baseline_rate", "instances", "failed", "peak_score", "link", "text"}``;
- ``slack``: incoming webhook, ``{"text": ...}`` (mrkdwn);
- ``feishu`` (Feishu/Lark custom bot): ``{"msg_type": "text", "content": {"text": ...}}``;
- ``wecom`` (WeCom group bot): ``{"msgtype": "markdown", "markdown": {"content": ...}}``;
- ``dingtalk`` (DingTalk custom robot): ``{"msgtype": "markdown", "markdown": {"title": ...,
  "text": ...}}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlencode

EVENTS = ("opened", "closed", "open", "withdrawn")


@dataclass(frozen=True, kw_only=True)
class Episode:
    """One row of ``alert_episodes``."""

    dimension: str
    key: str | None
    opened: date
    last_alerted: date
    closed: date | None
    days: int
    peak_score: float | None
    baseline_rate: float | None
    failure_rate: float | None
    instances: int
    failed: int

    @property
    def identity(self) -> str:
        """What the delivery state calls the episode: dimension, key and onset day."""
        return f"{self.dimension}\x1f{self.key}\x1f{self.opened.isoformat()}"

    @classmethod
    def withdrawn(cls, identity: str) -> Episode:
        """An episode known by its identity only (no longer in ``alert_episodes``)."""
        dimension, key, opened = identity.split("\x1f")
        day = date.fromisoformat(opened)
        return cls(
            dimension=dimension,
            key=None if key == "None" else key,
            opened=day,
            last_alerted=day,
            closed=None,
            days=0,
            peak_score=None,
            baseline_rate=None,
            failure_rate=None,
            instances=0,
            failed=0,
        )


@dataclass(frozen=True, kw_only=True)
class Notice:
    event: str
    episode: Episode
    link: str | None = None


def dashboard_link(base: str | None, episode: Episode) -> str | None:
    """The dashboard filtered to the episode's key, or None without ``COC_DASHBOARD_URL``."""
    if not base:
        return None
    query = urlencode({"dimension": episode.dimension, "key": episode.key or ""})
    return f"{base.rstrip('/')}/?{query}"


def _percent(rate: float | None) -> str:
    if rate is None:
        return "n/a"
    return f"{100 * rate:.2f}%" if rate < 0.01 else f"{100 * rate:.1f}%"


def headline(notice: Notice) -> str:
    e = notice.episode
    what = f"{e.dimension} {e.key if e.key is not None else '(none)'}"
    if notice.event == "closed":
        return f"Resolved: {what} is back to its usual failure rate"
    if notice.event == "open":
        return f"Still failing: {what}"
    if notice.event == "withdrawn":
        return f"Withdrawn: {what} is no longer detected (its days were ingested again)"
    return f"Failing more than usual: {what}"


def details(notice: Notice) -> list[str]:
    e = notice.episode
    if notice.event == "withdrawn":
        lines = [
            f"dimension: {e.dimension}",
            f"key: {e.key if e.key is not None else '(none)'}",
            f"since: {e.opened.isoformat()} (as first sent)",
        ]
        return [*lines, f"dashboard: {notice.link}"] if notice.link else lines
    lines = [
        f"dimension: {e.dimension}",
        f"key: {e.key if e.key is not None else '(none)'}",
        f"failure rate: {_percent(e.failure_rate)} against {_percent(e.baseline_rate)} before",
        f"since: {e.opened.isoformat()}",
        f"instances: {e.instances:,}, failed: {e.failed:,}",
    ]
    if e.closed is not None:
        lines.append(f"closed: {e.closed.isoformat()} (open {e.days} days)")
    else:
        lines.append(f"open for {e.days} days, last alert {e.last_alerted.isoformat()}")
    if notice.link:
        lines.append(f"dashboard: {notice.link}")
    return lines


def text(notice: Notice) -> str:
    return "\n".join([headline(notice), *details(notice)])


def webhook_body(kind: str, notice: Notice) -> dict[str, Any]:
    """The JSON body of one notice for the webhook flavour ``kind``."""
    if kind == "slack":
        return {"text": f"*{headline(notice)}*\n" + "\n".join(details(notice))}
    if kind == "feishu":
        return {"msg_type": "text", "content": {"text": text(notice)}}
    if kind == "wecom":
        body = "\n".join(f"> {line}" for line in details(notice))
        return {"msgtype": "markdown", "markdown": {"content": f"**{headline(notice)}**\n{body}"}}
    if kind == "dingtalk":
        body = "\n\n".join(f"- {line}" for line in details(notice))
        title = headline(notice)
        return {
            "msgtype": "markdown",
            "markdown": {"title": title, "text": f"### {title}\n\n{body}"},
        }
    if kind == "webhook":
        e = notice.episode
        return {
            "event": notice.event,
            "dimension": e.dimension,
            "key": e.key,
            "opened": e.opened.isoformat(),
            "closed": e.closed.isoformat() if e.closed else None,
            "last_alerted": e.last_alerted.isoformat(),
            "days": e.days,
            "failure_rate": e.failure_rate,
            "baseline_rate": e.baseline_rate,
            "instances": e.instances,
            "failed": e.failed,
            "peak_score": e.peak_score,
            "link": notice.link,
            "text": text(notice),
        }
    raise ValueError(f"no body format for webhook type {kind!r}")


def email_message(notice: Notice, *, sender: str, to: tuple[str, ...]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[coc] {headline(notice)}"
    message["From"] = sender
    message["To"] = ", ".join(to)
    message.set_content(text(notice) + "\n")
    return message

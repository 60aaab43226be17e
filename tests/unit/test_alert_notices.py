"""Which notices are due, and what they say: pure functions over episodes and a ledger."""

from __future__ import annotations

from datetime import date, timedelta

from warehouse.alerts.deliver import due_notices
from warehouse.alerts.ledger import record_name
from warehouse.alerts.messages import Episode, Notice, dashboard_link, text, webhook_body

NEWEST = date(2026, 11, 25)


class MemoryLedger:
    def __init__(self) -> None:
        self.records: set[str] = set()

    def has(self, record: str) -> bool:
        return record in self.records

    def add(self, record: str) -> None:
        self.records.add(record)

    def starting(self, prefix: str) -> list[str]:
        return sorted(r for r in self.records if r.startswith(prefix))


def episode(opened: int, closed: int | None = None, key: str = "cn-east-3b") -> Episode:
    """Days counted back from NEWEST."""
    return Episode(
        dimension="zone",
        key=key,
        opened=NEWEST - timedelta(days=opened),
        last_alerted=NEWEST - timedelta(days=(closed or 0) + 1 if closed else 0),
        closed=None if closed is None else NEWEST - timedelta(days=closed),
        days=3,
        peak_score=8.2,
        baseline_rate=0.012,
        failure_rate=0.118,
        instances=2080,
        failed=245,
    )


def deliver_all(ledger: MemoryLedger, episodes: list[Episode], **kw: object) -> list[str]:
    """What one run sends: the due notices, their records added."""
    sent = []
    for notice, records in due_notices(
        NEWEST,
        episodes,
        "team",
        ledger,
        recent_days=kw.get("recent_days", 2),
        digest=bool(kw.get("digest")),
    ):
        sent.append(f"{notice.event} {notice.episode.key}")
        ledger.records.update(records)
    return sent


def test_an_open_episode_is_sent_once_and_its_close_once() -> None:
    ledger = MemoryLedger()
    assert deliver_all(ledger, [episode(3)]) == ["opened cn-east-3b"]
    assert deliver_all(ledger, [episode(3)]) == []
    closed = episode(3, closed=0)
    assert deliver_all(ledger, [closed]) == ["closed cn-east-3b"]
    assert deliver_all(ledger, [closed]) == []


def test_a_long_closed_episode_never_pages_and_a_recent_one_once() -> None:
    ledger = MemoryLedger()
    old, recent = episode(40, closed=30, key="old"), episode(5, closed=1, key="recent")
    assert deliver_all(ledger, [old, recent]) == ["closed recent"]
    assert deliver_all(ledger, [old, recent]) == []


def test_an_opened_episode_that_a_rebuild_no_longer_finds_is_withdrawn_once() -> None:
    ledger = MemoryLedger()
    assert deliver_all(ledger, [episode(3)]) == ["opened cn-east-3b"]
    # the onset day was ingested again: the episode now opens a day later
    later = episode(2)
    assert deliver_all(ledger, [later]) == ["opened cn-east-3b", "withdrawn cn-east-3b"]
    assert deliver_all(ledger, [later]) == []
    said = text(Notice(event="withdrawn", episode=Episode.withdrawn(episode(3).identity)))
    assert said.startswith("Withdrawn: zone cn-east-3b is no longer detected")
    assert "since: 2026-11-22" in said


def test_the_digest_repeats_open_episodes_once_a_day() -> None:
    ledger = MemoryLedger()
    assert deliver_all(ledger, [episode(3)], digest=True) == ["opened cn-east-3b"]
    assert deliver_all(ledger, [episode(3)], digest=True) == ["open cn-east-3b"]
    assert deliver_all(ledger, [episode(3)], digest=True) == []
    assert record_name("team", "open 2026-11-25", episode(3).identity) in ledger.records


def test_a_message_says_what_where_since_and_how_much_with_a_link() -> None:
    e = episode(3)
    link = dashboard_link("http://dash.example:8501/", e)
    assert link == "http://dash.example:8501/?dimension=zone&key=cn-east-3b"
    said = text(Notice(event="opened", episode=e, link=link))
    for part in ("zone", "cn-east-3b", "11.8% against 1.2% before", "since: 2026-11-22"):
        assert part in said
    assert "instances: 2,080, failed: 245" in said and link in said
    assert webhook_body("wecom", Notice(event="opened", episode=e))["msgtype"] == "markdown"


def test_dingtalk_and_feishu_messages_are_signed_as_their_docs_say() -> None:
    import base64
    import hashlib
    import hmac
    from urllib.parse import parse_qs, quote_plus, urlsplit

    from warehouse.alerts.channels import channels_from_text
    from warehouse.alerts.send import signed

    secret, now = "SEC0123456789abcdef", 1764633600.25
    ding, feishu = channels_from_text(
        '[{"type": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=t",'
        f' "secret": "{secret}"}},'
        f' {{"type": "feishu", "url": "https://open.feishu.cn/hook/x", "secret": "{secret}"}}]'
    )
    assert secret not in repr(ding) and secret not in repr(feishu)
    # DingTalk's recipe: HMAC-SHA256 keyed by the secret over "timestamp\nsecret", base64, the
    # timestamp in milliseconds, both as query parameters
    url, body = signed(ding, {"msgtype": "text"}, now)
    stamp = "1764633600250"
    digest = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
    query = parse_qs(urlsplit(url).query)
    assert query["timestamp"] == [stamp] and query["access_token"] == ["t"]
    assert quote_plus(query["sign"][0]) == quote_plus(base64.b64encode(digest).decode())
    assert body == {"msgtype": "text"}
    # Feishu's: HMAC-SHA256 keyed by "timestamp\nsecret" over nothing, base64, the timestamp
    # in seconds, both in the body
    url, body = signed(feishu, {"msg_type": "text"}, now)
    digest = hmac.new(f"1764633600\n{secret}".encode(), digestmod=hashlib.sha256).digest()
    assert url == "https://open.feishu.cn/hook/x"
    assert body == {
        "timestamp": "1764633600",
        "sign": base64.b64encode(digest).decode(),
        "msg_type": "text",
    }

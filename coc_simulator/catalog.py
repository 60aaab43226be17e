"""The simulator's vocabulary: scripts, creators, zones, hosts and failure messages.

Everything here is fixed or drawn from a seeded ``random.Random``, so a dataset is a pure
function of its ``SimConfig``. The failure patterns an analyst should be able to find live
here as plain numbers:

- zone ``BAD_ZONE`` fails far more often than the others (connection refused, full disks);
- ``upgrade_jdk`` version ``v2.4.0`` regressed (out-of-memory stack traces), used from the
  middle of the simulated span on;
- an ``OFFLINE`` agent almost always fails ("Agent ... is offline");
- messages come from a few templates with varying numbers, addresses, ids and paths, so
  that they group once digits, ids and addresses are masked.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

BAD_ZONE = "cn-east-3b"
BAD_ZONE_FAILURE = 0.15
OFFLINE_FAILURE = 0.92
REGIONS: dict[str, tuple[str, ...]] = {
    "cn-north-4": ("cn-north-4a", "cn-north-4b", "cn-north-4c"),
    "cn-east-3": ("cn-east-3a", BAD_ZONE, "cn-east-3c"),
    "ap-southeast-1": ("ap-southeast-1a", "ap-southeast-1b"),
}
CREATORS = ("ops_admin", "张伟", "li.na", "王芳", "deploy-bot", "j.smith", "Zoë.Ødegård", "sre")
PROJECTS = ("0b3f2c5e9d7a4f1e8c6b2a9d3e5f7a1c", "5d1e9a7c3b2f4e6d8a0c1b3e5f7d9a2b", None)


@dataclass(frozen=True, kw_only=True)
class Version:
    uuid: int
    name: str
    failure: float  # extra failure probability of this version
    since: float = 0.0  # used from this fraction of the simulated span on


@dataclass(frozen=True, kw_only=True)
class Script:
    uuid: str
    name: str
    versions: tuple[Version, ...]
    mean_s: float  # mean duration of one successful instance
    timeout_s: int
    base_failure: float
    execute_user: str
    params: tuple[tuple[str, str], ...] = ()

    def version_for(self, span_fraction: float, rng: random.Random) -> Version:
        """The newest version in use at this point of the span (80 %), else the one before."""
        usable = [v for v in self.versions if v.since <= span_fraction] or [self.versions[0]]
        if len(usable) > 1 and rng.random() < 0.2:
            return usable[-2]
        return usable[-1]


SCRIPTS: tuple[Script, ...] = (
    Script(
        uuid="SC2023082811094502f3a1b7c9",
        name="deploy_nginx",
        versions=(Version(uuid=1001, name="v1.2.0", failure=0.001),),
        mean_s=25,
        timeout_s=300,
        base_failure=0.002,
        execute_user="root",
        params=(("port", "8080"), ("worker_processes", "auto")),
    ),
    Script(
        uuid="SC20230901120000a4b5c6d7e8",
        name="rotate_logs",
        versions=(Version(uuid=1101, name="v3.0.1", failure=0.0),),
        mean_s=6,
        timeout_s=120,
        base_failure=0.001,
        execute_user="root",
    ),
    Script(
        uuid="SC20230915083012b9c8d7e6f5",
        name="upgrade_jdk",
        versions=(
            Version(uuid=1201, name="v2.3.1", failure=0.002),
            Version(uuid=1202, name="v2.4.0", failure=0.25, since=0.5),
        ),
        mean_s=90,
        timeout_s=600,
        base_failure=0.002,
        execute_user="appuser",
        params=(("jdk_version", "17.0.9"), ("token", "******")),
    ),
    Script(
        uuid="SC20231002153344c1d2e3f4a5",
        name="patch_kernel",
        versions=(Version(uuid=1301, name="v1.0.0", failure=0.003),),
        mean_s=900,
        timeout_s=3600,
        base_failure=0.003,
        execute_user="root",
        params=(("reboot", "true"),),
    ),
    Script(
        uuid="SC20231010101010d4e5f6a7b8",
        name="清理磁盘",
        versions=(Version(uuid=1401, name="v0.9", failure=0.001),),
        mean_s=40,
        timeout_s=300,
        base_failure=0.003,
        execute_user="root",
        params=(("path", "/var/log"), ("keep_days", "7")),
    ),
    Script(
        uuid="SC20231101000000e5f6a7b8c9",
        name="check_ntp",
        versions=(Version(uuid=1501, name="v1.1.2", failure=0.0),),
        mean_s=3,
        timeout_s=60,
        base_failure=0.001,
        execute_user="nobody",
    ),
    Script(
        uuid="SC20231120091500f6a7b8c9d0",
        name="collect_diagnostics",
        versions=(Version(uuid=1601, name="v2.0.0", failure=0.002),),
        mean_s=150,
        timeout_s=900,
        base_failure=0.002,
        execute_user="root",
        params=(("include", "dmesg,journal,netstat"),),
    ),
)
LONG_SCRIPT = SCRIPTS[3]

# -- hosts ---------------------------------------------------------------------------------

_ROLES = ("web", "db", "cache", "app", "batch", "gw", "主库", "边缘节点")
_PLACES = ("北京", "上海", "广州", "深圳", "東京", "São-Paulo", "Zürich", "Москва", "sg", "hz")
_APPLICATIONS = ("订单中心", "payment", "user-center", "日志平台", "search")
_GROUPS = ("group-a", "核心组", "edge")
_ATTRIBUTE_KEYS = ("env", "owner", "cost_center", "os", "tier", "版本")
_ATTRIBUTE_VALUES = ("prod", "staging", "team-λ", "CentOS 7.9", "gold", "EulerOS 2.0", "v1")


def _hexid(rng: random.Random, dashes: bool = True) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" if dashes else h


def pick(rng: random.Random, weighted: tuple[tuple[Any, float], ...]) -> Any:
    u = rng.random()
    for value, weight in weighted:
        u -= weight
        if u < 0:
            return value
    return weighted[-1][0]


_AGENT_STATUS = (("ONLINE", 0.88), ("OFFLINE", 0.02), (None, 0.07), ("INSTALLING", 0.03))


@dataclass(frozen=True, slots=True)
class Host:
    """One host of the pool: its ``target_instance`` dict (shared, read-only) and the facts
    the failure model needs."""

    target: dict[str, Any]
    zone_id: str
    offline: bool
    ip: str
    agent_sn: str


def build_hosts(count: int, rng: random.Random) -> list[Host]:
    """``count`` hosts with unicode names, nulls where the published example has them."""
    zones = [(region, zone) for region, zs in REGIONS.items() for zone in zs]
    hosts = []
    for n in range(count):
        region, zone = zones[rng.randrange(len(zones))]
        ip = f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        if n % 3 == 0:
            ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        agent_status = pick(rng, _AGENT_STATUS)
        agent_sn = _hexid(rng)
        project = PROJECTS[rng.randrange(len(PROJECTS))]
        where_region = pick(rng, (("props", 0.85), ("target", 0.1), ("both", 0.05)))
        where_project = pick(rng, (("props", 0.7), ("target", 0.2), ("none", 0.1)))
        application = None
        group = None
        if rng.random() < 0.4:
            application = _APPLICATIONS[rng.randrange(len(_APPLICATIONS))]
            group = _GROUPS[rng.randrange(len(_GROUPS))] if rng.random() < 0.7 else None
        attributes: list[dict[str, str]] | None = None
        if rng.random() < 0.85:
            keys = rng.sample(_ATTRIBUTE_KEYS, rng.randrange(6))
            attributes = [
                {"key": k, "value": _ATTRIBUTE_VALUES[rng.randrange(len(_ATTRIBUTE_VALUES))]}
                for k in keys
            ]
        name = f"{_ROLES[rng.randrange(len(_ROLES))]}-{_PLACES[rng.randrange(len(_PLACES))]}"
        target = {
            "resource_id": _hexid(rng),
            "provider": "ECS" if rng.random() < 0.95 else None,
            "region_id": region if where_region != "props" else None,
            "project_id": project if where_project == "target" else None,
            "type": "CLOUD_SERVER",
            "custom_attributes": attributes,
            "agent_sn": agent_sn,
            "agent_status": agent_status,
            "properties": {
                "host_name": f"{name}-{n:04d}",
                "fixed_ip": ip,
                "floating_ip": f"121.36.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                if rng.random() < 0.3
                else None,
                "region_id": region if where_region != "target" else None,
                "zone_id": zone,
                "application": application,
                "group": group,
                "project_id": project if where_project == "props" else None,
            },
        }
        hosts.append(
            Host(
                target=target,
                zone_id=zone,
                offline=agent_status == "OFFLINE",
                ip=ip,
                agent_sn=agent_sn,
            )
        )
    return hosts


# -- messages ------------------------------------------------------------------------------
# An instance stores a message kind and a 62-bit key; the text is derived from both on
# demand, so a million instances cost two integers each until they are rendered.

OK_SHORT, OK_LONG, TIMEOUT, REFUSED, NOT_FOUND, AGENT, DISK, OOM, CANCELED, SKIPPED, ROLLBACK = (
    range(1, 12)
)
#: the template of a ``MessageOnset``: it never occurs without one
EXPIRED = 12
NO_MESSAGE = 0
ZONE_KINDS = (REFUSED, DISK)
BASE_KINDS = (TIMEOUT, REFUSED, NOT_FOUND, DISK)
REGRESSION_KINDS = (OOM, OOM, NOT_FOUND)
_COMMANDS = ("systemctl", "jq", "rsync", "yum", "curl", "java")
_DIRS = ("docker", "mysql", "kafka-logs", "containerd", "应用数据")
_PACKAGES = ("nginx", "openjdk", "kernel", "chrony", "node_exporter")
_LOG_LINES = (
    "[INFO] step {n}: checking prerequisites on {ip}",
    "[INFO] downloaded {n} bytes from obs://cloud-scripts/pkg-{k}.tar.gz",
    "[WARN] retrying in {n} ms (attempt {k})",
    "[INFO] 服务状态正常, pid {n}",
    "[DEBUG] env PATH=/usr/local/bin:/usr/bin:/bin HOME=/root",
)


def render_message(kind: int, key: int, host: Host, script: str) -> str | None:
    """The message text of one instance, a pure function of its arguments."""
    if kind == NO_MESSAGE:
        return None
    a, b, c, d = key & 0xFFFF, (key >> 16) & 0xFFFF, (key >> 32) & 0xFFFF, (key >> 48) & 0x3FFF
    if kind == OK_SHORT:
        return f"Script execution result: exit code 0\n{a % 200} lines of output on {host.ip}"
    if kind == OK_LONG:
        lines = [
            _LOG_LINES[(a + i) % len(_LOG_LINES)].format(n=(b * (i + 1)) % 100000, ip=host.ip, k=i)
            for i in range(12 + d % 30)
        ]
        return "\n".join([*lines, "exit code 0"])
    if kind == TIMEOUT:
        return f"Command timed out after {60 + a % 3540}s (pid {b + 1000})\nKilled group {b}"
    if kind == REFUSED:
        pkg = _PACKAGES[c % len(_PACKAGES)]
        return (
            f"Connection to 100.125.{a % 256}.{b % 254 + 1}:{1024 + c % 60000} refused while "
            f"downloading package {pkg}-{d % 5}.{a % 20}.{b % 10}.rpm"
        )
    if kind == NOT_FOUND:
        command = _COMMANDS[c % len(_COMMANDS)]
        return (
            f"exit code 127: /opt/cloud/scripts/{script}/{key & 0xFFFFFFFF:08x}/run.sh: "
            f"line {a % 400 + 1}: {command}: command not found"
        )
    if kind == AGENT:
        return f"Agent {host.agent_sn} is offline, last heartbeat {a + 30} seconds ago"
    if kind == DISK:
        where = _DIRS[c % len(_DIRS)]
        return f"No space left on device: /var/lib/{where}/{b:04x}{a:04x} ({90 + d % 11}% used)"
    if kind == OOM:
        frames = "\n".join(
            f"\tat com.huawei.coc.agent.Upgrader.step{(a + i) % 9}(Upgrader.java:{b % 900 + i})"
            for i in range(4 + d % 6)
        )
        return f"java.lang.OutOfMemoryError: Java heap space (heap {c % 4096} MB)\n{frames}"
    if kind == CANCELED:
        return "Execution canceled by the operator"
    if kind == SKIPPED:
        return "Skipped: an earlier batch exceeded the failure threshold"
    if kind == EXPIRED:
        return (
            f"TLS handshake with mirror {host.ip}:443 failed: certificate expired "
            f"{1 + a % 90} days ago"
        )
    return f"Rolled back: rollback script exit code 0 after {a} ms"


#: the host property ``drift`` adds
DRIFT_PROPERTY = "rack"


def drift(hosts: list[Host]) -> None:
    """Change the hosts' ``target_instance`` as an undocumented API change would: a new host
    property (``rack``) and a mapped field gone (``agent_sn``)."""
    for n, host in enumerate(hosts):
        host.target["properties"][DRIFT_PROPERTY] = f"rack-{n % 40:02d}"
        host.target.pop("agent_sn", None)

"""The daemon's TOML configuration (/etc/smsgw/smsgw.toml), with defaults for every key."""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.ratelimit import LimitSettings

DEFAULT_CONFIG_PATH = Path("/etc/smsgw/smsgw.toml")
DEFAULT_DATA_DIR = Path("/var/lib/smsgw")
DATABASE_FILE = "smsgw.sqlite3"  # gateway.store.DATABASE_NAME (config stays below the store)
DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")
DEFAULT_LEASE_TTL = 15.0  # seconds a SIM lease lasts unrenewed (gateway.leases)


class ConfigError(ValueError):
    """The configuration file is unreadable or has a wrong value."""


@dataclass(frozen=True, slots=True)
class ModemConfig:
    """One configured modem port."""

    port: str
    pin: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """How the webhook sender delivers (`[webhooks]` in the TOML file); times in seconds."""

    timeout: float = 10.0  # one attempt, redirects included, from connect to the status line
    connect_timeout: float = 5.0
    retry_window: float = 24 * 3600.0  # retried this long after the first attempt, then failed
    backoff_first: float = 5.0  # capped exponential backoff between attempts, with jitter
    backoff_cap: float = 600.0
    per_host: int = 4  # attempts in flight to one host (a slow one holds no more than this)
    concurrency: int = 32  # attempts in flight in all
    max_response_bytes: int = 64 * 1024  # read of a response body, the rest is dropped
    max_redirects: int = 3  # same-host redirects followed; other hosts are refused
    poll_interval: float = 5.0  # picks up events other processes (the CLI) queued or retried
    keep_delivered_days: float = 7.0  # delivered events are purged after this
    verify_tls: bool = True

    def __post_init__(self) -> None:
        for name in ("timeout", "connect_timeout", "retry_window", "backoff_first",
                     "backoff_cap", "poll_interval"):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ConfigError(f"webhooks.{name} must be positive")
        for name in ("per_host", "concurrency", "max_response_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"webhooks.{name} must be at least 1")
        if self.max_redirects < 0 or self.keep_delivered_days < 0:
            raise ConfigError("webhooks.max_redirects and keep_delivered_days cannot be negative")
        if self.backoff_cap < self.backoff_first:
            raise ConfigError("webhooks.backoff_cap must be at least backoff_first")


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """How the HTTP front-end treats connections (`[http]` in the TOML file); times in seconds."""

    # A connection with no complete request head this long after it opened or was last
    # answered is closed: idle keep-alive and slowloris heads alike.
    idle_timeout: float = 15.0
    body_timeout: float = 30.0  # from the request head to the last byte of its body
    # A client that takes none of its response this long (it sends requests and never reads)
    # is cut off: its buffered response and its connection slot are freed.
    write_timeout: float = 30.0
    max_connections: int = 1024  # open at once (lowered to fit the open-file limit)
    # Open at once from one address (IPv6: one /64), so one client cannot hold every slot;
    # behind a reverse proxy every client is the proxy: raise it to max_connections there.
    max_connections_per_ip: int = 128
    max_line_size: int = 8190  # request line and each header
    backlog: int = 512  # accept queue the kernel keeps for a burst of connects

    def __post_init__(self) -> None:
        if not (self.idle_timeout > 0 and self.body_timeout > 0 and self.write_timeout > 0):
            raise ConfigError("http.idle_timeout, body_timeout and write_timeout must be positive")
        if min(self.max_connections, self.max_connections_per_ip, self.backlog) < 1:
            raise ConfigError("http.max_connections, max_connections_per_ip, backlog must be >= 1")
        if self.max_line_size < 256:
            raise ConfigError("http.max_line_size must be >= 256")


@dataclass(frozen=True, slots=True)
class Config:
    """Everything `smsgw serve` needs to know."""

    data_dir: Path = DEFAULT_DATA_DIR
    # "" = the SQLite file in data_dir; "postgresql://…" = fleet mode (several boxes, one store).
    database_url: str = ""
    # Fleet mode: this box's name in the SIM leases (unique per box; "" = the hostname), and
    # how long a lease lasts unrenewed (renewed every third of it; a dead box's SIMs are free
    # for another box that long after its last renewal).
    box_id: str = ""
    lease_ttl: float = DEFAULT_LEASE_TTL
    http_host: str = "0.0.0.0"  # an appliance serves its LAN
    http_port: int = 8080
    modems: tuple[ModemConfig, ...] = ()
    discover: tuple[str, ...] = ("/dev/smsgw", "/dev/serial/by-id")
    throttle_interval: float = 1.0
    help_reply: str = ""
    log_level: str = "INFO"
    http: HttpSettings = field(default_factory=HttpSettings)
    metrics_token: str = ""  # when set, GET /metrics needs "Authorization: Bearer <token>"
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    # How long the daemon's one thread waits for a lock another process holds (a backup, an
    # outside writer) before a write is refused as temporarily unavailable (HTTP 503): under
    # any client's timeout, and short, since the whole daemon waits meanwhile.
    busy_timeout_ms: int = 1000
    limits: LimitSettings = field(default_factory=LimitSettings)
    extra: dict[str, Any] = field(default_factory=dict)

    def fleet_box_id(self) -> str:
        """The box id leases are held under: `box_id`, else this machine's hostname."""
        return self.box_id or socket.gethostname()


def _get(table: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = table.get(key, default)
    if value is not default and not isinstance(value, kind):
        raise ConfigError(f"{key} has the wrong type ({type(value).__name__})")
    return value


def load(path: Path | None = None) -> Config:
    """Read the config file (missing file: defaults); SMSGW_DATA_DIR overrides data_dir and
    SMSGW_DATABASE_URL database_url."""
    table: dict[str, Any] = {}
    if path is not None:
        try:
            table = tomllib.loads(path.read_text())
        except FileNotFoundError:
            if path != DEFAULT_CONFIG_PATH:
                raise ConfigError(f"no config file at {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    http = _get(table, "http", dict, {})
    metrics = _get(table, "metrics", dict, {})
    store = _get(table, "store", dict, {})
    busy_timeout_ms = int(_get(store, "busy_timeout_ms", int, 1000))
    if not 0 <= busy_timeout_ms <= 60_000:
        raise ConfigError("store.busy_timeout_ms must be between 0 and 60000")
    modems = []
    for entry in _get(table, "modem", list, []):
        if not isinstance(entry, dict) or not isinstance(entry.get("port"), str):
            raise ConfigError('each [[modem]] needs a port = "..."')
        pin = entry.get("pin")
        modems.append(ModemConfig(entry["port"], str(pin) if pin is not None else None))
    interval = float(_get(table, "throttle_interval", (int, float), 1.0))
    if not 1 <= interval <= 60:
        raise ConfigError("throttle_interval must be between 1 and 60 seconds")
    data_dir = Path(
        os.environ.get("SMSGW_DATA_DIR") or _get(table, "data_dir", str, str(DEFAULT_DATA_DIR))
    )
    database_url = os.environ.get("SMSGW_DATABASE_URL") or _get(table, "database_url", str, "")
    if database_url and not database_url.startswith(DATABASE_SCHEMES):
        raise ConfigError(f"database_url must start with one of {', '.join(DATABASE_SCHEMES)}")
    box_id = (os.environ.get("SMSGW_BOX_ID") or _get(table, "box_id", str, "")).strip()
    if len(box_id) > 64 or not all(c.isalnum() or c in "-_.:" for c in box_id):
        raise ConfigError("box_id is up to 64 letters, digits and - _ . :")
    lease_ttl = float(_get(table, "lease_ttl", (int, float), DEFAULT_LEASE_TTL))
    if not 3 <= lease_ttl <= 600:
        raise ConfigError("lease_ttl must be between 3 and 600 seconds")
    return Config(
        database_url=database_url,
        box_id=box_id,
        lease_ttl=lease_ttl,
        webhooks=_webhooks(_get(table, "webhooks", dict, {})),
        data_dir=data_dir,
        http_host=_get(http, "host", str, "0.0.0.0"),
        http_port=int(_get(http, "port", int, 8080)),
        http=_http(http),
        modems=tuple(modems),
        discover=tuple(_get(table, "discover", list, ["/dev/smsgw", "/dev/serial/by-id"])),
        throttle_interval=interval,
        help_reply=_get(table, "help_reply", str, ""),
        log_level=_get(table, "log_level", str, "INFO"),
        metrics_token=_get(metrics, "token", str, ""),
        busy_timeout_ms=busy_timeout_ms,
        limits=_limits(_get(table, "limits", dict, {})),
    )


def _limits(table: dict[str, Any]) -> LimitSettings:
    """The `[limits]` table: rates and backoffs as numbers, bursts and counts as integers."""
    defaults = LimitSettings()
    values: dict[str, Any] = {}
    for name in LimitSettings.__dataclass_fields__:
        if name in table:
            default = getattr(defaults, name)
            kind: type | tuple[type, ...] = int if isinstance(default, int) else (int, float)
            values[name] = type(default)(_get(table, name, kind, default))
    unknown = sorted(set(table) - set(LimitSettings.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"unknown [limits] key(s): {', '.join(unknown)}")
    try:
        return LimitSettings(**values)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _webhooks(table: dict[str, Any]) -> WebhookSettings:
    """The `[webhooks]` table: numbers for times and sizes, a boolean for verify_tls."""
    defaults = WebhookSettings()
    values: dict[str, Any] = {}
    for name in WebhookSettings.__dataclass_fields__:
        if name not in table:
            continue
        default = getattr(defaults, name)
        if isinstance(default, bool):
            values[name] = bool(_get(table, name, bool, default))
        elif isinstance(default, int):
            values[name] = int(_get(table, name, int, default))
        else:
            values[name] = float(_get(table, name, (int, float), default))
    unknown = sorted(set(table) - set(WebhookSettings.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"unknown [webhooks] key(s): {', '.join(unknown)}")
    return WebhookSettings(**values)


def _http(table: dict[str, Any]) -> HttpSettings:
    """The connection keys of `[http]` (host and port are read by load)."""
    defaults = HttpSettings()
    values: dict[str, Any] = {}
    for name in HttpSettings.__dataclass_fields__:
        if name in table:
            default = getattr(defaults, name)
            kind: type | tuple[type, ...] = int if isinstance(default, int) else (int, float)
            values[name] = type(default)(_get(table, name, kind, default))
    unknown = sorted(set(table) - set(HttpSettings.__dataclass_fields__) - {"host", "port"})
    if unknown:
        raise ConfigError(f"unknown [http] key(s): {', '.join(unknown)}")
    return HttpSettings(**values)

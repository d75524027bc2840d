"""Settings of test brokers: the base every test broker starts from, and overrides.

The same settings also become a mosquitto.conf when the tests run against Debian's
mosquitto as a reference broker.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"

# Settings every test broker starts from; a module's `broker_settings` overrides them.
BASE_SETTINGS: dict[str, Any] = {
    "broker": {"host": HOST, "port": 0, "sys_interval": 0, "allow_anonymous": True},
    "pool": {"initial_pool_size": 16, "max_pool_size": 64, "max_connections": 256},
    "limits": {"connect_timeout": 2.0, "max_queued_messages": 100, "max_inflight_messages": 20},
}


def merge_settings(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return `base` with `overrides` applied table by table; None values remove a key."""
    merged = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            for inner_key, inner_value in value.items():
                if inner_value is None:
                    merged[key].pop(inner_key, None)
                else:
                    merged[key][inner_key] = inner_value
        elif value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def mosquitto_config(settings: dict[str, Any], directory: Path, port: int) -> str:
    """Translate test settings into a mosquitto.conf, as far as mosquitto has the same options."""
    values = {key: value for table in settings.values() if isinstance(table, dict) for key, value in table.items()}
    lines = [
        f"listener {port} {HOST}",
        f"allow_anonymous {'true' if values.get('allow_anonymous', True) else 'false'}",
        "persistence false",
        "log_dest stderr",
        "log_type all",
        "allow_duplicate_messages false",
    ]
    if os.geteuid() == 0:
        # Stay root: mosquitto would otherwise switch to its own user, which cannot read tmp_path.
        lines.append("user root")
    interval = values.get("sys_interval", 0)
    lines.append(f"sys_interval {math.ceil(interval)}")
    for key in ("max_queued_messages", "max_inflight_messages", "max_packet_size"):
        if key in values:
            lines.append(f"{key} {values[key]}")

    password_file = values.get("password_file")
    users: list[str] = []
    if password_file:
        path = Path(password_file)
        path = path if path.is_absolute() else directory / path
        lines.append(f"password_file {path}")
        users = [line.split(":", 1)[0] for line in path.read_text().splitlines() if ":" in line]

    rules = settings.get("acl")
    if rules:
        # mosquitto denies what its ACL file does not grant, so every user gets '#' after
        # its own deny rules; mosquitto's "deny" blocks both directions.
        acl_lines = ["topic readwrite #", "topic read $SYS/#"]
        for user in users:
            acl_lines.append(f"user {user}")
            for rule in rules:
                if rule.get("user", "*") in (user, "*") and not rule.get("allow", True):
                    acl_lines.append(f"topic deny {rule['topic']}")
            acl_lines += ["topic readwrite #", "topic read $SYS/#"]
        acl_path = directory / "mosquitto.acl"
        acl_path.write_text("\n".join(acl_lines) + "\n")
        lines.append(f"acl_file {acl_path}")
    return "\n".join(lines) + "\n"

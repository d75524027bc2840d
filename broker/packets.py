"""Typed MQTT control packets, named as the MQTT 3.1.1 standard names them.

The classes hold decoded values only; `broker.codec` turns them into bytes and back.
Fields that MQTT 5.0 adds (properties, reason strings) belong on these same classes,
selected by the connection's protocol level, so the 3.1.1 fields stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class PacketType(IntEnum):
    """Control packet types: the high nibble of a packet's first byte."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class ProtocolLevel(IntEnum):
    """The protocol level byte of CONNECT."""

    MQTT_3_1 = 3
    MQTT_3_1_1 = 4
    MQTT_5_0 = 5


class ConnackReturnCode(IntEnum):
    """CONNACK return codes of MQTT 3.1.1."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USER_NAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


# SUBACK return code for a rejected subscription; 0, 1 and 2 are the granted QoS.
SUBACK_FAILURE = 0x80

# Protocol names paired with the levels they may carry: MQTT 3.1 used "MQIsdp".
PROTOCOL_NAMES = {"MQTT": (ProtocolLevel.MQTT_3_1_1, ProtocolLevel.MQTT_5_0), "MQIsdp": (ProtocolLevel.MQTT_3_1,)}


@dataclass(slots=True)
class Will:
    """The message a server publishes for a client that disconnects abnormally."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(slots=True)
class Connect:
    type = PacketType.CONNECT

    client_id: str
    clean_session: bool = True
    keepalive: int = 0
    protocol_name: str = "MQTT"
    protocol_level: int = ProtocolLevel.MQTT_3_1_1
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None


@dataclass(slots=True)
class Connack:
    type = PacketType.CONNACK

    session_present: bool = False
    return_code: int = ConnackReturnCode.ACCEPTED


@dataclass(slots=True)
class Publish:
    type = PacketType.PUBLISH

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    # None at QoS 0, 1 to 65535 otherwise.
    packet_id: int | None = None


@dataclass(slots=True)
class Puback:
    type = PacketType.PUBACK

    packet_id: int


@dataclass(slots=True)
class Pubrec:
    type = PacketType.PUBREC

    packet_id: int


@dataclass(slots=True)
class Pubrel:
    type = PacketType.PUBREL

    packet_id: int


@dataclass(slots=True)
class Pubcomp:
    type = PacketType.PUBCOMP

    packet_id: int


@dataclass(slots=True)
class Subscribe:
    type = PacketType.SUBSCRIBE

    packet_id: int
    # (topic filter, requested QoS) pairs, in the order the client sent them.
    subscriptions: tuple[tuple[str, int], ...]


@dataclass(slots=True)
class Suback:
    type = PacketType.SUBACK

    packet_id: int
    # One granted QoS or SUBACK_FAILURE per requested subscription, in the same order.
    return_codes: tuple[int, ...]


@dataclass(slots=True)
class Unsubscribe:
    type = PacketType.UNSUBSCRIBE

    packet_id: int
    topic_filters: tuple[str, ...]


@dataclass(slots=True)
class Unsuback:
    type = PacketType.UNSUBACK

    packet_id: int


@dataclass(slots=True)
class Pingreq:
    type = PacketType.PINGREQ


@dataclass(slots=True)
class Pingresp:
    type = PacketType.PINGRESP


@dataclass(slots=True)
class Disconnect:
    type = PacketType.DISCONNECT


Packet = (
    Connect | Connack | Publish | Puback | Pubrec | Pubrel | Pubcomp | Subscribe | Suback
    | Unsubscribe | Unsuback | Pingreq | Pingresp | Disconnect
)

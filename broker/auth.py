"""Authentication against a mosquitto password file and topic access rules.

A password file has one `username:hash` line per user, as written by mosquitto_passwd
(mosquitto 2.0). Two hash forms are read, with base64 fields:

- `$7$<iterations>$<salt>$<hash>`: PBKDF2-HMAC-SHA512 of the password, the default since
  mosquitto 2.0;
- `$6$<salt>$<hash>`: SHA-512 of the password bytes followed by the salt bytes, the
  default of mosquitto 1.6 and earlier (`mosquitto_passwd -H sha512`).

Blank lines and lines starting with '#' are skipped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from broker.config import AccessRule, AccessSettings, SettingsError
from broker.topics import InvalidTopicError, filter_covers, filters_overlap, matches, validate_topic_filter

# mosquitto_passwd's defaults: 101 PBKDF2 rounds and a 12-byte salt. The count is low
# because every CONNECT with a password runs the hash inside the event loop.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
SHA512_BYTES = 64

# Verified for unknown users, so a wrong user name costs as long as a wrong password.
_DUMMY_SALT = bytes(SALT_BYTES)


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """One parsed password entry; `iterations` is None for the salted SHA-512 form."""

    salt: bytes
    digest: bytes
    iterations: int | None

    def verify(self, password: bytes) -> bool:
        if self.iterations is None:
            candidate = hashlib.sha512(password + self.salt).digest()
        else:
            candidate = hashlib.pbkdf2_hmac("sha512", password, self.salt, self.iterations)
        return hmac.compare_digest(candidate, self.digest)


def hash_password(password: str) -> str:
    """Return a `$7$` PBKDF2-SHA512 hash of `password` that mosquitto also accepts."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, PBKDF2_ITERATIONS)
    salt_text = base64.b64encode(salt).decode("ascii")
    digest_text = base64.b64encode(digest).decode("ascii")
    return f"$7${PBKDF2_ITERATIONS}${salt_text}${digest_text}"


def _decode(field: str, label: str) -> bytes:
    try:
        return base64.b64decode(field, validate=True)
    except binascii.Error:
        raise ValueError(f"the {label} is not valid base64") from None


def parse_hash(text: str) -> PasswordHash:
    """Parse the hash part of a password line; raise ValueError saying what is wrong."""
    parts = text.split("$")
    if len(parts) == 4 and parts[0] == "" and parts[1] == "6":
        salt, digest, iterations = _decode(parts[2], "salt"), _decode(parts[3], "hash"), None
    elif len(parts) == 5 and parts[0] == "" and parts[1] == "7":
        if not parts[2].isdigit() or int(parts[2]) < 1:
            raise ValueError(f"the iteration count {parts[2]!r} is not a positive integer")
        salt, digest, iterations = _decode(parts[3], "salt"), _decode(parts[4], "hash"), int(parts[2])
    else:
        raise ValueError("the hash is neither '$7$iterations$salt$hash' nor '$6$salt$hash'")
    if not salt:
        raise ValueError("the salt is empty")
    if len(digest) != SHA512_BYTES:
        raise ValueError(f"the hash is {len(digest)} bytes but SHA-512 gives {SHA512_BYTES}")
    return PasswordHash(salt, digest, iterations)


def load_password_file(path: Path) -> dict[str, PasswordHash]:
    """Read a mosquitto password file; raise SettingsError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(
            [f"The password file {path} was not found. Create it with "
             f"'mosquitto_passwd -c {path} USER' or fix password_file."]
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError([f"The password file {path} could not be read: {error}. Check the path and its permissions."]) from None

    users: dict[str, PasswordHash] = {}
    lines: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{number}"
        username, colon, hashed = line.partition(":")
        if not colon or not username:
            raise SettingsError(
                ["The line is not 'username:hash'. Write it with mosquitto_passwd."], where
            )
        if username in users:
            raise SettingsError(
                [f"User {username!r} is listed again (first on line {lines[username]}). Keep one line per user."],
                where,
            )
        try:
            users[username] = parse_hash(hashed)
        except ValueError as error:
            # The hash itself is not quoted, because it is secret material.
            raise SettingsError(
                [f"The password of user {username!r} cannot be read: {error}. "
                 f"A plain-text password file can be hashed with 'mosquitto_passwd -U {path}'."],
                where,
            ) from None
        lines[username] = number
    return users


class Authorizer:
    """Checks CONNECT credentials and PUBLISH/SUBSCRIBE topics against AccessSettings.

    Access rules are tried in order, and the first rule whose user and topic match
    decides. User '*' matches everyone, anonymous clients included. A request that no
    rule matches is allowed.
    """

    def __init__(self, access: AccessSettings) -> None:
        self._access = access
        self._users: dict[str, PasswordHash] | None = None
        if access.password_file is not None:
            self._users = load_password_file(Path(access.password_file))
        for index, rule in enumerate(access.rules):
            try:
                validate_topic_filter(rule.topic)
            except InvalidTopicError as error:
                raise SettingsError([f"acl[{index}].topic is invalid: {error}"]) from None
        self._publish_rules = [rule for rule in access.rules if rule.publish]
        self._subscribe_rules = [rule for rule in access.rules if rule.subscribe]

    @property
    def users(self) -> frozenset[str]:
        """User names read from the password file; empty without one."""
        return frozenset(self._users or ())

    def authenticate(self, username: str | None, password: bytes | None) -> bool:
        """Return whether a CONNECT with these credentials may proceed.

        Without a user name the client is anonymous and passes only when
        allow_anonymous is set. Without a password file, a user name is not checked and
        the client is treated as anonymous, as mosquitto does.
        """
        if username is None:
            return password is None and self._access.allow_anonymous
        if self._users is None:
            return self._access.allow_anonymous

        entry = self._users.get(username)
        if entry is None:
            PasswordHash(_DUMMY_SALT, bytes(SHA512_BYTES), PBKDF2_ITERATIONS).verify(password or b"")
            return False
        if password is None:
            return False
        return entry.verify(password)

    def can_publish(self, username: str | None, topic: str) -> bool:
        """Return whether `username` (None when anonymous) may publish to the topic name."""
        for rule in self._publish_rules:
            if _user_matches(rule, username) and matches(rule.topic, topic):
                return rule.allow
        return True

    def can_subscribe(self, username: str | None, topic_filter: str) -> bool:
        """Return whether `username` (None when anonymous) may subscribe to the filter.

        An allow rule applies only when its pattern covers every topic of the filter. A
        deny rule applies as soon as the two share a topic, so with 'secret/#' denied,
        '#' and 'secret/+' are denied too.
        """
        for rule in self._subscribe_rules:
            if not _user_matches(rule, username):
                continue
            if rule.allow and filter_covers(rule.topic, topic_filter):
                return True
            if not rule.allow and filters_overlap(rule.topic, topic_filter):
                return False
        return True


def _user_matches(rule: AccessRule, username: str | None) -> bool:
    return rule.user == "*" or (username is not None and rule.user == username)

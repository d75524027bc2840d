"""Password files in mosquitto's format and topic access rules."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from broker.auth import Authorizer, hash_password, load_password_file, parse_hash
from broker.config import AccessRule, AccessSettings, SettingsError, load_config

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
needs_mosquitto_passwd = pytest.mark.skipif(
    MOSQUITTO_PASSWD is None,
    reason="mosquitto_passwd is not installed; install Debian's mosquitto package to run this test.",
)


def run_mosquitto_passwd(*args: str) -> None:
    assert MOSQUITTO_PASSWD is not None
    subprocess.run([MOSQUITTO_PASSWD, *args], check=True, capture_output=True, timeout=30)


def rule(user: str, topic: str, access: str, allow: bool) -> AccessRule:
    return AccessRule(
        user=user,
        topic=topic,
        publish=access in ("publish", "readwrite"),
        subscribe=access in ("subscribe", "readwrite"),
        allow=allow,
    )


@needs_mosquitto_passwd
def test_mosquitto_passwd_pbkdf2_file_authenticates(tmp_path: Path) -> None:
    password_file = tmp_path / "passwd"
    run_mosquitto_passwd("-b", "-c", str(password_file), "alice", "correct horse")
    run_mosquitto_passwd("-b", str(password_file), "bob", "s3cret:with$signs")
    assert password_file.read_text().startswith("alice:$7$")

    authorizer = Authorizer(AccessSettings(allow_anonymous=False, password_file=password_file))

    assert authorizer.users == {"alice", "bob"}
    assert authorizer.authenticate("alice", b"correct horse")
    assert authorizer.authenticate("bob", b"s3cret:with$signs")
    assert not authorizer.authenticate("alice", b"correct horse ")
    assert not authorizer.authenticate("alice", b"Correct horse")
    assert not authorizer.authenticate("alice", b"")
    assert not authorizer.authenticate("alice", None)
    assert not authorizer.authenticate("bob", b"correct horse")
    assert not authorizer.authenticate("carol", b"correct horse")
    assert not authorizer.authenticate(None, None)


@needs_mosquitto_passwd
def test_mosquitto_passwd_sha512_file_authenticates(tmp_path: Path) -> None:
    password_file = tmp_path / "passwd"
    run_mosquitto_passwd("-H", "sha512", "-b", "-c", str(password_file), "dave", "pässwörd")
    assert password_file.read_text().startswith("dave:$6$")

    authorizer = Authorizer(AccessSettings(allow_anonymous=False, password_file=password_file))

    assert authorizer.authenticate("dave", "pässwörd".encode())
    assert not authorizer.authenticate("dave", b"passwort")


@needs_mosquitto_passwd
def test_mosquitto_passwd_update_converts_plain_file(tmp_path: Path) -> None:
    password_file = tmp_path / "passwd"
    password_file.write_text("erin:plain-text\n")
    with pytest.raises(SettingsError, match="mosquitto_passwd -U"):
        Authorizer(AccessSettings(password_file=password_file))

    run_mosquitto_passwd("-U", str(password_file))
    authorizer = Authorizer(AccessSettings(password_file=password_file))
    assert authorizer.authenticate("erin", b"plain-text")


def test_hash_password_is_verified_with_pbkdf2(tmp_path: Path) -> None:
    hashed = hash_password("hunter2")
    _, kind, iterations, salt, digest = hashed.split("$")
    assert kind == "7"
    assert iterations == "101"
    assert len(base64.b64decode(salt)) == 12
    expected = hashlib.pbkdf2_hmac("sha512", b"hunter2", base64.b64decode(salt), 101)
    assert base64.b64decode(digest) == expected
    assert hash_password("hunter2") != hashed

    password_file = tmp_path / "passwd"
    password_file.write_text(f"# users\n\nfrank:{hashed}\r\n")
    authorizer = Authorizer(AccessSettings(password_file=password_file))
    assert authorizer.authenticate("frank", b"hunter2")
    assert not authorizer.authenticate("frank", b"hunter3")


def test_sha512_hash_is_password_then_salt() -> None:
    salt = b"0123456789ab"
    digest = hashlib.sha512(b"pw" + salt).digest()
    entry = parse_hash(f"$6${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}")
    assert entry.iterations is None
    assert entry.verify(b"pw")
    assert not entry.verify(b"pw" + b"x")


GOOD_HASH = hash_password("x")


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ("alice\n", 1, "not 'username:hash'"),
        ("# comment\n:$7$101$AAAA$BBBB\n", 2, "not 'username:hash'"),
        ("alice:secret\n", 1, "neither '$7$iterations$salt$hash'"),
        (f"alice:{GOOD_HASH}\n\nbob:$7$abc$AAAA$BBBB\n", 3, "iteration count 'abc'"),
        ("alice:$7$0$AAAA$BBBB\n", 1, "iteration count '0'"),
        ("alice:$7$101$!!!$BBBB\n", 1, "salt is not valid base64"),
        ("alice:$6$AAAA$QUJD\n", 1, "hash is 3 bytes"),
        ("alice:$7$101$$" + base64.b64encode(bytes(64)).decode() + "\n", 1, "salt is empty"),
        (f"alice:{GOOD_HASH}\nalice:{GOOD_HASH}\n", 2, "listed again (first on line 1)"),
    ],
)
def test_malformed_password_line_names_file_and_line(
    tmp_path: Path, content: str, line: int, fragment: str
) -> None:
    password_file = tmp_path / "passwd"
    password_file.write_text(content)
    with pytest.raises(SettingsError) as caught:
        load_password_file(password_file)
    message = str(caught.value)
    assert message.startswith(f"{password_file}:{line}: ")
    assert fragment in message


def test_malformed_password_line_hides_hash(tmp_path: Path) -> None:
    password_file = tmp_path / "passwd"
    password_file.write_text("alice:$7$101$c2VjcmV0c2FsdA==$QUJD\n")
    with pytest.raises(SettingsError) as caught:
        load_password_file(password_file)
    assert "QUJD" not in str(caught.value)
    assert "c2VjcmV0c2FsdA" not in str(caught.value)


def test_missing_password_file_names_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(SettingsError) as caught:
        Authorizer(AccessSettings(password_file=missing))
    assert str(missing) in str(caught.value)
    assert "mosquitto_passwd -c" in str(caught.value)


def test_password_file_from_config_is_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "passwd").write_text(f"gina:{hash_password('pw')}\n")
    config_file = tmp_path / "broker.toml"
    config_file.write_text('[broker]\nallow_anonymous = false\npassword_file = "passwd"\n')

    authorizer = Authorizer(load_config(config_file).access)

    assert authorizer.authenticate("gina", b"pw")
    assert not authorizer.authenticate(None, None)


@pytest.mark.parametrize(
    ("allow_anonymous", "username", "password", "expected"),
    [
        (True, None, None, True),
        (False, None, None, False),
        (True, None, b"pw", False),
        (True, "anyone", b"pw", True),
        (False, "anyone", b"pw", False),
    ],
)
def test_authenticate_without_password_file(
    allow_anonymous: bool, username: str | None, password: bytes | None, expected: bool
) -> None:
    authorizer = Authorizer(AccessSettings(allow_anonymous=allow_anonymous))
    assert authorizer.authenticate(username, password) is expected


def test_anonymous_allowed_beside_password_file(tmp_path: Path) -> None:
    password_file = tmp_path / "passwd"
    password_file.write_text(f"hank:{hash_password('pw')}\n")
    authorizer = Authorizer(AccessSettings(allow_anonymous=True, password_file=password_file))
    assert authorizer.authenticate(None, None)
    assert not authorizer.authenticate("hank", b"wrong")
    assert not authorizer.authenticate("stranger", b"pw")


def test_first_matching_rule_decides() -> None:
    authorizer = Authorizer(
        AccessSettings(
            rules=(
                rule("alice", "secret/alice/#", "readwrite", True),
                rule("*", "secret/#", "readwrite", False),
            )
        )
    )
    assert authorizer.can_publish("alice", "secret/alice/diary")
    assert not authorizer.can_publish("alice", "secret/bob/diary")
    assert not authorizer.can_publish("bob", "secret/alice/diary")
    assert not authorizer.can_publish(None, "secret/x")
    assert authorizer.can_publish("bob", "public/x")
    assert authorizer.can_subscribe("alice", "secret/alice/+")
    assert not authorizer.can_subscribe("bob", "secret/alice/+")


def test_no_matching_rule_allows() -> None:
    authorizer = Authorizer(AccessSettings(rules=(rule("alice", "a/#", "readwrite", False),)))
    assert authorizer.can_publish("bob", "a/b")
    assert authorizer.can_subscribe(None, "a/b")
    assert authorizer.can_publish("alice", "b")
    assert not authorizer.can_publish("alice", "a")


def test_star_rule_matches_anonymous() -> None:
    authorizer = Authorizer(AccessSettings(rules=(rule("*", "locked", "publish", False),)))
    assert not authorizer.can_publish(None, "locked")
    assert not authorizer.can_publish("anyone", "locked")


def test_named_rule_skips_anonymous() -> None:
    authorizer = Authorizer(AccessSettings(rules=(rule("alice", "locked", "publish", False),)))
    assert authorizer.can_publish(None, "locked")
    assert not authorizer.can_publish("alice", "locked")


def test_rule_access_kind_is_respected() -> None:
    authorizer = Authorizer(
        AccessSettings(
            rules=(
                rule("*", "pub-only/#", "subscribe", False),
                rule("*", "sub-only/#", "publish", False),
            )
        )
    )
    assert authorizer.can_publish("u", "pub-only/x")
    assert not authorizer.can_subscribe("u", "pub-only/x")
    assert not authorizer.can_publish("u", "sub-only/x")
    assert authorizer.can_subscribe("u", "sub-only/x")


@pytest.mark.parametrize(
    ("topic_filter", "allowed"),
    [
        ("#", False),
        ("secret/+", False),
        ("secret/#", False),
        ("secret", False),
        ("+/plans", False),
        ("+", False),
        ("secret/plans/2025", False),
        ("public/#", True),
        ("public/+", True),
        ("secrets", True),
        ("$SYS/#", True),
    ],
)
def test_subscribe_denied_when_filter_overlaps_deny(topic_filter: str, allowed: bool) -> None:
    authorizer = Authorizer(AccessSettings(rules=(rule("alice", "secret/#", "subscribe", False),)))
    assert authorizer.can_subscribe("alice", topic_filter) is allowed
    assert authorizer.can_subscribe("bob", topic_filter)


def test_subscribe_allow_rule_must_cover_filter() -> None:
    authorizer = Authorizer(
        AccessSettings(
            rules=(
                rule("carl", "carl/#", "subscribe", True),
                rule("*", "#", "subscribe", False),
            )
        )
    )
    assert authorizer.can_subscribe("carl", "carl/+/x")
    assert authorizer.can_subscribe("carl", "carl")
    # '#' reaches other users' topics too, so carl's allow rule does not cover it.
    assert not authorizer.can_subscribe("carl", "#")
    assert not authorizer.can_subscribe("carl", "+/x")
    assert not authorizer.can_subscribe("dina", "carl/x")


def test_sys_deny_keeps_hash_subscription() -> None:
    authorizer = Authorizer(AccessSettings(rules=(rule("*", "$SYS/#", "subscribe", False),)))
    assert authorizer.can_subscribe("u", "#")
    assert not authorizer.can_subscribe("u", "$SYS/broker/uptime")
    assert not authorizer.can_subscribe("u", "$SYS/#")


def test_invalid_rule_topic_is_settings_error() -> None:
    with pytest.raises(SettingsError, match=r"acl\[1\]\.topic is invalid"):
        Authorizer(AccessSettings(rules=(rule("*", "a", "publish", True), rule("*", "a/#/b", "publish", False))))

"""Authentication with a mosquitto_passwd file and topic access rules."""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.timeout(30)

# MQTT 3.1.1 CONNACK return codes.
BAD_USER_NAME_OR_PASSWORD = 4
NOT_AUTHORIZED = 5
SUBACK_FAILURE = 0x80

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}


@pytest.fixture(scope="module")
def broker_settings(broker_files):
    assert shutil.which("mosquitto_passwd"), "mosquitto_passwd is missing; install the Debian package mosquitto."
    password_file = broker_files / "passwd"
    create = ["-c"]
    for user, password in PASSWORDS.items():
        subprocess.run(["mosquitto_passwd", "-b", *create, str(password_file), user, password],
                       check=True, capture_output=True, timeout=10)
        create = []
    return {
        "broker": {"allow_anonymous": False, "password_file": "passwd"},
        "acl": [
            {"user": "alice", "topic": "secret/#", "access": "subscribe", "allow": False},
            {"user": "bob", "topic": "locked/#", "access": "publish", "allow": False},
        ],
    }


def test_password_file_comes_from_mosquitto_passwd(mqtt_broker, broker_files):
    lines = (broker_files / "passwd").read_text().splitlines()

    assert [line.split(":", 1)[0] for line in lines] == ["alice", "bob"]
    assert all(line.split(":", 1)[1].startswith("$7$") for line in lines)


@pytest.mark.parametrize("user", sorted(PASSWORDS))
def test_right_password_is_accepted(mqtt_broker, paho, user):
    client = paho.connect(mqtt_broker, username=user, password=PASSWORDS[user])

    assert client.connack_reason == "Success"


def test_mosquitto_pub_with_right_password_succeeds(mqtt_broker, mosquitto, topic):
    result = mosquitto.pub(mqtt_broker, "-u", "alice", "-P", PASSWORDS["alice"], "-t", topic, "-m", "hi", "-q", "1")

    assert result.returncode == 0, result.stderr


# mosquitto 2.0.11 rejects bad credentials with code 5 instead of 4, so these run only
# against the bundled broker.
@pytest.mark.bundled_only
@pytest.mark.parametrize(
    ("user", "password"),
    [("alice", "wrong"), ("alice", ""), ("alice", PASSWORDS["bob"]), ("mallory", "alice-secret")],
    ids=["wrong", "empty", "other-users", "unknown-user"],
)
def test_bad_credentials_get_code_4(mqtt_broker, raw, user, password):
    client = raw.open(mqtt_broker)

    connack = client.connect(f"raw-bad-password-{user}", username=user, password=password, expect_success=False)

    assert connack.body == bytes([0, BAD_USER_NAME_OR_PASSWORD])
    assert client.wait_closed()


@pytest.mark.bundled_only
def test_paho_with_wrong_password_is_refused(mqtt_broker, paho):
    client = paho.connect(mqtt_broker, username="alice", password="wrong", expect_success=False)

    assert client.connack_reason == "Bad user name or password"
    assert client.disconnected.wait(5)


@pytest.mark.bundled_only
def test_mosquitto_pub_with_wrong_password_fails(mqtt_broker, mosquitto, topic):
    result = mosquitto.pub(mqtt_broker, "-u", "bob", "-P", "wrong", "-t", topic, "-m", "hi")

    assert result.returncode != 0
    assert "bad user name or password" in result.stderr.lower()


def test_anonymous_client_gets_code_5(mqtt_broker, raw):
    client = raw.open(mqtt_broker)

    connack = client.connect("raw-anonymous", expect_success=False)

    assert connack.body == bytes([0, NOT_AUTHORIZED])
    assert client.wait_closed()


def test_paho_anonymous_is_not_authorized(mqtt_broker, paho):
    client = paho.connect(mqtt_broker, expect_success=False)

    assert client.connack_reason == "Not authorized"


# mosquitto's ACL file cannot deny subscribing alone, so the reference run skips these.
@pytest.mark.bundled_only
def test_denied_subscription_gets_0x80(mqtt_broker, paho):
    client = paho.connect(mqtt_broker, username="alice", password=PASSWORDS["alice"])

    codes = client.subscribe([("secret/#", 1), ("open/alice", 1), ("secret/plans/+", 0)])

    assert [code.value for code in codes] == [SUBACK_FAILURE, 1, SUBACK_FAILURE]
    assert codes[0].is_failure


@pytest.mark.bundled_only
def test_raw_denied_subscription_gets_0x80(mqtt_broker, raw):
    client = raw.open(mqtt_broker)
    client.connect("raw-alice", username="alice", password=PASSWORDS["alice"])

    assert client.subscribe(11, [("secret/x", 2), ("open/x", 2)]) == [SUBACK_FAILURE, 2]


def test_rule_applies_only_to_its_user(mqtt_broker, paho):
    client = paho.connect(mqtt_broker, username="bob", password=PASSWORDS["bob"])

    codes = client.subscribe("secret/#", qos=1)

    assert [code.value for code in codes] == [1]


def test_denied_publish_is_not_delivered(mqtt_broker, paho):
    subscriber = paho.connect(mqtt_broker, username="alice", password=PASSWORDS["alice"])
    subscriber.subscribe([("locked/#", 1), ("locked-sentinel", 1)])
    bob = paho.connect(mqtt_broker, username="bob", password=PASSWORDS["bob"])
    alice = paho.connect(mqtt_broker, username="alice", password=PASSWORDS["alice"])

    bob.publish("locked/door", b"from bob", qos=1)
    alice.publish("locked/door", b"from alice", qos=1)
    alice.publish("locked-sentinel", b"end", qos=1)
    received = subscriber.messages_until("locked-sentinel")

    assert [m.payload for m in received] == [b"from alice"]
    assert not bob.disconnected.is_set(), "MQTT 3.1.1 cannot report a denied PUBLISH, so the connection stays."


def test_mosquitto_sub_with_password_receives(mqtt_broker, paho, mosquitto, topic):
    paho.connect(mqtt_broker, username="bob", password=PASSWORDS["bob"]).publish(topic, b"kept", qos=1, retain=True)

    result = mosquitto.sub_run(mqtt_broker, "-u", "alice", "-P", PASSWORDS["alice"], "-t", topic, "-C", "1", "-W", "5")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "kept\n"

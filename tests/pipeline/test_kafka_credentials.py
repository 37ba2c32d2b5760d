"""Where a Kafka client's identity and credentials come from (no broker needed; the
refusals themselves are tried through the real broker in tests/pipeline/test_kafka_acls.py)."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from lifecert.pipeline import broker_clients, broker_errors
from lifecert.pipeline import credentials as creds

ENV_VARS = (creds.USERNAME_ENV, creds.PASSWORD_ENV, creds.CREDENTIALS_ENV, creds.CA_ENV,
            creds.PROTOCOL_ENV, creds.COMPONENT_ENV)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No credentials in the environment; an empty local stack folder."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIFECERT_DATA_DIR", str(tmp_path / "stack"))
    return tmp_path


def test_local_stack_files_are_private_and_read_per_component(clean_env: Path) -> None:
    folder = creds.local_credentials_dir(clean_env / "stack" / "kafka")
    made = creds.write_local(folder, ("worker", "api"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}
    assert creds.write_local(folder, ("worker", "api")) == made  # kept, not regenerated
    security = broker_clients.client_security("worker")
    assert (security.username, security.password) == ("worker", made["worker"])
    assert security.kafka_python()["security_protocol"] == "SASL_PLAINTEXT"
    assert security.kafka_python()["sasl_mechanism"] == "SCRAM-SHA-512"
    assert made["worker"] not in repr(security)


def test_missing_credentials_say_what_to_do(clean_env: Path) -> None:
    with pytest.raises(broker_errors.KafkaUnavailable, match="lifecert stack up"):
        broker_clients.client_security("worker")


def test_the_environment_wins_and_needs_both_halves(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(creds.USERNAME_ENV, "svc-worker")
    with pytest.raises(broker_errors.KafkaUnavailable, match="both"):
        broker_clients.client_security("worker")
    monkeypatch.setenv(creds.PASSWORD_ENV, "s3cret")
    got = broker_clients.client_security("worker").kafka_python()
    assert (got["sasl_plain_username"], got["sasl_plain_password"]) == ("svc-worker", "s3cret")


def test_a_credentials_file_and_a_ca_give_sasl_ssl(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = clean_env / "api.json"
    path.write_text("{not json", encoding="utf-8")
    monkeypatch.setenv(creds.CREDENTIALS_ENV, str(path))
    with pytest.raises(broker_errors.KafkaUnavailable, match="must be JSON"):
        broker_clients.client_security("api")
    path.write_text(json.dumps({"username": "api", "password": "pw"}), encoding="utf-8")
    ca = clean_env / "ca.pem"  # named only: kafka-python opens it when it connects
    monkeypatch.setenv(creds.CA_ENV, str(ca))
    security = broker_clients.client_security("api")
    assert security.protocol == "SASL_SSL"
    assert security.kafka_python()["ssl_cafile"] == str(ca)
    monkeypatch.setenv(creds.PROTOCOL_ENV, "PLAINTEXT")
    with pytest.raises(broker_errors.KafkaUnavailable, match="SASL_PLAINTEXT"):
        broker_clients.client_security("api")


def test_sasl_plaintext_is_refused_to_a_host_that_is_not_loopback(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(creds.USERNAME_ENV, "api")
    monkeypatch.setenv(creds.PASSWORD_ENV, "pw")
    for bootstrap in ("127.0.0.1:19092", "localhost:9092", "[::1]:9092,127.0.0.2:9092"):
        security = broker_clients.client_security("api", bootstrap)
        assert security.protocol == "SASL_PLAINTEXT", bootstrap
    for bootstrap in ("kafka.example.org:9092", "127.0.0.1:19092,10.0.0.5:9092"):
        with pytest.raises(broker_errors.KafkaUnavailable, match=creds.CA_ENV) as refused:
            broker_clients.client_security("api", bootstrap)
        assert "not loopback" in str(refused.value) and "SASL_SSL" in str(refused.value)
        with pytest.raises(broker_errors.KafkaUnavailable, match="not loopback"):
            broker_clients.producer(bootstrap, component="api")
    monkeypatch.setenv(creds.CA_ENV, str(clean_env / "ca.pem"))
    assert broker_clients.client_security("api", "kafka.example.org:9092").protocol == "SASL_SSL"


def test_kafka_python_s_plaintext_warning_is_not_hidden() -> None:
    import logging

    assert not logging.getLogger("kafka.net.sasl.scram").filters


def test_a_process_must_say_which_component_it_is(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(creds, "_process_default", None)
    with pytest.raises(creds.CredentialsMissing, match=creds.COMPONENT_ENV):
        creds.current_component()
    with pytest.raises(ValueError, match="unknown Kafka component"):
        creds.set_process_component("root")


def test_acting_as_reaches_threads_it_starts_and_ends_with_the_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(creds, "_process_default", "admin")
    seen: list[str] = []
    with creds.acting_as("projections"):
        assert creds.current_component() == "projections"
        thread = threading.Thread(target=lambda: seen.append(creds.current_component()))
        thread.start()
        thread.join()
    assert seen == ["projections"]
    assert creds.current_component() == "admin"

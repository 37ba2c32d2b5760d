"""The PostgreSQL key store (lifecert/keystore), the master key, and the dead letters'
retention (`lifecert dead-letters purge`) against the real database."""

from __future__ import annotations

import base64
import os
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest

from lifecert import cli
from lifecert.api.migrate import migrate as migrate_api
from lifecert.commands.dead_letters import purge, retention_days
from lifecert.databases import create_database, drop_database
from lifecert.datakeys import KeyStoreError, UnknownKey
from lifecert.keystore.master import KEY_ENV, MasterKeyError, create_master_key, master_key
from lifecert.keystore.postgres import PostgresKeyStore
from lifecert.pipeline.topics import DEAD_LETTERS, layout
from lifecert.sealing import generate_key
from lifecert_dev.stack import StackStatus

MASTER = os.urandom(32)


@pytest.fixture
def dsn(stack: StackStatus) -> Iterator[str]:
    name = f"lifecert_keys_{uuid.uuid4().hex[:10]}"
    yield create_database(stack.postgres_dsn, name)
    drop_database(stack.postgres_dsn, name)


def _rows(dsn: str, query: str, *args: object) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


@pytest.mark.stack
def test_keys_are_made_once_stored_wrapped_and_destroyed_for_good(dsn: str) -> None:
    store = PostgresKeyStore(dsn, MASTER)
    try:
        key = store.create("R1")
        assert store.create("R1") == key  # one live key per subject
        assert PostgresKeyStore(dsn, MASTER).get("R1", key.key_id) == key  # another process
        ((wrapped,),) = _rows(dsn, "SELECT wrapped FROM personal_data_keys WHERE subject = 'R1'")
        assert key.secret not in bytes(wrapped)  # wrapped, never the key itself
        assert key.secret.hex() not in repr(key) and repr(key.secret) not in repr(key)
        with pytest.raises(UnknownKey):
            store.get("R1", "0123456789abcdef")
        assert store.destroy("R1") == 1
        assert store.destroy("R1") == 0
        assert store.get("R1", key.key_id) is None
        assert _rows(dsn, "SELECT wrapped IS NULL, destroyed_at IS NOT NULL FROM "
                          "personal_data_keys WHERE subject = 'R1'") == [(True, True)]
        assert store.create("R1").key_id != key.key_id  # new data, new key
    finally:
        store.close()


@pytest.mark.stack
def test_a_wrong_master_key_or_a_moved_wrapped_key_opens_nothing(dsn: str) -> None:
    store = PostgresKeyStore(dsn, MASTER)
    one, two = store.create("R1"), store.create("R2")
    store.close()
    with pytest.raises(KeyStoreError, match="does not open with this master key"):
        PostgresKeyStore(dsn, os.urandom(32)).get("R1", one.key_id)
    # R1's wrapped key copied onto R2's row: bound to its subject, it does not open there.
    _rows(dsn, "UPDATE personal_data_keys SET wrapped = (SELECT wrapped FROM "
               "personal_data_keys WHERE subject = 'R1') WHERE subject = 'R2'")
    with pytest.raises(KeyStoreError):
        PostgresKeyStore(dsn, MASTER).get("R2", two.key_id)


@pytest.mark.stack
def test_without_the_master_key_a_store_can_destroy_but_not_make_or_open(dsn: str) -> None:
    key = PostgresKeyStore(dsn, MASTER).create("R1")
    blind = PostgresKeyStore(dsn, None)
    with pytest.raises(KeyStoreError, match="without the master key"):
        blind.create("R2")
    with pytest.raises(KeyStoreError, match="without the master key"):
        blind.get("R1", key.key_id)
    assert blind.destroy("R1") == 1


def test_an_unreachable_key_store_is_an_error_that_says_so() -> None:
    with pytest.raises(KeyStoreError, match="cannot reach the key store"):
        PostgresKeyStore("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1", MASTER)


def test_master_key_from_the_environment_or_a_private_file(tmp_path: Path) -> None:
    key = generate_key()
    assert master_key(tmp_path, {KEY_ENV: key}) == base64.b64decode(key)
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(MasterKeyError, match=KEY_ENV):
            master_key(tmp_path, {KEY_ENV: bad})
    # Never made on first use: a process with another working folder or keys folder
    # would wrap new keys under a master no other process has.
    path = tmp_path / "keys" / "personal-data.key"
    with pytest.raises(MasterKeyError) as refused:
        master_key(tmp_path / "keys", {})
    message = str(refused.value)
    assert str(path) in message and KEY_ENV in message and "lifecert keys create" in message
    assert not path.exists()
    # Made by the explicit step only, once.
    assert create_master_key(tmp_path / "keys", {}) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    made = master_key(tmp_path / "keys", {})
    assert len(made) == 32
    assert create_master_key(tmp_path / "keys", {}) is None  # kept, not remade
    assert master_key(tmp_path / "keys", {}) == made
    assert create_master_key(tmp_path / "other", {KEY_ENV: key}) is None  # given: none made
    assert not (tmp_path / "other").exists()


def test_lifecert_keys_create_makes_both_keys_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lifecert.api.server_config import SECOND_FACTOR_KEY_ENV, second_factor_key
    from lifecert.cli import main

    monkeypatch.setenv("LIFECERT_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(SECOND_FACTOR_KEY_ENV, raising=False)
    argv = ["keys", "create", "--pki-dir", str(tmp_path / "pki")]
    assert main(argv) == 0
    assert "made" in capsys.readouterr().err
    master = master_key()
    factor = second_factor_key(tmp_path / "api")
    assert main(argv) == 0
    assert "none made" in capsys.readouterr().err
    assert master_key() == master and second_factor_key(tmp_path / "api") == factor


@pytest.mark.stack
def test_purge_applies_the_retention_to_dead_letter_tables_and_raw_record_keys(
    dsn: str,
) -> None:
    assert retention_days() == 30
    assert layout("")[DEAD_LETTERS].config["retention.ms"] == str(30 * 86_400_000)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    migrate_api(conn)
    conn.close()
    now = datetime(2017, 7, 20, tzinfo=UTC)
    for offset, age in ((1, 40), (2, 29)):
        _rows(dsn, 'INSERT INTO api_directory_dead_letters (topic, "partition", "offset", '
                   "reason, set_aside_at) VALUES ('t', 0, %s, 'r', %s)",
              offset, now - timedelta(days=age))
    _rows(dsn, "INSERT INTO api_audit_dead_letters (error, row, set_aside_at) VALUES "
               "('e', '{}', %s)", now - timedelta(days=31))
    store = PostgresKeyStore(dsn, MASTER)
    for month in ("2017-04", "2017-05", "2017-06", "2017-07"):
        store.create(f"dead-letters/{month}")
    store.create("R1")
    store.close()
    deleted, destroyed = purge([dsn], dsn, 30, now=now)
    assert deleted == {"api_directory_dead_letters": 1, "api_audit_dead_letters": 1}
    # 30 days before 2017-07-20 is in June: the months wholly before it go.
    assert destroyed == ["dead-letters/2017-04", "dead-letters/2017-05"]
    assert _rows(dsn, 'SELECT "offset" FROM api_directory_dead_letters') == [(2,)]
    assert _rows(dsn, "SELECT subject FROM personal_data_keys WHERE wrapped IS NOT NULL "
                      "ORDER BY subject") == [
        ("R1",), ("dead-letters/2017-06",), ("dead-letters/2017-07",)]


def test_the_purge_command_refuses_a_bad_period(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dead-letters", "purge", "--days", "0"]) == 2
    assert "--days must be above 0" in capsys.readouterr().err


@pytest.mark.stack
def test_many_keys_are_made_in_one_transaction_and_live_ones_are_reused(dsn: str) -> None:
    store = PostgresKeyStore(dsn, MASTER)
    try:
        old = store.create("R1")
        keys = store.create_many(["R1", "R2", "R3", "R2"])
        assert sorted(k.subject for k in keys) == ["R1", "R2", "R3"]
        assert {k.subject: k for k in keys}["R1"] == old  # the live key, not a second one
        for key in keys:
            assert store.get(key.subject, key.key_id) == key
        assert store.create_many([]) == []
        assert _rows(dsn, "SELECT count(*) FROM personal_data_keys") == [(3,)]
    finally:
        store.close()


@pytest.mark.stack
def test_publish_makes_its_keys_ahead_in_chunks(dsn: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from lifecert.events.personal import reveal
    from lifecert.keystore import CachedKeyStore
    from lifecert.pipeline import publish
    from tests.helpers import cert, enroll

    inner = PostgresKeyStore(dsn, MASTER)
    calls: list[int] = []
    create_many = inner.create_many
    monkeypatch.setattr(inner, "create_many", lambda s: calls.append(len(s)) or create_many(s))
    monkeypatch.setattr(publish, "PREFETCH_LINES", 3)
    keys = CachedKeyStore(inner)
    lines = [enroll("P1", name="甲"),
             cert("C1", "P1", "FACE_APP", performed_at="2017-05-02T09:00:00+08:00"),
             enroll("P2", name="乙"), "not json", enroll("P3", name="丙")]
    prepared = list(publish.prepare_lines(lines, lambda *a: None, keys=keys))
    assert calls == [2, 1]  # two chunks of three lines: one transaction each
    assert [reveal(p.event, "name", PostgresKeyStore(dsn, MASTER)) for p in prepared
            if p.event["type"] == "RetireeEnrolled"] == ["甲", "乙", "丙"]
    inner.close()


def test_publish_refuses_to_run_without_its_key_store(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A master key of its own: the key store, not the local stack's key file, is missing.
    monkeypatch.setenv(KEY_ENV, generate_key())
    events = tmp_path / "e.jsonl"
    events.write_text("\n", encoding="utf-8")
    assert cli.main(["publish", str(events), "--quiet", "--keys-dsn",
                     "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"]) == 1
    assert "the key store of personal data: cannot reach the key store" in \
        capsys.readouterr().err


def test_erase_refuses_an_id_it_cannot_be(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["erase", "R1\x00", "--yes"]) == 2
    assert "RETIREE_ID must be 1-128 printable characters" in capsys.readouterr().err

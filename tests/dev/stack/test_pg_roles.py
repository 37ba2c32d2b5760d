"""PostgreSQL is not open: every connection needs its SCRAM password (TCP and the unix
socket), each component connects as its own role and may do only what
lifecert/dbroles.py grants it. Against the stack's real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest

from lifecert import dbroles
from lifecert.api.migrate import migrate as migrate_all
from lifecert.databases import create_database, drop_database
from lifecert.migrations import MigrationError
from lifecert_dev.stack import StackConfig, StackStatus
from lifecert_dev.stack import postgres as stack_postgres
from lifecert_dev.stack.postgres import PG_HBA, read_passfile

pytestmark = pytest.mark.stack


def connect(dsn: str, **kwargs: str) -> psycopg2.extensions.connection:
    return psycopg2.connect(dsn, connect_timeout=10, **kwargs)


@pytest.fixture
def database(stack: StackStatus) -> Iterator[str]:
    """A database made as the demo's and the API sandbox's are: closed to PUBLIC, the
    schema (read models and API tables) made by its owner role. Yields its name."""
    name = f"lifecert_roles_{uuid.uuid4().hex[:8]}"
    create_database(stack.postgres_dsn, name)
    dbroles.lock_down(stack.postgres_dsn, name)
    conn = connect(stack.postgres_dsn_for("owner", name))
    try:
        migrate_all(conn)
    finally:
        conn.close()
    yield name
    drop_database(stack.postgres_dsn, name)


def run(dsn: str, statement: str) -> list[tuple[object, ...]]:
    conn = connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def refused(dsn: str, statement: str) -> str:
    with pytest.raises(psycopg2.errors.InsufficientPrivilege) as caught:
        run(dsn, statement)
    return str(caught.value)


# ------------------------------------------------------------------ authentication
def test_a_client_without_a_password_is_refused_over_tcp_and_the_socket(
        stack: StackStatus, tmp_path: Path) -> None:
    cfg = stack.config
    empty = tmp_path / "no-passwords"
    empty.write_text("")
    empty.chmod(0o600)
    wrong = tmp_path / "wrong-passwords"
    wrong.write_text(f"*:*:*:{cfg.pg_superuser}:not-the-password\n")
    wrong.chmod(0o600)
    socket_dir = cfg.postgres_dir / "socket"
    for host in ("127.0.0.1", str(socket_dir)):
        for role in (cfg.pg_superuser, *dbroles.ROLES.values()):
            with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
                connect(f"host={host} port={cfg.pg_port} dbname=postgres user={role} "
                        f"passfile={empty}")
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            connect(f"host={host} port={cfg.pg_port} dbname=postgres "
                    f"user={cfg.pg_superuser} passfile={wrong}")
    # the stack's own DSN authenticates through its password file, over both
    assert run(stack.postgres_dsn, "SELECT 1") == [(1,)]
    over_socket = psycopg2.extensions.make_dsn(stack.postgres_dsn, host=str(socket_dir))
    assert run(over_socket, "SELECT current_user") == [(cfg.pg_superuser,)]


def test_the_server_asks_every_connection_for_a_scram_password(stack: StackStatus) -> None:
    hba = (stack.config.postgres_dir / "pgdata" / "pg_hba.conf").read_text()
    assert hba == PG_HBA
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert {rule[0] for rule in rules} == {"local", "host"}
    assert all(rule[-1] == "scram-sha-256" for rule in rules)
    stored = dict(run(stack.postgres_dsn, "SELECT rolname, rolpassword FROM pg_authid "
                                          "WHERE rolpassword IS NOT NULL"))
    ours = {stack.config.pg_superuser, *dbroles.ROLES.values()}
    assert ours <= set(stored)
    assert all(stored[role].startswith("SCRAM-SHA-256$4096:") for role in ours)
    assert run(stack.postgres_dsn, "SHOW password_encryption") == [("scram-sha-256",)]


def test_passwords_stay_in_a_private_file_and_out_of_every_dsn(stack: StackStatus) -> None:
    passfile = stack.config.pg_passfile
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
    assert stat.S_IMODE(passfile.parent.stat().st_mode) == 0o700
    passwords = read_passfile(passfile)
    assert set(passwords) == {stack.config.pg_superuser, *dbroles.ROLES.values()}
    assert len(set(passwords.values())) == len(passwords), "one password per role"
    for dsn in (stack.postgres_dsn, *(stack.postgres_dsn_for(c) for c in dbroles.ROLES)):
        params = psycopg2.extensions.parse_dsn(dsn)
        assert "password" not in params and params["passfile"] == str(passfile)
        assert not any(password in dsn for password in passwords.values())


# ------------------------------------------------------------------ least privilege
def test_the_api_reads_the_status_but_writes_no_read_model(
        stack: StackStatus, database: str) -> None:
    api = stack.postgres_dsn_for("api", database)
    assert run(api, "SELECT count(*) FROM retiree_status") == [(0,)]
    assert run(api, "SELECT count(*) FROM open_holds") == [(0,)]
    run(api, "INSERT INTO api_audit (at, agency, role, peer, method, outcome) "
             "VALUES (now(), 'FS-A', 'r', 'p', 'm', 'OK')")
    run(api, "DELETE FROM api_second_factor_lockouts")
    assert "permission denied for table retiree_status" in refused(
        api, "UPDATE retiree_status SET status = 'TERMINATED'")
    assert "permission denied for table open_holds" in refused(api, "DELETE FROM open_holds")
    # the payment instructions and the offsets are none of its business
    assert "instruction_ledger" in refused(api, "SELECT count(*) FROM instruction_ledger")
    assert "projection_offsets" in refused(api, "SELECT count(*) FROM projection_offsets")
    assert "permission denied for schema public" in refused(api, "CREATE TABLE x (a int)")


def test_the_api_reads_of_the_consular_cases_what_a_review_shows_only(
        stack: StackStatus, database: str) -> None:
    """The consular review's own queries (projections.consular, as the API and `lifecert
    review consular` run them) work as the API's role; the event ids and topic positions
    the projections keep beside them are refused."""
    from lifecert.domain.policy import load_policy
    from projections.consular import list_cases, load_case

    conn = connect(stack.postgres_dsn_for("api", database))
    try:
        assert list_cases(conn, load_policy("foshan-2017"), dt.date(2017, 5, 1), "all") == []
        assert load_case(conn, "LS-NONE") is None
    finally:
        conn.close()
    api = stack.postgres_dsn_for("api", database)
    for column in ("event_id", "review_event_id", "source_offset", "due_on", "*"):
        assert "permission denied for table consular_cases" in refused(
            api, f"SELECT {column} FROM consular_cases"), column


@pytest.mark.parametrize("table", dbroles.READ_MODEL_TABLES)
def test_the_api_can_change_no_read_model(stack: StackStatus, database: str, table: str) -> None:
    """The API connects as its own role (lifecert_api), never the projections': whatever
    it may read, it can insert, update, delete or truncate no row of any read model."""
    api = stack.postgres_dsn_for("api", database)
    admin = psycopg2.extensions.make_dsn(stack.postgres_dsn, dbname=database)
    [(column,)] = run(admin, "SELECT column_name FROM information_schema.columns "
                             f"WHERE table_name = '{table}' AND ordinal_position = 1")
    for statement in (f"INSERT INTO {table} DEFAULT VALUES",
                      f"UPDATE {table} SET {column} = {column}",
                      f"DELETE FROM {table}", f"TRUNCATE {table}"):
        assert f"permission denied for table {table}" in refused(api, statement), statement


def test_the_api_appends_to_its_audit_trail_and_cannot_rewrite_it(
        stack: StackStatus, database: str) -> None:
    api = stack.postgres_dsn_for("api", database)
    run(api, "INSERT INTO api_audit (at, agency, role, peer, method, outcome) "
             "VALUES (now(), 'FS-A', 'r', 'p', 'm', 'OK')")
    for statement in ("UPDATE api_audit SET outcome = 'NOTHING'", "DELETE FROM api_audit",
                      "TRUNCATE api_audit", "DELETE FROM api_audit_dead_letters",
                      "DELETE FROM api_face_decisions",
                      "UPDATE api_face_decisions SET decision = 'MATCH'"):
        assert "permission denied for table api_" in refused(api, statement), statement
    admin = psycopg2.extensions.make_dsn(stack.postgres_dsn, dbname=database)
    assert run(admin, "SELECT agency, outcome FROM api_audit") == [("FS-A", "OK")]


def test_the_projections_cannot_read_or_write_the_apis_tables(
        stack: StackStatus, database: str) -> None:
    projections = stack.postgres_dsn_for("projections", database)
    run(projections, "INSERT INTO projection_offsets VALUES ('t', 0, 1)")
    assert run(projections, "SELECT next_offset FROM projection_offsets") == [(1,)]
    for table in ("api_audit", "api_second_factors", "api_retiree_directory",
                  "api_face_references", "api_second_factor_lockouts"):
        assert f"permission denied for table {table}" in refused(
            projections, f"SELECT * FROM {table}")
    assert run(projections, "SELECT has_function_privilege(p.oid, 'EXECUTE') FROM pg_proc p "
                            "WHERE proname = 'api_second_factor_failed'") == [(False,)]
    assert run(stack.postgres_dsn_for("api", database),
               "SELECT has_function_privilege(p.oid, 'EXECUTE') FROM pg_proc p "
               "WHERE proname = 'api_second_factor_failed'") == [(True,)]
    assert "permission denied for schema public" in refused(projections,
                                                            "CREATE TABLE x (a int)")


def test_the_reader_only_reads_the_read_models(stack: StackStatus, database: str) -> None:
    reader = stack.postgres_dsn_for("reader", database)
    assert run(reader, "SELECT count(*) FROM campaign_counters") == [(0,)]
    assert "permission denied" in refused(reader, "DELETE FROM retiree_status")
    assert "permission denied" in refused(reader, "SELECT * FROM api_audit")


def test_the_web_reads_what_it_shows_and_keeps_the_shared_lockouts(
        stack: StackStatus, database: str) -> None:
    """lifecert web serve's own role: the read models of the status page and the
    dashboard, the status query's tables, the lockouts it shares with the API (through
    api_second_factor_failed), its sessions, its audit rows."""
    web = stack.postgres_dsn_for("web", database)
    for table in ("retiree_status", "open_holds", "event_verdicts", "instruction_ledger",
                  "consular_cases", "assistance_cases", "projection_offsets",
                  "campaign_counters", "forms_outstanding", "forms_unmatched",
                  "api_second_factors", "api_retiree_directory", "api_web_staff",
                  "api_directory_dead_letters"):
        assert run(web, f"SELECT count(*) FROM {table}") == [(0,)], table
    [(failures, *_rest)] = run(web, "SELECT * FROM api_second_factor_failed("
                                    "'s', 'lifecert-web', 'c', 5, 60, 100, 60, 1)")
    assert failures == 1
    run(web, "DELETE FROM api_second_factor_lockouts WHERE subject = 's'")
    run(web, "INSERT INTO api_audit (at, agency, role, peer, method, outcome) "
             "VALUES (now(), 'lifecert-web', 'PORTAL', NULL, 'web.GetStatus', 'OK')")
    admin = psycopg2.extensions.make_dsn(stack.postgres_dsn, dbname=database)
    run(admin, "INSERT INTO api_web_staff (username, password_hash, role) "
               "VALUES ('city.a', '$argon2id$x', 'CITY')")
    run(web, "INSERT INTO api_web_sessions (token_hash, username, csrf, expires_at) "
             "VALUES ('t', 'city.a', 'c', now() + interval '1 hour')")
    run(web, "DELETE FROM api_web_sessions WHERE token_hash = 't'")
    assert run(admin, "SELECT count(*) FROM api_agency_failure_budgets") == [(2,)]
    assert run(admin, "SELECT count(*) FROM api_pending_alerts") == [(1,)]


def test_the_web_refuses_what_it_has_no_business_with(
        stack: StackStatus, database: str) -> None:
    web = stack.postgres_dsn_for("web", database)
    # personal data it never shows, the API's other tables, the partner API's records
    for table in ("retiree_contacts", "home_visit_reports", "home_visit_teams",
                  "assistance_refusals", "paper_forms", "api_audit",
                  "api_audit_dead_letters", "api_face_references", "api_face_decisions",
                  "api_accepted_events", "api_subscription_cursors", "api_pending_alerts"):
        assert f"permission denied for table {table}" in refused(
            web, f"SELECT * FROM {table}"), table
    # no read model it may change; no api_ table it does not own (the staff accounts are
    # made by the owner, lifecert web user add), its audit appended to only
    for statement in ("UPDATE retiree_status SET status = 'TERMINATED'",
                      "DELETE FROM open_holds", "TRUNCATE instruction_ledger",
                      "UPDATE campaign_counts SET retirees = 0",
                      "INSERT INTO api_second_factors VALUES ('R', '', '')",
                      "DELETE FROM api_retiree_directory",
                      "INSERT INTO api_web_staff (username, password_hash, role) "
                      "VALUES ('x.y', '$argon2id$x', 'CITY')",
                      "UPDATE api_web_staff SET role = 'CITY'",
                      "UPDATE api_web_sessions SET expires_at = now()",
                      "UPDATE api_audit SET outcome = 'NOTHING'", "DELETE FROM api_audit",
                      "DELETE FROM api_pending_alerts",
                      "INSERT INTO api_subscription_cursors VALUES ('a', 'c', now())"):
        assert "permission denied" in refused(web, statement), statement
    assert "permission denied for schema public" in refused(web, "CREATE TABLE x (a int)")
    # and the API's role, in turn, no longer reaches the web's sessions nor its accounts
    api = stack.postgres_dsn_for("api", database)
    for table in ("api_web_staff", "api_web_sessions"):
        assert f"permission denied for table {table}" in refused(api, f"SELECT * FROM {table}")


def test_the_owner_owns_the_schema_and_nothing_more(stack: StackStatus, database: str) -> None:
    owner = stack.postgres_dsn_for("owner", database)
    assert run(owner, "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
                      "WHERE rolname = current_user") == [(False, False, False)]
    assert "permission denied to create role" in refused(owner, "CREATE ROLE x")
    owners = run(psycopg2.extensions.make_dsn(stack.postgres_dsn, dbname=database),
                 "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
    assert owners == [("lifecert_owner",)]


def test_only_lifecerts_roles_may_connect(stack: StackStatus, database: str,
                                         tmp_path: Path) -> None:
    stranger = f"stranger_{uuid.uuid4().hex[:6]}"
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:{stranger}:s3cret-{stranger}\n")
    passfile.chmod(0o600)
    conn = connect(stack.postgres_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE ROLE {stranger} LOGIN PASSWORD %s",
                        (dbroles.scram_verifier(f"s3cret-{stranger}"),))
        dsn = psycopg2.extensions.make_dsn(stack.postgres_dsn, user=stranger,
                                           dbname=database, passfile=str(passfile))
        with pytest.raises(psycopg2.OperationalError,
                           match=f"permission denied for database \"?{database}"):
            connect(dsn)
        # a role with a password but no grant: it authenticates, then may not connect
        assert run(psycopg2.extensions.make_dsn(dsn, dbname="postgres"), "SELECT 1")
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP ROLE {stranger}")
        conn.close()


def test_a_component_role_cannot_apply_pending_migrations(stack: StackStatus) -> None:
    name = f"lifecert_roles_{uuid.uuid4().hex[:8]}"
    create_database(stack.postgres_dsn, name)
    try:
        dbroles.lock_down(stack.postgres_dsn, name)
        conn = connect(stack.postgres_dsn_for("api", name))
        try:
            with pytest.raises(MigrationError, match="role 'lifecert_api' may not apply them"
                               r".*`lifecert projections migrate`, role lifecert_owner"):
                migrate_all(conn)
        finally:
            conn.close()
        owner = connect(stack.postgres_dsn_for("owner", name))
        try:
            assert [m.version for m in migrate_all(owner)]
        finally:
            owner.close()
        conn = connect(stack.postgres_dsn_for("api", name))
        try:
            assert migrate_all(conn) == [], "up to date: nothing to do, no right needed"
        finally:
            conn.close()
    finally:
        drop_database(stack.postgres_dsn, name)


def test_grants_are_exact_and_cover_every_table(stack: StackStatus, database: str) -> None:
    admin = psycopg2.extensions.make_dsn(stack.postgres_dsn, dbname=database)
    tables = [t for (t,) in run(admin, "SELECT tablename FROM pg_tables "
                                       "WHERE schemaname = 'public'")]
    uncovered = [t for t in tables if not dbroles.covered(t)]
    assert uncovered == [], "a table no role may use: add its row to dbroles.GRANTS"
    # a privilege granted by hand does not survive the next migration run
    run(admin, "GRANT SELECT ON api_audit TO lifecert_reader")
    owner = connect(stack.postgres_dsn_for("owner", database))
    try:
        migrate_all(owner)
    finally:
        owner.close()
    assert "api_audit" in refused(stack.postgres_dsn_for("reader", database),
                                  "SELECT * FROM api_audit")
    granted = run(admin, """
        SELECT grantee, table_name, string_agg(privilege_type, ',' ORDER BY privilege_type)
        FROM information_schema.role_table_grants
        WHERE grantee LIKE 'lifecert\\_%' AND grantee <> 'lifecert_owner'
        GROUP BY 1, 2""")
    for role, table, privileges in granted:
        assert role in dbroles.covered(table), (role, table, privileges)


# ------------------------------------------------------------------ the connectors' roles
def test_the_connectors_roles_reach_their_partners_tables_only(
        stack: StackStatus, database: str, tmp_path: Path) -> None:
    from lifecert_dev.partners.payment_ledger.harness import PaymentLedgerHarness
    from lifecert_dev.partners.pension_master.harness import PensionMasterHarness

    master, ledger = PensionMasterHarness(stack.postgres_dsn), PaymentLedgerHarness(
        stack.postgres_dsn)
    try:
        source = master.start(tmp_path / "master")["dsn"]
        sink = ledger.start(tmp_path / "ledger")["dsn"]
        assert psycopg2.extensions.parse_dsn(source)["user"] == dbroles.MASTER_SOURCE
        assert psycopg2.extensions.parse_dsn(sink)["user"] == dbroles.LEDGER_SINK
        # the source reads the outbox, and not the master's register of persons
        assert run(source, "SELECT count(*) FROM master.outbox") == [(0,)]
        assert "permission denied for table retiree" in refused(
            source, "SELECT * FROM master.retiree")
        assert "permission denied" in refused(source, "DELETE FROM master.outbox")
        # the sink runs the intake; it deletes nothing and changes no schema
        assert run(sink, "SELECT count(*) FROM intake_position") == [(0,)]
        assert "permission denied" in refused(sink, "DELETE FROM instruction")
        assert "permission denied" in refused(sink, "CREATE TABLE x (a int)")
        # neither may connect to lifecert's own databases
        for dsn in (source, sink):
            with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
                connect(psycopg2.extensions.make_dsn(dsn, dbname=database))
    finally:
        master.stop()
        ledger.stop()


def test_a_cluster_made_with_trust_is_converted_on_the_next_start(
        private_stack_env: dict[str, str], tmp_path: Path) -> None:
    cfg = stack_postgres.locate(StackConfig.from_env(private_stack_env))
    stack_postgres.start(cfg)
    assert (cfg.postgres_dir / "pgdata" / "pg_hba.conf").read_text() == PG_HBA
    # what an older lifecert left: `initdb -A trust`, no password, no password file
    hba = cfg.postgres_dir / "pgdata" / "pg_hba.conf"
    run(cfg.postgres_dsn, f"ALTER ROLE {cfg.pg_superuser} PASSWORD NULL")
    hba.write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    cfg.pg_passfile.unlink()
    bindir = stack_postgres.find_bindir(cfg)
    assert bindir is not None
    stack_postgres._run([str(bindir / "pg_ctl"), "reload", "-D", str(hba.parent)],
                        stack_postgres.run_as(cfg), cfg.postgres_dir)
    empty = tmp_path / "no-passwords"
    empty.write_text("")
    empty.chmod(0o600)
    bare = (f"host=127.0.0.1 port={cfg.pg_port} dbname=postgres user={cfg.pg_superuser} "
            f"passfile={empty}")
    deadline = time.monotonic() + 10
    while True:  # the reload is asynchronous
        try:
            connect(bare).close()
            break
        except psycopg2.OperationalError:
            assert time.monotonic() < deadline, "the trust rules never took effect"
            time.sleep(0.2)

    stack_postgres.start(cfg)

    assert hba.read_text() == PG_HBA
    assert stat.S_IMODE(cfg.pg_passfile.stat().st_mode) == 0o600
    with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
        connect(bare)
    assert run(cfg.postgres_dsn, "SELECT current_user") == [(cfg.pg_superuser,)]
    assert run(psycopg2.extensions.make_dsn(cfg.postgres_dsn_for("api"), dbname="postgres"),
               "SELECT current_user") == [("lifecert_api",)]


# ------------------------------------------------------------------ the key store's role
def test_the_keystore_owns_its_tables_vacuums_them_and_reads_nothing_else(
        stack: StackStatus, database: str) -> None:
    import os

    from lifecert.keystore.postgres import PostgresKeyStore, migrate_as

    admin = psycopg2.extensions.make_dsn(stack.postgres_dsn, dbname=database)
    migrate_as(admin)  # as the stack does for its database: hands the tables over
    keystore = stack.postgres_dsn_for("keystore", database)
    owners = dict(run(admin, "SELECT tablename, tableowner FROM pg_tables "
                             "WHERE tablename LIKE 'personal\\_data\\_%'"))
    assert owners == {"personal_data_keys": "lifecert_keystore",
                      "personal_data_erasures": "lifecert_keystore"}
    store = PostgresKeyStore(keystore, os.urandom(32))  # its migrations: up to date
    try:
        key = store.create("R1")
        assert store.get("R1", key.key_id) == key
        assert store.destroy("R1") == 1  # and VACUUMs the table
    finally:
        store.close()
    assert run(admin, "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables "
                      "WHERE relname = 'personal_data_keys'") == [(True,)]
    conn = connect(keystore)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("VACUUM personal_data_keys")
            cur.execute("INSERT INTO personal_data_erasures (subject, requested_by, "
                        "keys_destroyed, rows_scrubbed, outcome) VALUES "
                        "('R1', 'test', 1, 0, 'erased')")
        assert conn.notices == [], "PostgreSQL skips VACUUM for a role not the owner"
    finally:
        conn.close()
    for table in ("retiree_status", "api_audit", "schema_migrations", "retiree_contacts"):
        assert "permission denied" in refused(keystore, f"SELECT * FROM {table}")
    assert "permission denied" in refused(keystore, "CREATE TABLE t (x int)")
    assert run(keystore, "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
                         "WHERE rolname = current_user") == [(False, False, False)]
    # a later migration run (as the owner) keeps the key store's tables its own, whole
    owner = connect(stack.postgres_dsn_for("owner", database))
    try:
        migrate_all(owner)
    finally:
        owner.close()
    assert run(keystore, "SELECT count(*) FROM personal_data_keys") == [(1,)]


def test_the_stacks_key_store_clients_connect_as_the_keystore_role(
        stack: StackStatus, monkeypatch: pytest.MonkeyPatch) -> None:
    from lifecert.endpoints import DSN_ENV
    from lifecert.keystore.postgres import KEYS_DSN_ENV, resolve_keys_dsn

    monkeypatch.delenv(KEYS_DSN_ENV, raising=False)
    monkeypatch.delenv(DSN_ENV, raising=False)
    dsn = resolve_keys_dsn()
    assert psycopg2.extensions.parse_dsn(dsn)["user"] == "lifecert_keystore"
    assert run(dsn, "SELECT tableowner FROM pg_tables "
                    "WHERE tablename = 'personal_data_keys'") == [("lifecert_keystore",)]

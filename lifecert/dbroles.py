"""PostgreSQL roles of lifecert's components and what each may do, in one place.

Every component connects as its own role, with only the privileges listed in
:data:`GRANTS`:

============================  =====================================================
role                          may
============================  =====================================================
``lifecert_owner``            own the schema of lifecert's databases and run the
                              migrations (``lifecert projections migrate``); nothing
                              else (no superuser, no CREATEDB, no CREATEROLE)
``lifecert_projections``      write the read models and their offsets; read nothing
                              of the API's
``lifecert_api``              read the read models the partner API answers from
                              (``retiree_status``, ``open_holds``, and of
                              ``consular_cases`` the columns of a staff review, not
                              its event ids and topic positions); write only its own
                              ``api_*`` tables, and only append to its audit trail and
                              face decisions (no UPDATE, no DELETE)
``lifecert_reader``           read the read models (exports, reports, dashboards);
                              write nothing, read nothing of the API's
``lifecert_web``              (``lifecert web serve``) read the read models the status
                              page and the dashboard show (not the contacts, not the
                              home visits' reports), the status query's tables
                              (second factors, directory) and its shared lockouts, which
                              it writes (with ``api_second_factor_failed``); own the
                              staff sessions (the accounts it only reads: ``lifecert
                              web user add`` runs as the owner); append to the audit
                              trail; nothing else of the API's
``lifecert_keystore``         own the key store's tables (``personal_data_keys``,
                              ``personal_data_erasures``: owning them is what lets
                              ``destroy`` VACUUM the destroyed keys away) and read
                              ``keystore_schema_migrations``; nothing else (no read
                              model, no ``api_*`` table)
``lifecert_master_source``    (pension-master connector) connect to the master's
                              database and read its outbox; nothing of ours
``lifecert_ledger_sink``      (payment-ledger connector) connect to the payment
                              system's ledger and run its intake; nothing of ours
============================  =====================================================

The grants are applied by the migrations themselves (:func:`apply_grants`, called by
``lifecert.migrations.MigrationSet.migrate`` in the transaction of the migrations it
applies), so a database is never at a schema version without its grants. They are exact:
each component role first loses every table privilege in the schema, then gets what is
listed, so a privilege granted by hand does not survive the next migration. A new table
is reachable by nobody until a row here names it (or its ``api_`` prefix does):
``tests/dev/stack/test_pg_roles.py`` checks that every table of both migration sets is covered.

The database itself is closed to PUBLIC (:func:`lock_down`): only these roles may
connect, and only the projections may create temporary tables (their bulk loads).

Passwords: the local stack generates one per role and keeps them in a libpq password
file (mode 0600) that the DSNs name with ``passfile=``; :func:`dsn_as` turns any DSN
into a component's, so no password is ever on a command line, in the environment or in
a log. Elsewhere (docker/, production) each component gets its own DSN in
``LIFECERT_POSTGRES_DSN``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

OWNER = "lifecert_owner"
PROJECTIONS = "lifecert_projections"
API = "lifecert_api"
READER = "lifecert_reader"
WEB = "lifecert_web"
# the connectors that reach into a partner's own database, as the partner lets them
# (the partner's grants: each simulator's ``init --connector-role``); nothing in ours
MASTER_SOURCE = "lifecert_master_source"
LEDGER_SINK = "lifecert_ledger_sink"
# the personal-data key store (lifecert/keystore): owns its tables, PostgreSQL runs VACUUM
# only for a table's owner; made their owner by :func:`apply_grants` (as a superuser)
KEYSTORE = "lifecert_keystore"
KEYSTORE_TABLES = ("personal_data_keys", "personal_data_erasures")

#: component name (``lifecert stack dsn COMPONENT``) -> its role
ROLES: dict[str, str] = {
    "owner": OWNER,
    "projections": PROJECTIONS,
    "api": API,
    "reader": READER,
    "web": WEB,
    "pension-master": MASTER_SOURCE,
    "payment-ledger": LEDGER_SINK,
    "keystore": KEYSTORE,
}
COMPONENT_ROLES = (PROJECTIONS, API, READER, KEYSTORE, WEB)

# retiree_contacts holds phone and address sealed only (lifecert.events.personal)
READ_MODEL_TABLES = ("retiree_status", "instruction_ledger", "open_holds",
                     "retiree_contacts", "consular_cases", "assistance_cases",
                     "assistance_refusals", "projection_offsets",
                     "form_certifications", "paper_forms", "event_verdicts",
                     "home_visit_reports", "home_visit_teams", "campaign_counts",
                     "connector_health", "dead_letter_index",
                     "home_visit_dismissals")
READ_MODEL_VIEWS = ("campaign_counters", "retiree_corrections",
                    "forms_outstanding", "forms_unmatched", "forms_outstanding_by_agency",
                    "home_visit_tasks")


@dataclass(frozen=True)
class Grant:
    """``privileges`` on the ``tables`` named (those that exist), and on every table,
    view and sequence whose name starts with ``prefix`` except ``excluding``."""

    role: str
    privileges: str
    tables: tuple[str, ...] = ()
    prefix: str | None = None
    excluding: tuple[str, ...] = ()
    # only these columns of ``tables`` (a column-level grant), when given
    columns: tuple[str, ...] = ()


WRITE = "SELECT, INSERT, UPDATE, DELETE"
API_CONSULAR_COLUMNS = ("case_id", "retiree_id", "mission_id", "mission_kind",
                        "passport_checked", "residence_permit_checked", "face_checked",
                        "performed_at", "received_at", "decision", "reviewer", "reviewed_at",
                        "country", "deliveries", "reason")
API_ASSISTANCE_COLUMNS = ("partner", "case_id", "retiree_id", "direction", "status",
                          "result_id")
# the API's records of what happened: inserted, never updated or deleted by the API
APPEND_ONLY = ("api_audit", "api_audit_dead_letters", "api_face_decisions")
# the web pages' staff accounts and sessions (lifecert/web/staff.py): the web's, not the API's
WEB_STAFF = ("api_web_staff", "api_web_sessions")
# the brute-force protection the status query and the web pages share (lifecert/api/lockouts.py)
LOCKOUTS = ("api_second_factor_lockouts", "api_agency_failure_budgets")
# what the status page and the dashboard show (lifecert/web/dashboard.py, api/db.py's
# status statement); the views read their tables with their owner's rights
WEB_READ_MODELS = ("retiree_status", "open_holds", "event_verdicts", "instruction_ledger",
                   "consular_cases", "assistance_cases", "projection_offsets",
                   "campaign_counters", "forms_outstanding", "forms_unmatched",
                   "connector_health", "dead_letter_index")

GRANTS: tuple[Grant, ...] = (
    # the projection writer: its read models and offsets (TRUNCATE: `projections rebuild`)
    Grant(PROJECTIONS, WRITE + ", TRUNCATE", READ_MODEL_TABLES),
    Grant(PROJECTIONS, "SELECT", ("schema_migrations", *READ_MODEL_VIEWS)),
    # the partner API: reads the status and the holds, writes its own tables; its audit
    # trail and face decisions it appends to, and cannot rewrite or erase (a compromised
    # API process cannot cover its tracks)
    Grant(API, "SELECT", ("retiree_status", "open_holds", "event_verdicts", "schema_migrations",
                          "api_schema_migrations")),
    # which policy the hub runs (projections.queries.current_policy: the consular review's
    # default cycle): the counters' policies, counts only
    Grant(API, "SELECT", ("campaign_counters",)),
    # the consular review (lifecert/api/consular.py, projections/consular.py): the case
    # and its decision only, not the event ids and topic positions the projections keep
    Grant(API, "SELECT", ("consular_cases",), columns=API_CONSULAR_COLUMNS),
    # the counters' form-3 answers (lifecert/api/partner.py, form3_refusal): is the case
    # SSF's, for that beneficiary, still open
    Grant(API, "SELECT", ("assistance_cases",), columns=API_ASSISTANCE_COLUMNS),
    Grant(API, WRITE, prefix="api_",
          excluding=("api_schema_migrations", *APPEND_ONLY, *WEB_STAFF)),
    Grant(API, "INSERT", ("api_audit", "api_audit_dead_letters")),
    Grant(API, "SELECT, INSERT", ("api_face_decisions",)),
    # reports and exports
    Grant(READER, "SELECT", (*READ_MODEL_TABLES, *READ_MODEL_VIEWS, "schema_migrations")),
    # the web pages: what they show, the status query's lockouts (shared with the API),
    # their sessions; the audit trail they append to (their alerts: recorded pending, for
    # the API to publish)
    Grant(WEB, "SELECT", (*WEB_READ_MODELS, "api_second_factors", "api_retiree_directory",
                          "api_directory_dead_letters", "api_web_staff")),
    Grant(WEB, WRITE, LOCKOUTS),
    Grant(WEB, "SELECT, INSERT, DELETE", ("api_web_sessions",)),
    Grant(WEB, "INSERT", ("api_audit", "api_audit_dead_letters", "api_pending_alerts")),
    # the key store: its own tables it owns (see KEYSTORE_TABLES), reads its migrations
    Grant(KEYSTORE, "SELECT", ("keystore_schema_migrations",)),
)


def covered(table: str) -> set[str]:
    """The roles :data:`GRANTS` gives something on ``table``."""
    owners = {KEYSTORE} if table in KEYSTORE_TABLES else set()
    return owners | {g.role for g in GRANTS
            if table in g.tables
            or (g.prefix is not None and table.startswith(g.prefix)
                and table not in g.excluding)}


def _existing_roles(cur: psycopg2.extensions.cursor) -> set[str]:
    cur.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                (list(COMPONENT_ROLES),))
    return {name for (name,) in cur.fetchall()}


def apply_grants(cur: psycopg2.extensions.cursor, schema: str = "public") -> None:
    """Make the component roles' privileges in ``schema`` exactly :data:`GRANTS`. Roles
    that do not exist in the cluster are skipped (they get nothing)."""
    roles = _existing_roles(cur)
    if KEYSTORE in roles:
        _keystore_owns(cur, schema)
    # the relations this session may grant on (a superuser: all; the schema's owner: not
    # the key store's, made by a superuser), but the key store's own tables
    cur.execute("""
        SELECT c.relname, c.relkind FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
               OR pg_has_role(current_user, c.relowner, 'USAGE'))""", (schema,))
    relations = {n: kind for n, kind in cur.fetchall() if not _keystores(n)}
    for role in sorted(roles):  # the key store's role too: on all but its own tables
        for kind, names in (("TABLE", [n for n, k in relations.items() if k != "S"]),
                            ("SEQUENCE", [n for n, k in relations.items() if k == "S"])):
            if names:
                cur.execute(sql.SQL("REVOKE ALL ON {} {} FROM {}").format(
                    sql.SQL(kind),
                    sql.SQL(", ").join(sql.Identifier(schema, n) for n in sorted(names)),
                    sql.Identifier(role)))
        cur.execute(sql.SQL("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {} FROM {}").format(
            sql.Identifier(schema), sql.Identifier(role)))
    for grant in GRANTS:
        if grant.role not in roles:
            continue
        names = [t for t in grant.tables if t in relations]
        if grant.prefix is not None:
            names += sorted(n for n, kind in relations.items()
                            if n.startswith(grant.prefix) and n not in grant.excluding
                            and kind != "S")
            sequences = sorted(n for n, kind in relations.items()
                               if n.startswith(grant.prefix) and kind == "S")
            if sequences and "INSERT" in grant.privileges:
                cur.execute(sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(
                    sql.SQL(", ").join(sql.Identifier(schema, s) for s in sequences),
                    sql.Identifier(grant.role)))
        if names and grant.columns:
            columns = sql.SQL(", ").join(sql.Identifier(c) for c in grant.columns)
            for name in names:
                cur.execute(sql.SQL("GRANT {} ({}) ON TABLE {} TO {}").format(
                    sql.SQL(grant.privileges), columns, sql.Identifier(schema, name),
                    sql.Identifier(grant.role)))
        elif names:
            cur.execute(sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                sql.SQL(grant.privileges),
                sql.SQL(", ").join(sql.Identifier(schema, n) for n in names),
                sql.Identifier(grant.role)))
        owned = _serials(cur, schema, [t for t in grant.tables if t in relations])
        if owned and "INSERT" in grant.privileges:  # the serial columns' sequences
            cur.execute(sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(
                sql.SQL(", ").join(sql.Identifier(schema, s) for s in owned),
                sql.Identifier(grant.role)))
    # the API's functions (api_second_factor_failed) run with the caller's rights
    cur.execute("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = %s AND p.proname LIKE 'api\\_%%'""", (schema,))
    functions = [name for (name,) in cur.fetchall()]
    for role in (API, WEB):  # the web pages count wrong factors and passwords alike
        if functions and role in roles:
            cur.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
                sql.SQL(", ").join(sql.SQL(f) for f in functions), sql.Identifier(role)))
    for function in functions:  # functions are executable by PUBLIC unless revoked
        cur.execute(sql.SQL("REVOKE EXECUTE ON FUNCTION {} FROM PUBLIC").format(
            sql.SQL(function)))


def _serials(cur: psycopg2.extensions.cursor, schema: str, tables: list[str]) -> list[str]:
    """The sequences of the serial (or identity) columns of ``tables``."""
    if not tables:
        return []
    cur.execute("""
        SELECT DISTINCT s.relname FROM pg_class s
        JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
        JOIN pg_class t ON t.oid = d.refobjid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE s.relkind = 'S' AND d.deptype IN ('a', 'i') AND n.nspname = %s
          AND t.relname = ANY(%s) ORDER BY 1""", (schema, tables))
    return [name for (name,) in cur.fetchall()]


def _keystores(relation: str) -> bool:
    """``relation`` is one of the key store's tables or their serial columns' sequences."""
    return relation in KEYSTORE_TABLES or any(
        relation.startswith(t + "_") and relation.endswith("_seq") for t in KEYSTORE_TABLES)


def _keystore_owns(cur: psycopg2.extensions.cursor, schema: str) -> None:
    """:data:`KEYSTORE` owns :data:`KEYSTORE_TABLES` (and their sequences) and nothing
    else (its privileges elsewhere are revoked like every component's). Handing a table
    over needs a superuser (or a member of the key store's role); anyone else leaves
    ownership as it is."""
    cur.execute("""
        SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'S')""", (schema,))
    relations = cur.fetchall()
    cur.execute("SELECT rolsuper OR pg_has_role(current_user, %s, 'USAGE') FROM pg_roles "
                "WHERE rolname = current_user", (KEYSTORE,))
    row = cur.fetchone()
    may_hand_over = bool(row and row[0])
    role = sql.Identifier(KEYSTORE)
    for name, _kind, owner in relations:
        target = sql.Identifier(schema, name)
        if name in KEYSTORE_TABLES:
            if owner != KEYSTORE and may_hand_over:  # its sequences follow (OWNED BY)
                cur.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(target, role))
        elif _keystores(name):
            continue  # a serial column's sequence: it follows its table's owner
        elif owner == KEYSTORE:
            raise RuntimeError(f"{KEYSTORE} owns {schema}.{name}, which is not one of the "
                               f"key store's tables ({', '.join(KEYSTORE_TABLES)})")


def lock_down(admin_dsn: str, database: str) -> None:
    """Close ``database`` to PUBLIC: owned by :data:`OWNER` (so it may create the schema),
    CONNECT for the component roles only, TEMPORARY for the projections only. Needs the
    roles (:func:`ensure_roles`); does nothing for roles that do not exist."""
    conn = psycopg2.connect(admin_dsn, connect_timeout=10)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            db = sql.Identifier(database)
            cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
            roles = _existing_roles(cur)
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (OWNER,))
            if cur.fetchone():
                cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    db, sql.Identifier(OWNER)))
            for role in sorted(roles):
                privileges = "CONNECT, TEMPORARY" if role == PROJECTIONS else "CONNECT"
                cur.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}").format(
                    sql.SQL(privileges), db, sql.Identifier(role)))
    finally:
        conn.close()


def role_exists(dsn: str, role: str) -> bool:
    conn = psycopg2.connect(dsn, connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            return cur.fetchone() is not None
    finally:
        conn.close()


def dsn_as(dsn: str, component: str) -> str:
    """``dsn`` with the role of ``component`` (a key of :data:`ROLES`) as its user; the
    password comes from the DSN's ``passfile``, never from the DSN itself."""
    if component not in ROLES:
        raise ValueError(f"unknown component {component!r}: one of {', '.join(ROLES)}")
    params = psycopg2.extensions.parse_dsn(dsn)
    params.pop("password", None)
    params["user"] = ROLES[component]
    return psycopg2.extensions.make_dsn(**params)


# --------------------------------------------------------------------- the roles
def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677), so
    the server is given the verifier and never the password itself (which it could log).
    ``password`` must be ASCII (no SASLprep needed)."""
    if not password.isascii():
        raise ValueError("generated passwords are ASCII")
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def ensure_roles(conn: psycopg2.extensions.connection,
                 passwords: Iterable[tuple[str, str]]) -> None:
    """Create each (role, password) that is missing as a plain LOGIN role (no superuser,
    no CREATEDB, no CREATEROLE) and set its password (as a SCRAM verifier)."""
    with conn, conn.cursor() as cur:
        for role, password in passwords:
            name = sql.Identifier(role)
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB "
                                    "NOCREATEROLE NOREPLICATION").format(name))
            cur.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(name),
                        (scram_verifier(password),))

#!/bin/sh
# Run once by the postgres image on a fresh volume (/docker-entrypoint-initdb.d): lifecert's
# roles, one per component, as lifecert/dbroles.py names them, each with the password in its
# Docker secret; the database closed to PUBLIC and owned by the schema's owner. The grants on
# the tables are applied by the migrations themselves (`lifecert api migrate`, run as
# lifecert_owner), exactly as in the local stack.
set -eu
SECRETS="${LIFECERT_SECRETS_DIR:-/run/secrets}"

role_password() {  # role, secret file
    if [ ! -s "$2" ]; then
        echo "init-roles: $2 is missing or empty: create the secret files (docker/README.md)" >&2
        exit 1
    fi
    # psql variables are quoted by psql itself (:'password'); the password never appears on
    # a command line (it is read here, inside the container)
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        -v role="$1" -v password="$(cat "$2")" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', :'role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" PASSWORD :'password';
SQL
}

role_password lifecert_owner "$SECRETS"/pg_owner
role_password lifecert_projections "$SECRETS"/pg_projections
role_password lifecert_api "$SECRETS"/pg_api
role_password lifecert_reader "$SECRETS"/pg_reader
role_password lifecert_keystore "$SECRETS"/pg_keystore
role_password lifecert_web "$SECRETS"/pg_web

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
REVOKE ALL ON DATABASE "$POSTGRES_DB" FROM PUBLIC;
ALTER DATABASE "$POSTGRES_DB" OWNER TO lifecert_owner;
GRANT CONNECT ON DATABASE "$POSTGRES_DB" TO lifecert_projections, lifecert_api, lifecert_reader,
    lifecert_keystore, lifecert_web;
GRANT TEMPORARY ON DATABASE "$POSTGRES_DB" TO lifecert_projections;
SQL

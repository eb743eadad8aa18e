#!/bin/sh
# Run once by the postgres image, when its data volume is first initialised: the role the SkinDoc
# servers connect as. It owns nothing; `skindoc migrate` (as the owner, POSTGRES_USER) grants it
# row access to the tables, and only SELECT and INSERT on the audit log.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v runtime_password="$SKINDOC_DB_RUNTIME_PASSWORD" <<'SQL'
CREATE ROLE skindoc LOGIN PASSWORD :'runtime_password';
SQL

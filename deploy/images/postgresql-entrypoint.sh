#!/bin/sh
# The entrypoint of localhost:5000/conveyor/postgresql (deploy/images/blubber.yaml).
# On first start it initialises a cluster in $PGDATA whose superuser is $POSTGRES_USER
# (default postgres) with the password read from $POSTGRES_PASSWORD_FILE; then, and on
# every later start, it runs the server listening on every address, password
# (SCRAM) authentication for every host, no Unix socket. Arguments go to postgres.
set -eu
: "${PGDATA:?PGDATA is not set}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	: "${POSTGRES_PASSWORD_FILE:?set POSTGRES_PASSWORD_FILE to a file holding the password of POSTGRES_USER}"
	if [ ! -r "$POSTGRES_PASSWORD_FILE" ]; then
		echo "postgresql-entrypoint: cannot read POSTGRES_PASSWORD_FILE $POSTGRES_PASSWORD_FILE" >&2
		exit 1
	fi
	initdb -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" --pwfile="$POSTGRES_PASSWORD_FILE" \
		--auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
	printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories= "$@"

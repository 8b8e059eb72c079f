#!/bin/sh
# One-shot (the compose `init` service, as root): the stack's internal passwords — Postgres, the keeper's
# and the operator's MQTT logins — made once at random and kept in the `secrets` volume, so none is ever
# written in a file of this repository, an env file or the compose file. Exchange keys are not made here:
# they are the operator's (compose secrets, see docker-compose.yml).
set -eu
umask 077
cd /secrets
for name in postgres mqtt-hedged mqtt-operator; do
  [ -s "$name" ] || python -c 'import secrets; print(secrets.token_urlsafe(32))' > "$name"
done
# the keeper (uid 10001) reads its MQTT password and a libpq password file (asyncpg honours PGPASSFILE)
printf 'postgres:5432:*:hedged:%s\n' "$(cat postgres)" > pgpass
chown 10001:10001 pgpass mqtt-hedged
chmod 0600 postgres mqtt-hedged mqtt-operator pgpass
echo "secrets ready"

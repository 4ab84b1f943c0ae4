#!/bin/sh
# The event store's server side alone, driven by pgbench (C, no Python client),
# each script for SECONDS_EACH with CLIENTS connections, ROUNDS times interleaved:
#   raw.sql            the ceiling: a single-row INSERT into a table with a primary key only;
#   events_insert.sql  a bare INSERT of one row into intake's events table (all its
#                      indexes; no hash, no checks);
#   append.sql         intake's append: one intake_append call (idempotency key,
#                      expected-version check, hash chain).
# SCRIPTS="..." picks others; the steps between the last two (RESULTS.md, session 8):
#   events_hash.sql    the bare INSERT with the hash computed inline;
#   append_nohash.sql  a function: head lookup, version check, INSERT (steps.sql, no hash);
#   append_one.sql     the same with the hash (steps.sql);
#   append_nokey.sql   intake_append without an idempotency key.
# PGOPTIONS="-c synchronous_commit=off" takes the commit's flush out.
# Usage (repository root):
#   bench/pgbench/run.sh [DSN-of-a-database-allowed-to-CREATE-DATABASE]
set -eu
ADMIN=${1:-postgresql://postgres@127.0.0.1:5432/postgres}
SECONDS_EACH=${SECONDS_EACH:-5}
CLIENTS=${CLIENTS:-1}
ROUNDS=${ROUNDS:-3}
PGBENCH=${PGBENCH:-$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)}
HERE=$(dirname "$0")
DB=pgbench_intake_$$
DSN=$(printf '%s' "$ADMIN" | sed "s#/[^/?]*\(?\|\$\)#/$DB\1#")
psql "$ADMIN" -qc "CREATE DATABASE $DB"
trap 'psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
.venv/bin/python -c "
import asyncio, asyncpg, sys
from eventstore.migrate import migrate
async def main():
    conn = await asyncpg.connect(sys.argv[1])
    await migrate(conn)
    await conn.execute(open(sys.argv[2]).read())
    await conn.execute('CREATE TABLE raw_events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, '
                       'stream text NOT NULL, type text NOT NULL, data jsonb NOT NULL, metadata jsonb NOT NULL)')
    await conn.close()
asyncio.run(main())" "$DSN" "$HERE/steps.sql" >/dev/null 2>&1
echo "$("$PGBENCH" --version), $(psql "$DSN" -Atc 'SHOW server_version'), synchronous_commit=$(psql "$DSN" -Atc 'SHOW synchronous_commit'), $CLIENTS client(s), ${SECONDS_EACH}s each"
for round in $(seq 1 "$ROUNDS"); do
  for script in ${SCRIPTS:-raw events_insert append}; do
    tps=$("$PGBENCH" -n -M prepared -c "$CLIENTS" -T "$SECONDS_EACH" -f "$HERE/$script.sql" "$DSN" 2>&1 \
          | sed -n "s/^tps = \([0-9.]*\).*/\1/p")
    echo "round $round  $script  $tps tps"
  done
done

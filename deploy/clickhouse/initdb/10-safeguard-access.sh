#!/bin/bash
# Accounts, roles, grants and (where configured) per-agency row policies of the safeguarding store.
#
# The ClickHouse image runs this from /docker-entrypoint-initdb.d once, the first time the container starts on an
# empty data volume. It converges (every statement is IF NOT EXISTS / OR REPLACE, and scopes no longer configured
# are removed), so after rotating a password or changing CLICKHOUSE_ANALYST_SCOPES run it again on a live server:
#
#   docker compose exec clickhouse bash /docker-entrypoint-initdb.d/10-safeguard-access.sh
#
# The tables are not created here: `safeguard sink migrate` (the compose `migrate` service, as safeguard_migrator)
# owns the schema, so there is one code path for it. Grants and row policies name tables that may not exist yet;
# ClickHouse allows that, and they apply as soon as the migration creates the tables.
#
# Accounts (passwords from the environment, never from a file in the repository):
#   safeguard_migrator  role safeguard_schema_owner: DDL, SELECT and INSERT on the database only (runs migrations)
#   safeguard_sink      role safeguard_writer: INSERT and SELECT on the database only (the sink; on a server it
#                       only checks that the schema is current, and waits for the migrate service if not)
#   safeguard_analyst   role safeguard_reader: SELECT on the database, readonly=2 (Grafana's datasource, analysts)
#
# Per-agency scopes: CLICKHOUSE_ANALYST_SCOPES="la_code=383 agency_code=WYP" (space or comma separated; columns
# la_code, agency_code, agency_type). Each scope becomes a role `safeguard_scope_<column>_<value>` that may SELECT
# only the tables carrying that column, through a row policy `<column> = '<value>'`; everyone else keeps seeing
# every row through a `safeguard_unrestricted` policy (TO ALL EXCEPT the scope roles). Give an agency's analysts
# their own account with just that role (docs/operations.md, "Per-agency access"); never also safeguard_reader.
#
# Runs in a subshell so that, when the entrypoint sources it (no exec bit), its shell options stay its own.
(
set -euo pipefail

db="${CLICKHOUSE_DB:?CLICKHOUSE_DB must name the safeguarding database}"
admin_user="${CLICKHOUSE_USER:?CLICKHOUSE_USER must name the administrator created by the image}"
admin_password="${CLICKHOUSE_PASSWORD:?CLICKHOUSE_PASSWORD must be set}"
migrator_password="${CLICKHOUSE_MIGRATOR_PASSWORD:?CLICKHOUSE_MIGRATOR_PASSWORD must be set}"
sink_password="${CLICKHOUSE_SINK_PASSWORD:?CLICKHOUSE_SINK_PASSWORD must be set}"
analyst_password="${CLICKHOUSE_ANALYST_PASSWORD:?CLICKHOUSE_ANALYST_PASSWORD must be set}"
scopes="${CLICKHOUSE_ANALYST_SCOPES:-}"

# The tables of sinks/migrations/*.sql that carry each scope column (tests/unit/test_deploy checks these lists
# against the migrations, so a new table cannot be forgotten here).
# The dashboards' summaries (0003) are scoped like the event tables, except the per-subject ones (households,
# children, episodes, alerts): a subject's row gathers every agency's events, so they carry la_code but no agency,
# and an agency scope cannot read them (its analysts get an access error on those panels, as on the alerts).
# The data-quality findings (0004) carry la_code (NULL for a record too broken to say) and no agency.
LA_CODE_TABLES="contacts contact_decisions missing_episodes domestic_incidents domestic_incident_children cp_plans alerts alert_lifecycle contacts_by_month contact_decisions_by_month domestic_incidents_by_month household_incidents child_referrals child_missing_reports missing_episode_steps child_plans alert_acknowledgements quality_findings"
AGENCY_TABLES="contacts contact_decisions missing_episodes domestic_incidents domestic_incident_children cp_plans contacts_by_month contact_decisions_by_month domestic_incidents_by_month"

if ! [[ "$db" =~ ^[A-Za-z_][A-Za-z0-9_]{0,63}$ ]]; then
    echo "safeguard-access: CLICKHOUSE_DB '$db' is not a plain identifier" >&2
    exit 1
fi

# A SQL string literal: backslashes and single quotes escaped.
literal() {
    local s="${1//\\/\\\\}"
    s="${s//\'/\\\'}"
    printf "'%s'" "$s"
}

tables_with() {
    case "$1" in
        la_code) echo "$LA_CODE_TABLES" ;;
        agency_code | agency_type) echo "$AGENCY_TABLES" ;;
    esac
}

run_sql() {
    # SQL on stdin, so passwords never appear in a process listing.
    clickhouse-client --host 127.0.0.1 --user "$admin_user" --password "$admin_password" --multiquery
}

query() {
    clickhouse-client --host 127.0.0.1 --user "$admin_user" --password "$admin_password" --query "$1"
}

# Parse and check the scopes before changing anything.
declare -a scope_roles=() scope_columns=() scope_values=()
for scope in ${scopes//,/ }; do
    column="${scope%%=*}"
    value="${scope#*=}"
    if [[ "$scope" != *=* ]] || ! [[ "$column" =~ ^(la_code|agency_code|agency_type)$ ]]; then
        echo "safeguard-access: scope '$scope' must be la_code=VALUE, agency_code=VALUE or agency_type=VALUE" >&2
        exit 1
    fi
    if ! [[ "$value" =~ ^[A-Za-z0-9_-]{1,40}$ ]]; then
        echo "safeguard-access: scope value '$value' may hold only letters, digits, '_' and '-'" >&2
        exit 1
    fi
    scope_roles+=("safeguard_scope_${column}_${value}")
    scope_columns+=("$column")
    scope_values+=("$value")
done

echo "safeguard-access: roles, accounts and grants on database $db"
run_sql <<SQL
CREATE DATABASE IF NOT EXISTS \`$db\`;

CREATE SETTINGS PROFILE IF NOT EXISTS safeguard_readonly;
ALTER SETTINGS PROFILE safeguard_readonly SETTINGS readonly = 2;

CREATE ROLE IF NOT EXISTS safeguard_schema_owner;
CREATE ROLE IF NOT EXISTS safeguard_writer;
CREATE ROLE IF NOT EXISTS safeguard_reader;
ALTER ROLE safeguard_reader SETTINGS PROFILE 'safeguard_readonly';

GRANT CREATE DATABASE ON \`$db\`.* TO safeguard_schema_owner;
GRANT CREATE TABLE, CREATE VIEW, DROP TABLE, DROP VIEW, ALTER, TRUNCATE, OPTIMIZE, SELECT, INSERT
    ON \`$db\`.* TO safeguard_schema_owner;
GRANT SELECT, INSERT ON \`$db\`.* TO safeguard_writer;
GRANT SELECT ON \`$db\`.* TO safeguard_reader;

CREATE USER IF NOT EXISTS safeguard_migrator IDENTIFIED WITH sha256_password BY $(literal "$migrator_password");
ALTER USER safeguard_migrator IDENTIFIED WITH sha256_password BY $(literal "$migrator_password");
GRANT safeguard_schema_owner TO safeguard_migrator;
ALTER USER safeguard_migrator DEFAULT ROLE safeguard_schema_owner;

CREATE USER IF NOT EXISTS safeguard_sink IDENTIFIED WITH sha256_password BY $(literal "$sink_password");
ALTER USER safeguard_sink IDENTIFIED WITH sha256_password BY $(literal "$sink_password");
GRANT safeguard_writer TO safeguard_sink;
ALTER USER safeguard_sink DEFAULT ROLE safeguard_writer;

CREATE USER IF NOT EXISTS safeguard_analyst IDENTIFIED WITH sha256_password BY $(literal "$analyst_password");
ALTER USER safeguard_analyst IDENTIFIED WITH sha256_password BY $(literal "$analyst_password");
GRANT safeguard_reader TO safeguard_analyst;
ALTER USER safeguard_analyst DEFAULT ROLE safeguard_reader;
SQL

# Scopes: drop the ones no longer configured, then (re)create the configured ones and the unrestricted policies.
configured=" ${scope_roles[*]:-} "
for role in $(query "SELECT name FROM system.roles WHERE startsWith(name, 'safeguard_scope_') FORMAT TSVRaw"); do
    if [[ "$configured" != *" $role "* ]]; then
        echo "safeguard-access: removing scope $role"
        for table in $LA_CODE_TABLES; do
            query "DROP ROW POLICY IF EXISTS \`$role\` ON \`$db\`.\`$table\`"
        done
        query "DROP ROLE IF EXISTS \`$role\`"
    fi
done

all_tables=$(printf '%s\n' $LA_CODE_TABLES $AGENCY_TABLES | sort -u)
if [ ${#scope_roles[@]} -eq 0 ]; then
    echo "safeguard-access: no analyst scopes configured: every reader sees every row"
    for table in $all_tables; do
        query "DROP ROW POLICY IF EXISTS safeguard_unrestricted ON \`$db\`.\`$table\`"
    done
    exit 0
fi

except=$(printf '`%s`, ' "${scope_roles[@]}")
except="${except%, }"
{
    for i in "${!scope_roles[@]}"; do
        role="${scope_roles[$i]}"
        column="${scope_columns[$i]}"
        value="${scope_values[$i]}"
        echo "CREATE ROLE IF NOT EXISTS \`$role\`;"
        echo "ALTER ROLE \`$role\` SETTINGS PROFILE 'safeguard_readonly';"
        for table in $(tables_with "$column"); do
            echo "GRANT SELECT ON \`$db\`.\`$table\` TO \`$role\`;"
            echo "CREATE ROW POLICY OR REPLACE \`$role\` ON \`$db\`.\`$table\` FOR SELECT"
            echo "    USING $column = $(literal "$value") AS PERMISSIVE TO \`$role\`;"
        done
    done
    for table in $all_tables; do
        echo "CREATE ROW POLICY OR REPLACE safeguard_unrestricted ON \`$db\`.\`$table\` FOR SELECT"
        echo "    USING 1 AS PERMISSIVE TO ALL EXCEPT $except;"
    done
} | run_sql
echo "safeguard-access: analyst scopes: ${scope_roles[*]}"
)

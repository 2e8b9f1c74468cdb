"""The analysts' dashboards as code and the static report (docs/dashboards.md).

    catalogue.DASHBOARDS          every dashboard and panel, with its SQL (the plugin's macros unexpanded)
    grafana.dashboard_files()     the Grafana JSON of both variants (operational, shared); provisioning_files()
    macros.expand(sql, ctx)       the SQL the ClickHouse plugin would send, for tests and the report
    query.run_panel(client, ...)  a panel's frame from a store; report.collect / report.render: the HTML page
    push.push(api, ...)           datasource and dashboards into a running Grafana (grafana-client)

Pure except `query`, `report.collect` and `push`, which take a client and do the I/O.
"""

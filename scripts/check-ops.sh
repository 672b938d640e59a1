#!/usr/bin/env bash
# Checks the operations files: the Prometheus alerting rules (syntax and their unit tests in
# ops/alerts.test.yml) and every query of the Grafana dashboard (parsed as PromQL by promtool).
# Installs promtool (Debian package `prometheus`) when it is missing. Idempotent; a few seconds
# once promtool is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

promtool check rules ops/alerts.yml
promtool test rules ops/alerts.test.yml

# The dashboard's queries, with its variables filled in, as recording rules promtool parses.
rules=$(mktemp --suffix=.yml)
trap 'rm -f "$rules"' EXIT
python3 - ops/grafana-dashboard.json >"$rules" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
print("groups:\n  - name: dashboard\n    rules:")
count = 0
for panel in dashboard["panels"]:
    for target in panel.get("targets", []):
        expr = (target["expr"].replace("$__rate_interval", "5m")
                .replace("$job", "fitkart"))
        count += 1
        print(f"      - record: dashboard_query_{count}")
        print(f"        expr: {json.dumps(expr)}")
if count == 0:
    sys.exit("the dashboard has no queries")
PY
promtool check rules "$rules" | sed 's#^#dashboard: #'

#!/usr/bin/env bash
# Checks the monitoring files shipped with fts:
#   scripts/prometheus/fts-alerts.yml       alerting rules
#   scripts/prometheus/fts-alerts.test.yml  their unit tests
#   scripts/grafana/fts-dashboard.json      the Grafana dashboard
#
# - the dashboard is valid JSON, each panel has a Prometheus target with the
#   ${DS_PROMETHEUS} data source, ids are unique, the `file` variable is there;
# - every fts_* metric the three files name is one the server exports: registered in
#   crates/ (the `registry.register("fts_...")` calls, with the exported suffix of its
#   type: _total for a counter, _bucket/_sum/_count for a histogram), or in PENDING
#   below; a renamed or misspelt metric fails here instead of never alerting;
# - with promtool (Debian's `prometheus` package): `promtool check rules`,
#   `promtool test rules`, and the dashboard's queries parsed as PromQL.
#
# Without promtool those steps are skipped (exit 0), unless FTS_REQUIRE_PROMTOOL=1
# (CI), which makes a missing promtool an error.
set -euo pipefail
cd "$(dirname "$0")/.."

rules=scripts/prometheus/fts-alerts.yml
tests=scripts/prometheus/fts-alerts.test.yml
dashboard=scripts/grafana/fts-dashboard.json

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Metrics the server is getting but that may not be registered in crates/ yet: name
# and type. Once registered there, the source decides (and a type that disagrees
# with this list is an error); drop them from here then.
PENDING=''

echo "== monitoring: dashboard JSON, rule structure, metric names"
PENDING="$PENDING" python3 - "$rules" "$tests" "$dashboard" "$tmp/dashboard-queries.yml" <<'PY'
import json, os, re, sys
from pathlib import Path

rules_path, tests_path, dash_path, queries_out = sys.argv[1:5]
errors = []

# --- the metrics fts registers -------------------------------------------------
RUST_STR = r'"(?:[^"\\]|\\[\s\S])*"'
REGISTER = re.compile(r'\.register\(\s*"(fts_[a-z0-9_]+)"\s*,\s*' + RUST_STR + r'\s*,\s*([A-Za-z_][A-Za-z0-9_]*)')
known = {}  # base name -> type (counter, gauge, histogram, or None: unknown)
sources = {}
for path in sorted(Path("crates").rglob("*.rs")):
    text = path.read_text(encoding="utf-8", errors="replace")
    for m in REGISTER.finditer(text):
        name, ident = m.group(1), m.group(2)
        kind = None
        if ident == "SharedCounter":
            kind = "counter"
        else:
            # The `let IDENT = ...;` before the call says what it is.
            lets = list(re.finditer(r'\blet\s+(?:mut\s+)?' + re.escape(ident) + r'\b[^;]*;', text[:m.start()]))
            if lets:
                kinds = re.findall(r'\b(Counter|Gauge|Histogram)\b', lets[-1].group(0))
                kind = kinds[-1].lower() if kinds else None
        known[name] = kind
        sources[name] = str(path)
if "fts_polls" not in known:
    errors.append("found no registry.register(\"fts_...\") call in crates/: has metrics.rs moved?")

for line in os.environ["PENDING"].strip().splitlines():
    name, kind = line.split()
    if name in known:
        if known[name] not in (None, kind):
            errors.append(f"{name}: PENDING says {kind}, {sources[name]} registers a {known[name]}")
    else:
        known[name] = kind

SUFFIXES = {"counter": ["_total", "_created"], "gauge": [""],
            "histogram": ["_bucket", "_sum", "_count", "_created"],
            None: ["", "_total", "_bucket", "_sum", "_count"]}
exported = {}
for name, kind in known.items():
    for suffix in SUFFIXES[kind]:
        exported[name + suffix] = name

def check_names(where, text):
    for used in sorted(set(re.findall(r'\bfts_[a-z0-9_]+\b', text))):
        if used in exported:
            continue
        hint = ""
        if used in known:
            kind = known[used]
            hint = f" ({used} is a {kind}: its series are " + ", ".join(used + s for s in SUFFIXES[kind]) + ")"
        errors.append(f"{where}: unknown metric {used}{hint}")

# --- the dashboard ---------------------------------------------------------------
try:
    dash = json.loads(Path(dash_path).read_text(encoding="utf-8"))
except ValueError as e:
    errors.append(f"{dash_path}: not valid JSON: {e}")
    dash = None

queries = []  # (where, PromQL) for promtool
if dash is not None:
    if not isinstance(dash.get("schemaVersion"), int):
        errors.append(f"{dash_path}: no schemaVersion")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    if variables.get("DS_PROMETHEUS", {}).get("type") != "datasource":
        errors.append(f"{dash_path}: no DS_PROMETHEUS data source variable")
    file_var = variables.get("file", {})
    if "label_values(fts_release_hosts, file)" not in json.dumps(file_var):
        errors.append(f"{dash_path}: the `file` variable is not label_values(fts_release_hosts, file)")
    for name, var in variables.items():
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if var.get("type") == "query" and isinstance(q, str):
            m = re.fullmatch(r'\s*label_values\((.*),\s*\w+\s*\)\s*', q)
            queries.append((f"variable {name}", m.group(1) if m else q))
    for i, ann in enumerate(dash.get("annotations", {}).get("list", [])):
        if ann.get("expr"):
            queries.append((f"annotation {ann.get('name', i)}", ann["expr"]))

    ids = []
    def walk_panels(panels):
        for p in panels:
            yield p
            yield from walk_panels(p.get("panels", []))
    for p in walk_panels(dash.get("panels", [])):
        ids.append(p.get("id"))
        title = p.get("title", "?")
        if "gridPos" not in p:
            errors.append(f"{dash_path}: panel {title!r} has no gridPos")
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
            errors.append(f"{dash_path}: panel {title!r} does not use ${{DS_PROMETHEUS}}")
        targets = [t for t in p.get("targets", []) if t.get("expr")]
        if not targets:
            errors.append(f"{dash_path}: panel {title!r} has no query")
        for t in targets:
            queries.append((f"panel {title!r} {t.get('refId')}", t["expr"]))
    if len(ids) != len(set(ids)) or None in ids:
        errors.append(f"{dash_path}: panel ids are missing or repeated: {ids}")

    def strings(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from strings(v)
        elif isinstance(node, list):
            for v in node:
                yield from strings(v)
        elif isinstance(node, str):
            yield node
    check_names(dash_path, "\n".join(strings(dash)))

# Grafana's variables, made PromQL for promtool: durations become 5m, the others
# match anything.
def promql(expr):
    expr = re.sub(r'\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}', '5m', expr)
    return re.sub(r'\$\{?\w+\}?', '.*', expr)
with open(queries_out, "w", encoding="utf-8") as out:
    out.write("groups:\n  - name: dashboard-queries\n    rules:\n")
    for i, (where, expr) in enumerate(queries):
        out.write(f"      # {where}\n      - record: dashboard:query_{i}\n        expr: {json.dumps(promql(expr))}\n")

# --- the rules and their tests -----------------------------------------------------
for path in (rules_path, tests_path):
    check_names(path, Path(path).read_text(encoding="utf-8"))

try:
    import yaml
except ImportError:
    yaml = None
    print("  (no PyYAML: the rules' labels and annotations are not checked here)")
if yaml is not None:
    doc = yaml.safe_load(Path(rules_path).read_text(encoding="utf-8"))
    alerts = [r for g in doc.get("groups", []) for r in g.get("rules", []) if "alert" in r]
    if not alerts:
        errors.append(f"{rules_path}: no alerts")
    for r in alerts:
        a = r["alert"]
        if r.get("labels", {}).get("severity") not in ("warning", "critical"):
            errors.append(f"{rules_path}: {a}: severity is not warning or critical")
        for key in ("summary", "description"):
            if not r.get("annotations", {}).get(key):
                errors.append(f"{rules_path}: {a}: no {key} annotation")
    tested = {t.get("alertname") for case in yaml.safe_load(Path(tests_path).read_text(encoding="utf-8")).get("tests", [])
              for t in case.get("alert_rule_test", [])}
    print(f"  {len(alerts)} alerts, {len(tested & {r['alert'] for r in alerts})} of them with unit tests")

print(f"  {len(known)} fts metrics known ({sum(1 for n in known if n in sources)} registered in crates/), "
      f"{len(queries)} dashboard queries")
if errors:
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
PY

if ! command -v promtool >/dev/null 2>&1; then
  if [[ "${FTS_REQUIRE_PROMTOOL:-}" == 1 ]]; then
    echo "error: promtool not found and FTS_REQUIRE_PROMTOOL=1 (apt-get install prometheus)" >&2
    exit 1
  fi
  echo "== promtool not found: skipped promtool check rules / test rules (apt-get install prometheus)"
  echo "check-monitoring: ok (without promtool)"
  exit 0
fi

echo "== promtool check rules $rules"
promtool check rules "$rules"
echo "== promtool test rules $tests"
promtool test rules "$tests"
echo "== the dashboard's queries parse as PromQL"
if ! out="$(promtool check rules "$tmp/dashboard-queries.yml" 2>&1)"; then
  printf '%s\n' "$out" >&2
  # Name the panel of each query promtool refused (the comment above its record).
  for record in $(grep -o 'dashboard:query_[0-9]*' <<<"$out" | sort -u); do
    grep -B1 "record: $record\$" "$tmp/dashboard-queries.yml" | head -n1 | sed "s/^ *# /  $record is the dashboard's /" >&2
  done
  echo "error: a query of $dashboard does not parse as PromQL" >&2
  exit 1
fi
echo "check-monitoring: ok"

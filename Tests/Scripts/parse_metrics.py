#!/usr/bin/env python3
"""Parses Prometheus text exposition (format 0.0.4) from stdin with prometheus_client's own
parser and prints every sample as JSON: {"name{label=value,...}": value}, labels sorted.
Exits non-zero when the text does not parse. Used by Tests/IntegrationTests/MetricsTests."""
import json, sys
from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
out = {}
types = {}
for family in text_string_to_metric_families(text):
    types[family.name] = family.type
    for s in family.samples:
        key = s.name
        if s.labels:
            key += "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}"
        if key in out:
            sys.exit(f"duplicate sample {key}")
        out[key] = s.value
print(json.dumps({"samples": out, "types": types}))

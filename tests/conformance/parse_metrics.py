"""Parses a Prometheus text exposition from stdin with the reference parser (prometheus_client)
and prints every sample as JSON: {"families": {name: type}, "samples": [[name, labels, value]]}.
Exits non-zero when the text does not parse. Used by tests/metrics.rs."""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    families = {}
    samples = []
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for s in family.samples:
            value = s.value
            if math.isinf(value):
                value = "+Inf" if value > 0 else "-Inf"
            elif math.isnan(value):
                value = "NaN"
            samples.append([s.name, dict(s.labels), value])
    json.dump({"families": families, "samples": samples}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

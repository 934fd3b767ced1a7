"""Prints the YAML documents of the files named on the command line as one
JSON array, for the Rust tests of deploy/kubernetes (which have no YAML
parser of their own). PyYAML comes with kubernetes-validate."""

import json
import sys

import yaml

docs = []
for name in sys.argv[1:]:
    with open(name, encoding="utf-8") as f:
        docs.extend(d for d in yaml.safe_load_all(f) if d is not None)
json.dump(docs, sys.stdout)

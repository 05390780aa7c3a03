"""The deploy tests' YAML reader reads what every YAML parser reads alike and refuses the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

Load = Callable[[str], list[Any]]

MANIFEST = """\
# a comment
apiVersion: apps/v1
kind: Deployment
metadata:
  name: streams  # trailing comment
  annotations:
    prometheus.io/scrape: "true"
    prometheus.io/port: "6066"
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: worker
          image: consent-relay:0.1.0
          command: [python, -m, "streams"]
          env:
          - name: URL
            value: http://registry:8080/apis/ccompat/v7
          - {name: EMPTY, value: ''}
          resources: {limits: {cpu: 500m}}
---
kind: ConfigMap
data:
  literal: |
    line one
      indented
  folded: >-
    one
    two

    three
      kept
    four
  number: 1.5
  nothing: null
  it's: 'don''t'
"""


def test_reads_what_every_parser_reads_alike(read_yaml_documents: Load) -> None:
    first, second = read_yaml_documents(MANIFEST)
    assert first["metadata"] == {
        "name": "streams",
        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "6066"},
    }
    assert first["spec"]["replicas"] == 3
    (container,) = first["spec"]["template"]["spec"]["containers"]
    assert container == {
        "name": "worker",
        "image": "consent-relay:0.1.0",
        "command": ["python", "-m", "streams"],
        "env": [
            {"name": "URL", "value": "http://registry:8080/apis/ccompat/v7"},
            {"name": "EMPTY", "value": ""},
        ],
        "resources": {"limits": {"cpu": "500m"}},
    }
    assert second["data"] == {
        "literal": "line one\n  indented\n",
        "folded": "one two\nthree\n  kept\nfour",
        "number": 1.5,
        "nothing": None,
        "it's": "don't",
    }


@pytest.mark.parametrize(
    "text",
    [
        "a: &anchor 1\nb: *anchor\n",
        "a: !!str 1\n",
        "a: yes\n",
        "a: 1\na: 2\n",
        "a: one\n  two\n",
        "a:\n  - 1\n   - 2\n",
        '"unterminated: 1\n',
        "a: [1, 2\n",
        "mode: 0755\n",
        "timeout: 1:30\n",
        "enabled: Off\n",
        "a: !!map {b: 1}\n",
    ],
)
def test_refuses_what_parsers_read_differently(text: str, read_yaml_documents: Load) -> None:
    with pytest.raises(ValueError, match=r"."):
        read_yaml_documents(text)

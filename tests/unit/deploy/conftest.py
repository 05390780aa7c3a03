"""Fixtures for the deploy checks: the deploy files' YAML read by PyYAML, with a lint
rule for what reads differently from one YAML parser to another.

Kubernetes, Compose and Prometheus read YAML 1.2 (Go's yaml.v3, Docker's Go loader),
PyYAML reads YAML 1.1: the deploy files keep to what means the same in both, and
:func:`load_yaml_documents` refuses the rest, naming the line: anchors and aliases,
explicit tags, plain scalars YAML 1.1 reads as something else (``yes``/``no``/``on``/
``off``/``y``/``n`` as booleans, ``1:30`` as a number, ``0755`` as octal), multi-line
plain scalars and duplicate keys. Everything else is PyYAML's safe loader.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import pytest
import yaml

_AMBIGUOUS = frozenset({"yes", "no", "on", "off", "y", "n"})
_YAML11_NUMBER = re.compile(
    r"[-+]?(0[0-7]+|[0-9]+(:[0-5]?[0-9])+(\.[0-9]*)?|0b[01_]+|0x[0-9a-fA-F_]+)"
)
"""Plain scalars YAML 1.1 reads as numbers that YAML 1.2 reads otherwise (octal with a
leading 0, base 60, binary; 0x hexadecimal is both but with ``_`` only 1.1)."""


class YamlLintError(ValueError):
    """The text uses YAML that parsers read differently (or that PyYAML cannot read)."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Hashable] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise YamlLintError(f"line {key_node.start_mark.line + 1}: key {key!r} twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _lint(text: str) -> None:
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise YamlLintError(f"line {line}: anchors and aliases are not used here")
        if isinstance(event, yaml.ScalarEvent):
            if event.tag is not None and not any(event.implicit):
                raise YamlLintError(f"line {line}: explicit tag {event.tag}")
            if event.style is None:
                if event.value.lower() in _AMBIGUOUS:
                    raise YamlLintError(f"line {line}: {event.value!r} is a boolean in YAML 1.1")
                if _YAML11_NUMBER.fullmatch(event.value):
                    raise YamlLintError(f"line {line}: {event.value!r} is a YAML 1.1 number")
                if event.end_mark.line != event.start_mark.line:
                    raise YamlLintError(f"line {line}: a plain scalar over several lines")
        elif (
            isinstance(event, yaml.CollectionStartEvent)
            and event.tag is not None
            and not event.implicit
        ):
            raise YamlLintError(f"line {line}: explicit tag {event.tag}")


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of ``text`` (``---`` separated), empty documents left out."""
    try:
        _lint(text)
        return [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
    except yaml.YAMLError as exc:
        raise YamlLintError(str(exc)) from exc


def load_yaml(path: Path) -> Any:
    """The single document in ``path``."""
    docs = load_yaml_documents(path.read_text())
    assert len(docs) == 1, f"{path}: expected one YAML document, found {len(docs)}"
    return docs[0]


@pytest.fixture(scope="session")
def read_yaml() -> Callable[[Path], Any]:
    """Reads the single YAML document of a deploy file (see :func:`load_yaml`)."""
    return load_yaml


@pytest.fixture(scope="session")
def read_yaml_documents() -> Callable[[str], list[Any]]:
    """Reads every document of a multi-document YAML text."""
    return load_yaml_documents

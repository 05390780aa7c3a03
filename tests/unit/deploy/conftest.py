"""Fixtures for the deploy checks: a strict reader of the YAML our deploy files are
written in.

PyYAML is not a dependency, so the deploy files keep to a small YAML subset and
:func:`load_yaml_documents` reads exactly that subset: block mappings and sequences,
plain / single- / double-quoted scalars (YAML 1.2 core types), one-line flow
collections, ``|`` and ``>`` block scalars, comments and ``---`` separators.
Anything else (anchors, aliases, tags, multi-line plain scalars, YAML 1.1
booleans such as ``yes``, duplicate keys) is an error, so a file that reads here
means the same to every YAML parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_AMBIGUOUS = {"yes", "no", "on", "off", "y", "n"}
_FORBIDDEN_START = set("&*!?|>%@`")


class YamlSubsetError(ValueError):
    """The text is outside the YAML subset the deploy files are allowed to use."""


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of ``text`` (``---`` separated), empty documents left out."""
    docs: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.rstrip() == "---" or line.startswith("--- "):
            docs.append([])
        else:
            docs[-1].append(line.rstrip())
    out = []
    for lines in docs:
        parser = _Parser(lines)
        if parser.peek() is not None:
            out.append(parser.document())
    return out


def load_yaml(path: Path) -> Any:
    """The single document in ``path``."""
    docs = load_yaml_documents(path.read_text())
    assert len(docs) == 1, f"{path}: expected one YAML document, found {len(docs)}"
    return docs[0]


class _Parser:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.i = 0

    def fail(self, reason: str) -> YamlSubsetError:
        line = self.lines[self.i] if self.i < len(self.lines) else "<end>"
        return YamlSubsetError(f"line {self.i + 1}: {reason}: {line.strip()!r}")

    def peek(self) -> tuple[int, str] | None:
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if "\t" in line[: len(line) - len(line.lstrip())]:
                raise self.fail("tab in indentation")
            text = line.strip()
            if text and not text.startswith("#"):
                return len(line) - len(line.lstrip(" ")), text
            self.i += 1
        return None

    def document(self) -> Any:
        first = self.peek()
        assert first is not None
        node = self.block(first[0])
        if self.peek() is not None:
            raise self.fail("unexpected indentation")
        return node

    def block(self, indent: int) -> Any:
        current = self.peek()
        assert current is not None
        return self.sequence(indent) if _is_item(current[1]) else self.mapping(indent)

    def nested(self, indent: int) -> Any:
        nxt = self.peek()
        if nxt is None:
            return None
        if nxt[0] > indent:
            return self.block(nxt[0])
        if nxt[0] == indent and _is_item(nxt[1]):
            return self.sequence(indent)  # "key:" followed by "- item" at the key's column
        return None

    def sequence(self, indent: int) -> list[Any]:
        items: list[Any] = []
        while (cur := self.peek()) is not None and cur[0] == indent and _is_item(cur[1]):
            rest = cur[1][1:].lstrip(" ")
            if not rest or rest.startswith("#"):
                self.i += 1
                items.append(self.nested(indent))
            elif _is_item(rest) or _split_key(rest) is not None:
                column = len(self.lines[self.i]) - len(rest)
                self.lines[self.i] = " " * column + rest  # the item is a block at that column
                items.append(self.block(column))
            else:
                items.append(self.inline(rest, indent))
        return items

    def mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while (cur := self.peek()) is not None and cur[0] == indent and not _is_item(cur[1]):
            split = _split_key(cur[1])
            if split is None:
                raise self.fail("expected 'key: value'")
            key, rest = split
            if key in result:
                raise self.fail(f"duplicate key {key!r}")
            if not rest or rest.startswith("#"):
                self.i += 1
                result[key] = self.nested(indent)
            else:
                result[key] = self.inline(rest, indent)
        if cur is not None and cur[0] > indent:
            raise self.fail("unexpected indentation (multi-line plain scalars are not allowed)")
        return result

    def inline(self, text: str, indent: int) -> Any:
        """A value on the current line: block scalar header, flow collection or scalar."""
        header = _strip_comment(text)
        if header in {"|", "|-", ">", ">-"}:
            self.i += 1
            return self.block_scalar(indent, header)
        if header[0] in "[{":
            value, end = _flow(header, 0)
            if header[end:].strip():
                raise self.fail("text after a flow collection")
        else:
            value = _scalar(header, self.fail)
        self.i += 1
        return value

    def block_scalar(self, indent: int, header: str) -> str:
        raw: list[str] = []
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.strip() and len(line) - len(line.lstrip(" ")) <= indent:
                break
            raw.append(line)
            self.i += 1
        body = [ln for ln in raw if ln.strip()]
        if not body:
            return ""
        cut = min(len(ln) - len(ln.lstrip(" ")) for ln in body)
        lines = [ln[cut:] for ln in raw]
        while lines and not lines[-1]:
            lines.pop()
        if header[0] == "|":
            text = "\n".join(lines)
        else:
            text = ""
            for n, ln in enumerate(lines):
                if n == 0:
                    text = ln
                elif not ln or not lines[n - 1] or ln[0] == " " or lines[n - 1][0] == " ":
                    text += "\n" + ln
                else:
                    text += " " + ln
            text = re.sub(r"(?<=[^\n ])\n(?=\n)", "", text)  # n blank lines fold to n breaks
        return text if header.endswith("-") else text + "\n"


def _is_item(text: str) -> bool:
    return text == "-" or text.startswith("- ")


def _split_key(text: str) -> tuple[str, str] | None:
    if text[0] in "\"'":
        key, end = _quoted(text, 0)
        rest = text[end:]
        return (key, rest[1:].strip()) if rest.startswith(":") else None
    match = re.match(r"([^\s#:][^#]*?):(\s|$)", text)
    if match is None or match.group(1)[0] in "[{" or match.group(1)[0] in _FORBIDDEN_START:
        return None
    return match.group(1).rstrip(), text[match.end() :].strip()


def _strip_comment(text: str) -> str:
    if text[0] in "\"'":
        _, end = _quoted(text, 0)
        rest = text[end:].strip()
        if rest and not rest.startswith("#"):
            raise YamlSubsetError(f"text after a quoted scalar: {text!r}")
        return text[:end]
    return re.split(r"\s#", text, maxsplit=1)[0].strip()


def _quoted(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out, i = [], start + 1
    while i < len(text):
        ch = text[i]
        if quote == "'" and ch == "'":
            if text[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        if quote == '"' and ch == "\\":
            out.append(json.loads(f'"{text[i : i + 2]}"'))
            i += 2
            continue
        if quote == '"' and ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise YamlSubsetError(f"unterminated quoted scalar: {text!r}")


def _scalar(text: str, fail: Any = None) -> Any:
    if text[0] in "\"'":
        return _quoted(text, 0)[0]
    if text[0] in _FORBIDDEN_START or text.startswith(("- ", ": ")):
        raise (fail or YamlSubsetError)(f"unsupported YAML construct {text!r}")
    if text.lower() in _AMBIGUOUS:
        raise (fail or YamlSubsetError)(f"{text!r} means a boolean in YAML 1.1 only: quote it")
    if text in {"true", "false"}:
        return text == "true"
    if text in {"null", "~"}:
        return None
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _flow(text: str, i: int) -> tuple[Any, int]:
    """A one-line flow sequence or mapping starting at ``text[i]``; value and end index."""
    closing = "]" if text[i] == "[" else "}"
    items: list[Any] = []
    pairs: dict[str, Any] = {}
    i += 1
    while True:
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == closing:
            return (items if closing == "]" else pairs), i + 1
        if i >= len(text):
            raise YamlSubsetError(f"unterminated flow collection: {text!r}")
        key: str | None = None
        if closing == "}":
            match = re.compile(r"\s*([^:,{}\[\]]+?):\s").match(text, i)
            if match is None:
                raise YamlSubsetError(f"flow mapping entry without 'key: ': {text!r}")
            key, i = match.group(1), match.end()
        if text[i] in "[{":
            value, i = _flow(text, i)
        elif text[i] in "\"'":
            value, i = _quoted(text, i)
        else:
            match = re.compile(r"[^,\]}]*").match(text, i)
            assert match is not None
            value, i = _scalar(match.group(0).strip()), match.end()
        if key is None:
            items.append(value)
        else:
            pairs[key] = value
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == ",":
            i += 1


@pytest.fixture(scope="session")
def read_yaml() -> Callable[[Path], Any]:
    """Reads the single YAML document of a deploy file (see :func:`load_yaml`)."""
    return load_yaml


@pytest.fixture(scope="session")
def read_yaml_documents() -> Callable[[str], list[Any]]:
    """Reads every document of a multi-document YAML text."""
    return load_yaml_documents

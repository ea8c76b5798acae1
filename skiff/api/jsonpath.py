"""kubectl's JSONPath template dialect, over plain dicts as Kubernetes prints objects.

A template is text with actions in braces (`kubectl get -o jsonpath=...`):

    {.items[*].metadata.name}                       names, separated by spaces
    {range .items[*]}{.metadata.name}{"\\n"}{end}    one per line
    {.status.conditions[?(@.type=="Ready")].status} a filter (== != < > <= >=, or @.x alone)
    {..image}  {.items[0]}  {.items[-1:]}  {.items[0:4:2]}  {['a','b']}  {@}  {$}

`parse(template)` checks the whole template first and raises JsonPathError
naming it (`error parsing jsonpath {.x[, unterminated array`, kubectl's words);
`Template.render(data)` evaluates it. As `kubectl get` does, a missing key
gives nothing rather than an error. Several results of one action are joined
by a space; strings print as they are, other values as compact JSON.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

_NOTHING = object()


class JsonPathError(ValueError):
    """A template that does not parse, or cannot be evaluated."""


# ---------------------------------------------------------------- the parsed form

@dataclass
class Path:
    steps: list[Callable[[list[Any], Any], list[Any]]]   # each maps current values to next values

    def evaluate(self, current: Any, root: Any) -> list[Any]:
        values = [current]
        for step in self.steps:
            values = step(values, root)
        return values


@dataclass
class Literal:
    text: str


@dataclass
class Range:
    path: Path
    body: list[Any] = field(default_factory=list)


@dataclass
class Template:
    source: str
    nodes: list[Any]

    def render(self, data: Any) -> str:
        out: list[str] = []
        _render(self.nodes, data, data, out)
        return "".join(out)


def _render(nodes: list[Any], current: Any, root: Any, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, Literal):
            out.append(node.text)
        elif isinstance(node, Range):
            for value in node.path.evaluate(current, root):
                _render(node.body, value, root, out)
        else:
            out.append(" ".join(text_of(v) for v in node.evaluate(current, root)))


def text_of(value: Any) -> str:
    """How kubectl prints one result: strings as they are, the rest as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# ---------------------------------------------------------------- parsing

def parse(template: str) -> Template:
    """The parsed template, or JsonPathError("error parsing jsonpath TEMPLATE, PROBLEM")."""
    try:
        return Template(template, _parse_template(template))
    except _Syntax as exc:
        raise JsonPathError(f"error parsing jsonpath {template}, {exc}") from None


def render(template: str, data: Any) -> str:
    return parse(template).render(data)


class _Syntax(Exception):
    pass


def _parse_template(text: str) -> list[Any]:
    stack: list[list[Any]] = [[]]
    ranges: list[Range] = []
    i = 0
    while i < len(text):
        start = text.find("{", i)
        if start < 0:
            stack[-1].append(Literal(text[i:]))
            break
        if start > i:
            stack[-1].append(Literal(text[i:start]))
        end = _action_end(text, start + 1)
        if end < 0:
            _parse_path(text[start + 1:].strip())  # its own problem first, as kubectl reports it
            raise _Syntax("unclosed action")
        action = text[start + 1:end].strip()
        i = end + 1
        if action == "end":
            if not ranges:
                raise _Syntax("not in range, nothing to end")
            ranges.pop()
            stack.pop()
        elif action.startswith("range ") or action == "range":
            rng = Range(_parse_path(action[len("range"):].strip()))
            stack[-1].append(rng)
            ranges.append(rng)
            stack.append(rng.body)
        elif action[:1] in ("'", '"'):
            stack[-1].append(Literal(_unquote(action)))
        else:
            stack[-1].append(_parse_path(action))
    if ranges:
        raise _Syntax("unclosed range: missing {end}")
    return stack[0]


def _action_end(text: str, i: int) -> int:
    """The index of the `}` closing the action that starts at i (the first
    one outside quotes, as kubectl's lexer finds it)."""
    quote = ""
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "}":
            return i
        i += 1
    return -1


def _unquote(token: str) -> str:
    if len(token) < 2 or token[-1] != token[0]:
        raise _Syntax(f"unterminated quoted string {token}")
    body = token[1:-1]
    if token[0] == '"':
        try:
            return json.loads(token)
        except ValueError:
            raise _Syntax(f"invalid quoted string {token}") from None
    return body


_IDENT = re.compile(r"(?:\\.|[^.\[\]\s()=!<>\\'\"{},])+")
_INT = re.compile(r"-?\d+$")


def _parse_path(text: str) -> Path:
    if not text:
        raise _Syntax("missing path")
    steps: list[Callable] = []
    i = 0
    if text[0] == "$":
        steps.append(lambda values, root: [root])
        i = 1
    elif text[0] == "@":
        i = 1
    while i < len(text):
        c = text[i]
        if text.startswith("..", i):
            i += 2
            steps.append(_descend)
            if i < len(text) and text[i] == "[":
                continue
            i = _field_step(text, i, steps)
        elif c == ".":
            i = _field_step(text, i + 1, steps)
        elif c == "[":
            i = _bracket_step(text, i, steps)
        elif c.isspace():
            i += 1
        else:
            raise _Syntax(f"unrecognized character in action: U+{ord(c):04X} {c!r}")
    return Path(steps)


def _field_step(text: str, i: int, steps: list[Callable]) -> int:
    if i >= len(text) or text[i] in ".[":
        return i  # `.` alone (the current object) or `.[0]`
    if text[i] == "*":
        steps.append(_all_values)
        return i + 1
    m = _IDENT.match(text, i)
    if not m:
        raise _Syntax(f"unrecognized character in action: U+{ord(text[i]):04X} {text[i]!r}")
    name = re.sub(r"\\(.)", r"\1", m.group())
    steps.append(_fields([name]))
    return m.end()


def _bracket_step(text: str, i: int, steps: list[Callable]) -> int:
    if text.startswith("[?(", i):
        close = _matching(text, i + 2, "(", ")")
        if close < 0 or close + 1 >= len(text) or text[close + 1] != "]":
            raise _Syntax("unterminated filter")
        steps.append(_filter(text[i + 3:close]))
        return close + 2
    close = _matching(text, i, "[", "]")
    if close < 0:
        raise _Syntax("unterminated array")
    inner = text[i + 1:close].strip()
    if inner == "*":
        steps.append(_all_values)
    elif inner[:1] in ("'", '"'):
        steps.append(_fields([_unquote(p.strip()) for p in _split_union(inner)]))
    elif ":" in inner:
        parts = inner.split(":")
        if len(parts) > 3 or not all(p.strip() == "" or _INT.match(p.strip()) for p in parts):
            raise _Syntax(f"invalid array index {inner}")
        nums = [int(p) if p.strip() else None for p in parts] + [None] * (3 - len(parts))
        if nums[2] == 0:
            raise _Syntax(f"invalid array index {inner}: step must not be 0")
        steps.append(_slice(*nums))
    else:
        parts = [p.strip() for p in inner.split(",")]
        if not inner or not all(_INT.match(p) for p in parts):
            raise _Syntax(f"invalid array index {inner}")
        steps.append(_indexes([int(p) for p in parts]))
    return close + 1


def _matching(text: str, i: int, open_: str, close: str) -> int:
    depth, quote = 0, ""
    for j in range(i, len(text)):
        c = text[j]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return j
    return -1


def _split_union(inner: str) -> list[str]:
    parts, current, quote = [], "", ""
    for c in inner:
        if quote:
            current += c
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote, current = c, current + c
        elif c == ",":
            parts.append(current)
            current = ""
        else:
            current += c
    return parts + [current]


# ---------------------------------------------------------------- steps

def _fields(names: list[str]) -> Callable:
    def step(values: list[Any], root: Any) -> list[Any]:
        return [v[n] for v in values if isinstance(v, dict) for n in names if n in v]
    return step


def _all_values(values: list[Any], root: Any) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, dict):
            out.extend(v[k] for k in sorted(v))
        elif isinstance(v, list):
            out.extend(v)
    return out


def _indexes(indexes: list[int]) -> Callable:
    def step(values: list[Any], root: Any) -> list[Any]:
        out = []
        for v in values:
            if isinstance(v, list):
                for n in indexes:
                    if -len(v) <= n < len(v):
                        out.append(v[n])
        return out
    return step


def _slice(start: int | None, stop: int | None, stride: int | None) -> Callable:
    def step(values: list[Any], root: Any) -> list[Any]:
        return [x for v in values if isinstance(v, list) for x in v[start:stop:stride]]
    return step


def _walk(value: Any) -> Iterator[Any]:
    yield value
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        yield from _walk(child)


def _descend(values: list[Any], root: Any) -> list[Any]:
    return [x for v in values for x in _walk(v)]


_COMPARE = re.compile(r"^(.*?)\s*(==|!=|<=|>=|<|>)\s*(.*)$", re.S)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
}


def _operand(text: str) -> Callable[[Any, Any], Any]:
    text = text.strip()
    if text[:1] in ("'", '"'):
        value = _unquote(text)
        return lambda item, root: value
    if text[:1] in ("@", "$"):
        path = _parse_path(text)
        return lambda item, root: next(iter(path.evaluate(item, root)), _NOTHING)
    try:
        number = json.loads(text)
    except ValueError:
        raise _Syntax(f"unrecognized identifier {text}") from None
    return lambda item, root: number


def _filter(expression: str) -> Callable:
    m = _COMPARE.match(expression.strip())
    if m:
        left, op, right = _operand(m.group(1)), _OPS[m.group(2)], _operand(m.group(3))

        def keep(item: Any, root: Any) -> bool:
            a, b = left(item, root), right(item, root)
            if a is _NOTHING or b is _NOTHING:
                return False
            try:
                return op(a, b)
            except TypeError:
                return False
    else:
        exists = _operand(expression)

        def keep(item: Any, root: Any) -> bool:
            return exists(item, root) is not _NOTHING

    def step(values: list[Any], root: Any) -> list[Any]:
        out = []
        for v in values:
            items = v if isinstance(v, list) else list(v.values()) if isinstance(v, dict) else []
            out.extend(item for item in items if keep(item, root))
        return out
    return step


# ---------------------------------------------------------------- custom columns

@dataclass(frozen=True)
class Column:
    header: str
    template: Template


def parse_custom_columns(spec: str) -> list[Column]:
    """`NAME:.metadata.name,NODE:.spec.nodeName` as kubectl's -o custom-columns;
    a bad spec is named in the JsonPathError."""
    if not spec.strip():
        raise JsonPathError("custom-columns format specified but no custom columns given")
    columns = []
    for part in _split_union(spec):
        header, sep, expression = part.partition(":")
        if not sep or not header:
            raise JsonPathError(f"unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>")
        columns.append(Column(header, parse(_as_template(expression))))
    return columns


def parse_custom_columns_file(text: str) -> list[Column]:
    """The file form: a line of headers and a line of paths, aligned by position."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 2:
        raise JsonPathError(f"invalid custom-columns file: expected 2 lines (headers and paths), got {len(lines)}")
    headers, paths = lines[0].split(), lines[1].split()
    if len(headers) != len(paths):
        raise JsonPathError(f"invalid custom-columns file: {len(headers)} headers but {len(paths)} paths")
    return [Column(h, parse(_as_template(p))) for h, p in zip(headers, paths)]


def _as_template(expression: str) -> str:
    """kubectl lets a column say `.metadata.name` or `{.metadata.name}`."""
    expression = expression.strip()
    if expression.startswith("{") and expression.endswith("}"):
        return expression
    return "{" + (expression if expression.startswith((".", "[", "@", "$")) else "." + expression) + "}"


def column_values(columns: list[Column], obj: Any) -> list[str]:
    """One row: each column's results joined by commas, `<none>` when empty (kubectl's cells)."""
    row = []
    for column in columns:
        values = [text_of(v) for node in column.template.nodes if isinstance(node, Path)
                  for v in node.evaluate(obj, obj)]
        row.append(",".join(values) if values else "<none>")
    return row

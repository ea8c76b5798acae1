"""Docker's word lexer: quote removal and variable substitution.

The builder runs this over the arguments of the instructions Docker expands
(ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ARG,
ONBUILD's sub-instruction when it runs); RUN, CMD and ENTRYPOINT are left to the
container's shell. Supported: `$V`, `${V}`, `${V:-word}`, `${V-word}`,
`${V:+word}`, `${V+word}`, `${V:?msg}`, `${V?msg}`; single quotes are literal,
double quotes expand, the escape character (`\\` or the `# escape=` one) quotes
the next character.
"""
from __future__ import annotations

from typing import Mapping


class SubstitutionError(ValueError):
    pass


def _is_name_char(c: str) -> bool:
    return c.isalnum() or c == "_"


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.s, self.i, self.env, self.esc = text, 0, env, escape

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def take(self) -> str:
        c = self.peek()
        self.i += 1
        return c

    def words(self, *, split: bool) -> list[str]:
        """All words (split=True: on unquoted whitespace; else one word)."""
        out: list[str] = []
        cur: list[str] = []
        started = False
        while self.i < len(self.s):
            c = self.take()
            if split and c in " \t\r\n":
                if started:
                    out.append("".join(cur))
                    cur, started = [], False
                continue
            started = True
            if c == self.esc:
                nxt = self.take()
                cur.append(nxt if nxt else c)
            elif c == "'":
                cur.append(self.single_quoted())
            elif c == '"':
                cur.append(self.double_quoted())
            elif c == "$":
                cur.append(self.dollar())
            else:
                cur.append(c)
        if started or not split:
            out.append("".join(cur))
        return out

    def single_quoted(self) -> str:
        """The text up to the closing quote, taken literally (the opening one is consumed)."""
        end = self.s.find("'", self.i)
        if end < 0:
            raise SubstitutionError("unexpected end of statement while looking for matching '")
        text = self.s[self.i:end]
        self.i = end + 1
        return text

    def double_quoted(self) -> str:
        cur: list[str] = []
        while True:
            if self.i >= len(self.s):
                raise SubstitutionError('unexpected end of statement while looking for matching "')
            c = self.take()
            if c == '"':
                return "".join(cur)
            if c == self.esc:
                nxt = self.peek()
                if nxt in ('"', "$", self.esc):
                    cur.append(self.take())
                else:
                    cur.append(c)
            elif c == "$":
                cur.append(self.dollar())
            else:
                cur.append(c)

    def name(self) -> str:
        start = self.i
        while self.i < len(self.s) and _is_name_char(self.s[self.i]):
            self.i += 1
        return self.s[start:self.i]

    def dollar(self) -> str:
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.take()
        name = self.name()
        if not name:
            raise SubstitutionError(f"bad substitution: missing variable name in {self.s!r}")
        c = self.take()
        if c == "}":
            return self.env.get(name, "")
        colon = c == ":"
        if colon:
            c = self.take()
        if c not in ("-", "+", "?"):
            raise SubstitutionError(f"unsupported modifier ({c}) in substitution: {self.s!r}")
        word = self.until_brace()
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if c == "-":
            return value if is_set else word  # type: ignore[return-value]
        if c == "+":
            return word if is_set else ""
        if not is_set:
            raise SubstitutionError(f"{name}: {word or 'is not allowed to be unset'}")
        return value  # type: ignore[return-value]

    def until_brace(self) -> str:
        """The word of ${V:-word}, itself expanded, up to the matching brace."""
        cur: list[str] = []
        while True:
            if self.i >= len(self.s):
                raise SubstitutionError(f"missing '}}' in {self.s!r}")
            c = self.take()
            if c == "}":
                return "".join(cur)
            if c == self.esc:
                cur.append(self.take())
            elif c == "'":
                cur.append(self.single_quoted())
            elif c == '"':
                cur.append(self.double_quoted())
            elif c == "$":
                cur.append(self.dollar())
            else:
                cur.append(c)


def expand_word(text: str, *, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word: variables substituted, quotes and escapes removed."""
    return _Lexer(text, env, escape).words(split=False)[0]


def expand_words(text: str, *, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace after substitution (EXPOSE, VOLUME, FROM)."""
    return _Lexer(text, env, escape).words(split=True)


def split_words(text: str, *, escape: str = "\\") -> list[str]:
    """Docker's parser split (parseWords): whitespace outside quotes; quotes and
    escapes are kept in the words (they are removed at expansion)."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if not quote and c in " \t\r\n":
            if cur:
                words.append("".join(cur))
                cur = []
            i += 1
            continue
        if c == escape and i + 1 < len(text):
            cur.append(c + text[i + 1])
            i += 2
            continue
        if quote:
            if c == quote:
                quote = ""
        elif c in ("'", '"'):
            quote = c
        cur.append(c)
        i += 1
    if cur:
        words.append("".join(cur))
    return words

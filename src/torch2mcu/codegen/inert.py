"""The one encoder between text from a model file and generated C: makes it inert.

Module paths, node names, source lines and the model name come from a `.pt2` that may have been
written by anyone. Nothing of them reaches a generated file except through this module:

- `c_identifier` maps any text to a C identifier of letters, digits and underscores that is not a
  C keyword, not reserved by the C standard (leading underscore), and outside the runtime's own
  `t2m` / `T2M` namespace (in any case);
- `comment_text` escapes text for the inside of a `/* ... */` comment so that it cannot close the
  comment (`*/`), open a nested one (`/*`), continue a line (backslash), form a trigraph (`??`),
  or carry a newline, NUL, control or non-ASCII character. Those are written as `%XX` (bytes of
  their UTF-8 form; lone surrogates from undecodable bytes as the byte they stand for), and `%`
  itself as `%25`, so the escaping is reversible and a reader can still see the original;
- `check_name` refuses a model name (the prefix of every public symbol and file) that is not
  such an identifier already: it is the user's choice, so it is refused, never rewritten.
"""
from __future__ import annotations

import re

from torch2mcu.errors import Torch2MCUError, spell

C_KEYWORDS = frozenset({
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
    "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict",
    "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
    "unsigned", "void", "volatile", "while", "_Bool", "_Complex", "_Imaginary",
    # C11/C23 and C++ keywords: the generated headers are also included from C++
    "alignas", "alignof", "bool", "catch", "class", "constexpr", "delete", "false", "friend",
    "namespace", "new", "nullptr", "operator", "private", "protected", "public", "template",
    "this", "throw", "true", "try", "typename", "using", "virtual", "asm", "typeof"})

RUNTIME_PREFIX = "t2m"  # every runtime file, function, type and macro starts with it (any case)
MAX_IDENTIFIER = 48

_SAFE_COMMENT = frozenset(chr(c) for c in range(0x20, 0x7F)) - {"%", "\\", "\x7f"}


def is_reserved(name: str) -> bool:
    """True for names a generated identifier must not take: keywords, the runtime's namespace,
    and identifiers C reserves for the implementation."""
    return (name in C_KEYWORDS or name.lower().startswith(RUNTIME_PREFIX) or name.startswith("_"))


def c_identifier(text: str, fallback: str = "layer") -> str:
    """A safe C identifier for `text`: each run of other characters becomes one `_`; a leading
    digit, reserved
    name or keyword gets an `l_` prefix; the result is at most MAX_IDENTIFIER characters."""
    base = re.sub(r"[^0-9A-Za-z]+", "_", str(text)).strip("_") or fallback  # no "__": C++ reserves it
    if base[0].isdigit() or is_reserved(base):
        base = "l_" + base
    return base[:MAX_IDENTIFIER].rstrip("_")


def is_c_identifier(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z][0-9A-Za-z_]*", name)) and not is_reserved(name)


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"%{code - 0xDC00:02X}"
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))


def comment_text(text: str, limit: int | None = None) -> str:
    """`text` made safe for the inside of a C block comment (printable ASCII only)."""
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[:limit - 3] + "..."
    out = []
    for i, ch in enumerate(text):
        prev = text[i - 1] if i else ""
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if (ch not in _SAFE_COMMENT
                or (ch == "*" and (nxt == "/" or prev == "/"))
                or (ch == "/" and (nxt == "*" or prev == "*"))
                or (ch == "?" and (nxt == "?" or prev == "?"))):
            out.append(_escape_char(ch))
        else:
            out.append(ch)
    return "".join(out)


def block_comment(lines: list[str]) -> str:
    """A C block comment with one escaped line per entry."""
    return "/*\n" + "\n".join(f" * {comment_text(ln)}".rstrip() for ln in lines) + "\n */"


MAX_NAME = 32  # the name prefixes every public symbol: C99 promises 31 significant characters


def check_name(name: str) -> None:
    """The model name becomes file names, symbols and macros: a plain identifier, not a keyword,
    outside the runtime's `t2m` namespace in any case (the header guard and file names would
    collide, also on case-insensitive file systems)."""
    shown = comment_text(repr(name), limit=60)
    if not isinstance(name, str) or not is_c_identifier(name):
        why = ("it starts with the runtime's prefix 't2m' (any case)"
               if isinstance(name, str) and name.lower().startswith("t2m") else
               "it must start with a letter, hold only ASCII letters, digits and underscores, "
               "and not be a C or C++ keyword")
        raise Torch2MCUError(f"model name {shown} is not usable as a C identifier prefix: {why}",
                             fix=f"choose a name such as 'lenet5' ({spell('--name', 'name=')})")
    if len(name) > MAX_NAME:
        raise Torch2MCUError(f"model name {shown} is {len(name)} characters long",
                             fix=f"choose a name of at most {MAX_NAME} characters "
                                 f"({spell('--name', 'name=')})")

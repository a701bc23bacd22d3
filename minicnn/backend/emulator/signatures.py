"""Find the ``extern "C" __global__`` kernels of a .cu source and their parameters.

Only names and the parameter text are read here (for messages and for the
generated glue); the compiler reports the exact parameter types later
(``emu_trampoline.h``), so typedefs and macros in parameter lists are fine.

Example::

    >>> ks = parse_kernels('extern "C" __global__ void k(const float* x, int n) {}')
    >>> [(p.name, p.text) for p in ks['k'].params]
    [('x', 'const float* x'), ('n', 'int n')]
"""
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Param:
    name: str   # the parameter's name ('' when unnamed)
    text: str   # its declaration as written, whitespace collapsed


@dataclass
class Kernel:
    name: str
    line: int                                   # 1-based line of __global__
    params: list = field(default_factory=list)  # [Param]
    launch_bounds: str = ""                     # first argument of __launch_bounds__, if any


def strip_comments(src):
    """``src`` with comments blanked out (newlines kept, so line numbers stay)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in src[i:j]))
            i = j
        elif c in "\"'":
            j = _end_of_literal(src, i)
            out.append(src[i:j])
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _end_of_literal(src, i):
    """Index just past the string or char literal starting at src[i]."""
    quote, j = src[i], i + 1
    while j < len(src) and src[j] != quote and src[j] != "\n":
        j += 2 if src[j] == "\\" else 1
    return min(j + 1, len(src))


def _matching(text, i, open_ch="(", close_ch=")"):
    """Index of the bracket closing the one at text[i]."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == open_ch:
            depth += 1
        elif text[j] == close_ch:
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"unbalanced {open_ch!r} at offset {i}")


def _extern_c_blocks(code):
    """(start, end) offsets of every ``extern "C" { ... }`` block."""
    blocks = []
    for m in re.finditer(r'\bextern\s*"C"\s*\{', code):
        brace = m.end() - 1
        blocks.append((brace, _matching(code, brace, "{", "}")))
    return blocks


def split_top_level(text, sep=","):
    """Split on ``sep`` outside (), [], {} and <>."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_param(text):
    """One parameter declaration -> Param (default values dropped)."""
    text = " ".join(split_top_level(text, "=")[0].split())
    m = re.search(r"(\w+)\s*(?:\[[^\]]*\]\s*)*$", text)
    words = re.findall(r"\w+", text)
    # A lone type ('float*', 'int') has no name; its last word is a type word.
    named = m is not None and len(words) > 1 and not text.endswith("*")
    return Param(name=m.group(1) if named else "", text=text)


def _parse_params(text):
    text = text.strip()
    if text in ("", "void"):
        return []
    return [parse_param(p) for p in split_top_level(text)]


def _name_after_global(code, pos):
    """From just after ``__global__``: (name, '(' offset, launch-bounds text)."""
    bounds = ""
    for m in re.finditer(r"\b(\w+)\s*\(", code[pos:]):
        word, open_paren = m.group(1), pos + m.end() - 1
        if word == "__launch_bounds__":
            close = _matching(code, open_paren)
            bounds = split_top_level(code[open_paren + 1:close])[0].strip()
            return _name_after_global(code, close + 1)[:2] + (bounds,)
        return word, open_paren, bounds
    raise ValueError("__global__ without a function after it")


def parse_kernels(src):
    """{name: Kernel} for every ``extern "C" __global__`` function defined in ``src``."""
    code = strip_comments(src)
    blocks = _extern_c_blocks(code)
    kernels = {}
    for m in re.finditer(r"\b__global__\b", code):
        before = code[:m.start()].rstrip()
        in_block = any(a < m.start() < b for a, b in blocks)
        if not (before.endswith('extern "C"') or in_block):
            continue  # a C++-linkage kernel: CuPy needs name_expressions for it
        name, open_paren, bounds = _name_after_global(code, m.end())
        close = _matching(code, open_paren)
        if not code[close + 1:].lstrip().startswith("{"):
            continue  # a declaration; the definition comes later
        kernels[name] = Kernel(name=name, line=code.count("\n", 0, m.start()) + 1,
                               params=_parse_params(code[open_paren + 1:close]),
                               launch_bounds=bounds)
    return kernels


_EXTERN_SHARED = re.compile(r"\bextern(\s+)__shared__\b")
_STATIC_SHARED = re.compile(r"\bstatic(\s+)__shared__\b")


def _newlines(match):
    """The newlines of the whitespace a rewrite removes (line numbers stay)."""
    return "\n" * match.group(1).count("\n")


def rewrite_extern_shared(src):
    """Turn ``extern __shared__`` into ``__emu_extern_shared`` (same line count).

    The header maps ``__shared__`` to ``static ...``, which cannot follow
    ``extern``; dynamic shared arrays get their own macro instead. A
    redundant ``static __shared__`` loses its ``static`` for the same reason.
    """
    src = _EXTERN_SHARED.sub(lambda m: "__emu_extern_shared" + _newlines(m), src)
    return _STATIC_SHARED.sub(lambda m: _newlines(m) + "__shared__", src)


def extern_shared_names(src):
    """Names declared ``extern __shared__ T name[]`` (all alias one buffer, as in CUDA)."""
    code = strip_comments(src)
    names = re.findall(r"\bextern\s+__shared__\b[^;]*?(\w+)\s*\[\s*\]\s*;", code)
    return sorted(set(names))

"""OData-style `$filter` evaluation for the ASR list calls.

ASR clients send `Field eq 'value'` terms joined with `and`/`or`, optionally parenthesised
(PowerShell: `( JobStatus eq 'A' or JobStatus eq 'B' ) and StartTime eq '2025-...Z'`).  Field
names are case-insensitive.  The caller supplies a function `(field, op, value) -> bool or None`;
None means "unknown field" and the term is ignored (true), as the real service ignores terms it
does not support.
"""
import re

TOKEN = re.compile(r"\s*(?:(\()|(\))|'((?:[^']|'')*)'|([A-Za-z_][A-Za-z0-9_./-]*)|(\S+))")


class FilterError(ValueError):
    pass


def tokenize(text):
    out = []
    pos = 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
        if m.group(1):
            out.append(("(", None))
        elif m.group(2):
            out.append((")", None))
        elif m.group(3) is not None:
            out.append(("str", m.group(3).replace("''", "'")))
        elif m.group(4):
            out.append(("word", m.group(4)))
        elif m.group(5):
            out.append(("word", m.group(5)))
    return out


def compile_filter(text, term):
    """Returns a predicate(record) built from the filter text and term(record, field, op, value)."""
    toks = tokenize(text or "")
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else (None, None)

    def take():
        t = peek()
        pos[0] += 1
        return t

    def primary():
        kind, val = peek()
        if kind == "(":
            take()
            e = expr()
            if take()[0] != ")":
                raise FilterError("missing ')'")
            return e
        if kind != "word":
            raise FilterError("field name expected")
        take()
        field = val
        k2, op = take()
        if k2 != "word" or op.lower() not in ("eq", "ne", "ge", "gt", "le", "lt"):
            raise FilterError("operator expected after %s" % field)
        k3, value = take()
        if k3 not in ("str", "word"):
            raise FilterError("value expected after %s %s" % (field, op))
        opl = op.lower()

        def pred(rec):
            r = term(rec, field, opl, value)
            return True if r is None else r
        return pred

    def conj():
        left = primary()
        while peek() == ("word", "and") or (peek()[0] == "word" and (peek()[1] or "").lower() == "and"):
            take()
            right = primary()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def expr():
        left = conj()
        while peek()[0] == "word" and (peek()[1] or "").lower() == "or":
            take()
            right = conj()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    if not toks:
        return lambda r: True
    e = expr()
    if pos[0] != len(toks):
        raise FilterError("unexpected text in $filter")
    return e


def compare(a, op, b):
    if op == "eq":
        return a == b
    if op == "ne":
        return a != b
    if op == "ge":
        return a >= b
    if op == "gt":
        return a > b
    if op == "le":
        return a <= b
    return a < b

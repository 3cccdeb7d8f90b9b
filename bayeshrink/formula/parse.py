"""One lme4 formula parser: formula text -> :class:`FormulaSpec`.

Every formula fit starts here. The text is read by the ``formulae`` package (the parser bambi
uses) and its syntax tree is split into the parts a linear mixed model has:

- the **response** and the **fixed terms** (a formulae ``Model``, evaluated by
  :mod:`bayeshrink.formula.evaluate`);
- the **offsets**, ``offset(z)``: terms with coefficient 1, kept out of the fixed terms (several
  offsets add);
- the **random blocks**, one :class:`RandomBlock` per parenthesised ``(terms | factor)``: each is
  one correlated set of random terms; the factor is a column ``g``, an interaction ``a:b`` or a
  nesting ``a/b`` (lme4's ``(1 | a) + (1 | b:a)``). Several blocks on one factor are independent,
  as in lme4.

The spec holds no data. It names the variables the formula reads (``variables``), which the
evaluator takes from the data frame, and it pickles as its formula text.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import FormulaError

__all__ = [
    "CONTRASTS",
    "FORMULAE_FUNCTIONS",
    "FORMULA_FUNCTIONS",
    "FormulaSpec",
    "RandomBlock",
    "cbind_arguments",
    "check_formula_functions",
    "formula_addends",
    "is_random_block",
    "parse_formula",
    "response_variables",
    "split_offsets",
    "split_top",
]

# Functions a formula may call besides formulae's own (C, center, scale, ...): the names numpy
# users expect. The caller's namespace is not searched, so a formula means the same everywhere.
FORMULA_FUNCTIONS = {
    "np": np,
    "numpy": np,
    "log": np.log,
    "log1p": np.log1p,
    "log2": np.log2,
    "log10": np.log10,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
}

#: formulae's contrast codings, usable inside C(): C(x, Treatment('mid')), C(x, Sum)
CONTRASTS = ("Treatment", "Sum")

#: Functions formulae itself provides inside a formula
FORMULAE_FUNCTIONS = (
    "C",
    "I",
    "center",
    "scale",
    "standardize",
    "poly",
    "bs",
    "offset",
    *CONTRASTS,
)

#: ``C(x, levels=[...])`` and ``C(x, Sum, levels=[...])``: formulae reads levels from a name and,
#: on new rows, requires every level to be present, so the call is read as ``C(x__bslv0)`` (or
#: ``C(x__bslv0, Sum)``) on a column that holds x as a Categorical in the listed order
_LEVELS = re.compile(
    r"\bC\(\s*(?P<var>[A-Za-z][\w.]*)\s*(?P<rest>,\s*[A-Za-z]\w*(?:\([^()]*\))?)?\s*,"
    r"\s*levels\s*=\s*(?P<levels>\[[^\[\]]*\])\s*\)"
)
_LEVELS_NAME = "{}__bslv{}"


@dataclass(frozen=True)
class RandomBlock:
    """One parenthesised block: its terms and the grouping factor (columns it interacts)."""

    exprs: tuple  # formulae term expressions
    components: tuple[str, ...]  # columns whose interaction is the factor, in lme4's name order

    @property
    def factor(self) -> str:
        return ":".join(self.components)


@dataclass(frozen=True)
class FormulaSpec:
    """A parsed formula: response, fixed terms, offsets and random blocks (no data).

    ``fixed`` is a formulae ``Model`` of the response and the fixed terms (offsets left out);
    ``offsets`` the formulae terms ``offset(...)``; ``blocks`` one :class:`RandomBlock` per
    parenthesised block, a nesting ``a/b`` giving one block per factor; ``variables`` the
    columns the formula reads; ``levels`` the lists written as ``C(x, levels=[...])``:
    ``{derived column: (column, levels, call as written)}``.
    """

    formula: str
    response: str  # the response expression as written
    fixed: object
    blocks: tuple[RandomBlock, ...]
    variables: frozenset
    offsets: tuple = ()
    levels: dict = field(default_factory=dict, compare=False)

    def __reduce__(self):
        # formulae's objects for a call such as log(x) hold modules, which do not pickle: a
        # spec pickles as its formula and is parsed again
        return (parse_formula, (self.formula,))

    @property
    def factor_names(self) -> list[str]:
        """The grouping factors, lme4's names (``class:school`` for ``(1 | school/class)``)."""
        return list(dict.fromkeys(b.factor for b in self.blocks))

    @property
    def grouping_columns(self) -> list[str]:
        """The columns the grouping factors are made of."""
        return list(dict.fromkeys(c for b in self.blocks for c in b.components))

    @property
    def group(self) -> str:
        """The grouping factor of a formula with one (the first one otherwise)."""
        return self.factor_names[0]

    @property
    def several_factors(self) -> bool:
        """More than one grouping factor, or one that is an interaction / nesting."""
        names = self.factor_names
        return len(names) > 1 or any(":" in n for n in names)

    @property
    def intercept_only(self) -> bool:
        """``y ~ 1 + (1 | g)``, plain response: the one-way model of ``bs.fit(y=, group=)``."""
        from formulae.terms.terms import Intercept

        if self.offsets or self.several_factors or not self.response.isidentifier():
            return False
        one_block = len(self.blocks) == 1 and [type(e) for e in self.blocks[0].exprs] == [Intercept]
        return one_block and [type(t) for t in self.fixed.common_terms] == [Intercept]

    def env(self):
        """The formulae Environment the formula is evaluated in."""
        return formula_env()


def formula_env():
    """The formulae Environment a formula is evaluated in (FORMULA_FUNCTIONS, nothing else)."""
    from formulae.environment import Environment

    return Environment([dict(FORMULA_FUNCTIONS)])


def formula_addends(node):
    """The terms of a sum in formulae's syntax tree: ``a + b + (1 | g)`` -> [a, b, (1 | g)]."""
    from formulae.expr import Binary, Unary

    if isinstance(node, Binary) and node.operator.lexeme == "+":
        return formula_addends(node.left) + formula_addends(node.right)
    if isinstance(node, Unary) and node.operator.lexeme == "+":  # 'x + + (1 | g)', as R reads it
        return formula_addends(node.right)
    return [node]


def _callees(node) -> list[str]:
    """Names of the functions a formula calls (``log`` in ``log(x)``), from formulae's tree."""
    from formulae.expr import Call

    found = []
    if isinstance(node, Call):
        name = getattr(node.callee, "name", node.callee)
        found.append(str(getattr(name, "lexeme", name)))
    for attr in ("left", "right", "expression"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            found += _callees(child)
    for child in getattr(node, "args", None) or []:
        found += _callees(child)
    return found


def check_formula_functions(tree, formula: str) -> None:
    """A formula may call only the functions it is evaluated with (and formulae's own)."""
    known = set(FORMULA_FUNCTIONS) | set(FORMULAE_FUNCTIONS)
    unknown = [
        c for c in dict.fromkeys(_callees(tree)) if c not in known and not c.startswith("np.")
    ]
    if unknown:
        raise FormulaError(
            f"`formula` may call only known functions; got {', '.join(f'{u}()' for u in unknown)} "
            f"in {formula!r}. Known: {', '.join(sorted(known - {'np', 'numpy'}))} and np.<name>; "
            "or compute the column first, e.g. df['fx'] = f(df['x'])."
        )


def is_random_block(node) -> bool:
    """Is this addend a parenthesised random block ``(terms | factor)``?"""
    from formulae.expr import Binary, Grouping

    return (
        isinstance(node, Grouping)
        and isinstance(node.expression, Binary)
        and node.expression.operator.lexeme == "|"
    )


def _grouping(node) -> list[tuple[str, ...]]:
    """The factors of a grouping expression: ``a`` -> [(a,)], ``a:b`` -> [(a, b)],
    ``a/b`` -> [(a,), (b, a)] (lme4 names the nested factor ``b:a``)."""
    from formulae.expr import Binary, Variable

    if isinstance(node, Variable) and node.level is None:
        return [(node.name.lexeme if hasattr(node.name, "lexeme") else str(node.name),)]
    if isinstance(node, Binary) and node.operator.lexeme == ":":
        left, right = _grouping(node.left), _grouping(node.right)
        if len(left) != 1 or len(right) != 1:
            raise FormulaError(
                "`formula` must group by a column, an interaction a:b or a nesting a/b; got a "
                "nesting inside an interaction. Write the factors out, e.g. (1 | a) + (1 | a:b)."
            )
        return [left[0] + right[0]]
    if isinstance(node, Binary) and node.operator.lexeme == "/":
        outer = _grouping(node.left)
        inner = _grouping(node.right)
        if len(inner) != 1:
            raise FormulaError("`formula` nests as a/b or a/b/c; got a nesting on the right.")
        return [*outer, inner[0] + outer[-1]]
    raise FormulaError(
        f"the grouping factor must be a column, an interaction a:b or a nesting a/b; got "
        f"{node!r}. Make a column holding the grouping (e.g. df['g'] = ...) and write (... | g)."
    )


def _bind_levels(formula: str) -> tuple[str, dict]:
    """``C(x, levels=['b', 'a'])`` -> ``C(x__bslv0)`` and
    ``{"x__bslv0": ("x", ["b", "a"], "C(x, levels=['b', 'a'])")}``."""
    bound: dict[str, tuple] = {}

    def repl(m: re.Match) -> str:
        try:
            value = ast.literal_eval(m.group("levels"))
        except (ValueError, SyntaxError) as exc:
            raise FormulaError(
                f"`formula` must give levels=[...] as a list of literal labels; got "
                f"{m.group('levels')!r}. Write e.g. C(x, levels=['low', 'mid', 'high'])."
            ) from exc
        if len(set(value)) != len(value) or len(value) < 2:
            raise FormulaError(
                f"`formula` must list each level once in levels=[...], at least two; got "
                f"{m.group('levels')}. Name every level of {m.group('var')!r} once."
            )
        name = _LEVELS_NAME.format(m.group("var"), len(bound))
        bound[name] = (m.group("var"), list(value), m.group(0))
        return f"C({name}{m.group('rest') or ''})"

    text = _LEVELS.sub(repl, formula)
    if re.search(r"\blevels\s*=", text):
        raise FormulaError(
            f"`formula` may give levels=[...] as the last argument of C(x, levels=[...]) or "
            f"C(x, Sum, levels=[...]), with x a column; got {formula!r}. Write it in that form."
        )
    return text, bound


def restore_levels(name: str, levels: dict) -> str:
    """A column name as the formula wrote it: ``C(x__bslv0)[b]`` -> ``C(x, levels=[...])[b]``."""
    for key, (_, _, written) in levels.items():
        start = name.find(f"C({key}")
        if start < 0:
            continue
        depth, end = 0, start
        for end in range(start, len(name)):
            depth += {"(": 1, ")": -1}.get(name[end], 0)
            if depth == 0 and name[end] == ")":
                break
        name = name[:start] + written + name[end + 1 :]
    return name


def _is_offset(term) -> bool:
    return any(
        str(getattr(c, "name", "")).startswith("offset(") for c in getattr(term, "components", ())
    )


def parse_formula(formula: str) -> FormulaSpec:
    """Parse an lme4-style ``formula`` with one or several grouping factors.

    Examples
    --------
    >>> from bayeshrink.formula import parse_formula
    >>> spec = parse_formula("y ~ x + offset(z) + (1 | school/class)")
    >>> spec.factor_names, sorted(spec.variables)
    (['school', 'class:school'], ['class', 'school', 'x', 'y', 'z'])
    """
    from formulae import model_description
    from formulae.expr import Binary
    from formulae.parser import Parser
    from formulae.resolver import Resolver
    from formulae.scanner import Scanner
    from formulae.terms import Model
    from formulae.terms.terms import GroupSpecificTerm

    if not isinstance(formula, str) or "~" not in formula:
        raise FormulaError(
            f"`formula` must be a string such as 'Reaction ~ Days + (Days | Subject)'; got "
            f"{formula!r}."
        )
    text, levels = _bind_levels(formula)
    try:
        description = model_description(text)
        tree = Parser(Scanner(text).scan()).parse()
    except Exception as exc:  # formulae raises its own ParseError / ScanError / ValueError
        hint = ""
        if formula.count("(") != formula.count(")"):
            hint = (
                f" Its parentheses do not balance ({formula.count('(')} '(' and "
                f"{formula.count(')')} ')')."
            )
        if "^" in formula:
            hint = (
                " Powers are written with '**' inside I() or braces, e.g. I(x**2) or {x**2} "
                "(lme4's I(x^2))."
            )
        if "||" in formula:
            hint = (
                " The lme4 shorthand (x || g) is not part of this syntax: write "
                "(1 | g) + (0 + x | g) for uncorrelated terms."
            )
        raise FormulaError(f"`formula` could not be parsed: {exc}.{hint}") from exc
    if description.response is None:
        raise FormulaError(
            f"`formula` must have a response on the left of '~'; got {formula!r}. "
            "Write e.g. 'y ~ x + (1 | g)'."
        )
    if not isinstance(tree, Binary) or tree.operator.lexeme != "~":
        raise FormulaError(f"`formula` must be of the form 'y ~ terms'; got {formula!r}.")

    check_formula_functions(tree, formula)
    nodes = [a for a in formula_addends(tree.right) if is_random_block(a)]
    if not nodes:
        raise FormulaError(
            f"`formula` must have a random-effects term such as (1 | group); got {formula!r}. "
            "A model without one is an ordinary regression (e.g. statsmodels' ols)."
        )
    blocks: list[RandomBlock] = []
    seen: dict[str, set] = {}
    for node in nodes:
        # formulae resolves the whole block, adding lme4's implicit intercept ((x | g) is
        # (1 + x | g)) and dropping it for (0 + x | g); a nesting a/b repeats the terms per factor
        resolved = Resolver(node).resolve()
        group_terms = list(getattr(resolved, "group_terms", [resolved]))
        exprs = tuple({str(t.expr): t.expr for t in group_terms}.values())
        if any("offset(" in str(e) for e in exprs):
            raise FormulaError(
                f"`formula` may use offset() among the fixed terms only; got one inside a random "
                f"block of {formula!r}. Write it outside the parentheses, e.g. "
                "'y ~ x + offset(z) + (1 | g)'."
            )
        for comps in _grouping(node.expression.right):
            blk = RandomBlock(exprs=exprs, components=comps)
            names = {str(e) for e in exprs}
            rep = seen.setdefault(blk.factor, set()).intersection(names)
            if rep:
                raise FormulaError(
                    f"`formula` repeats a random term for {blk.factor}: {sorted(rep)}. "
                    "Each random term may appear in one block only."
                )
            seen[blk.factor].update(names)
            blocks.append(blk)
    common = [t for t in description.terms if not isinstance(t, GroupSpecificTerm)]
    offsets = []
    for t in common:
        if _is_offset(t):
            if len(t.components) > 1:
                raise FormulaError(
                    f"`formula` may use offset() as a term of its own; got it in an interaction "
                    f"in {formula!r}. Compute the product first, e.g. df['xz'] = df['x'] * "
                    "df['z'], and write offset(xz)."
                )
            offsets.append(t)
    fixed = Model(*[t for t in common if not _is_offset(t)], response=description.response)
    # formulae lists a literal (the 2 of I(x**2)) as the variable '' and a contrast (C(x, Sum))
    # by its name; a levels list reads its column through a derived one
    not_columns = {"", *CONTRASTS, *levels}
    read = {v for v in description.var_names if v not in not_columns}
    return FormulaSpec(
        formula=formula,
        response=formula.split("~", 1)[0].strip(),
        fixed=fixed,
        blocks=tuple(blocks),
        variables=frozenset(read | {var for var, _, _ in levels.values()}),
        offsets=tuple(offsets),
        levels=levels,
    )


def split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside parentheses, brackets and braces, each part stripped:
    ``split_top("a + log(b + c)", "+")`` is ``["a", "log(b + c)"]``."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [s.strip() for s in out]


def split_offsets(rhs: str) -> tuple[list[str], list[str]]:
    """The right side of a formula as (its other addends, the expressions inside its
    ``offset(...)`` terms): ``"x + offset(log(t)) + (1 | g)"`` gives
    ``(["x", "(1 | g)"], ["log(t)"])``. The GLMM frame evaluates the offsets itself, since a
    GLMM's response (``cbind(...)``) is not a formulae response."""
    addends = split_top(rhs, "+")

    def is_offset(a: str) -> bool:
        # the whole addend one call: offset(a) - not offset(a) * x or offset(a) + offset(b)
        return a.startswith("offset(") and a.endswith(")") and split_top(a[7:-1], ",") != [""]

    offsets = [a[len("offset(") : -1] for a in addends if is_offset(a)]
    return [a for a in addends if not is_offset(a)], offsets


def cbind_arguments(lhs: str) -> tuple[str, str] | None:
    """R's binomial response ``cbind(successes, failures)``: its two argument expressions, or
    None when ``lhs`` is not a cbind() call. Raises when it has another number of arguments."""
    m = re.fullmatch(r"cbind\((.*)\)", lhs.strip())
    if m is None:
        return None
    args = split_top(m.group(1), ",")
    if len(args) != 2:
        raise FormulaError(
            f"`cbind()` on the left of `formula` takes two arguments, successes and failures; "
            f"got {len(args)} in {lhs!r}. Write e.g. cbind(y, n - y)."
        )
    return args[0], args[1]


def response_variables(spec: FormulaSpec) -> set[str]:
    """Variables that appear only in the response (new rows for prediction need not have them)."""
    from formulae import model_description

    rhs = _bind_levels(spec.formula)[0].split("~", 1)[1]
    try:
        used = {v for v in model_description("y__ ~ " + rhs).var_names if v} - {"y__"}
    except Exception:  # pragma: no cover - the full formula parsed, so its right side does
        return set()
    used |= {var for var, _, _ in spec.levels.values()}
    return set(spec.variables) - used

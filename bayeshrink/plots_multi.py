"""Pictures of a fit with several grouping factors (matplotlib only; no PyMC).

* :func:`plot_ranef`: one factor's conditional modes with +-2 conditional SDs, sorted, lme4's
  ``dotplot(ranef(m, condVar = TRUE))``.
* :func:`plot_nested`: shrinkage through a nesting, inner level -> outer level -> population:
  each inner level's own mean (its rows' response, adjusted for the fixed covariates), its BLUP
  (population + outer effect + inner effect), the outer level's BLUP and the population value.

Both read the fit's accessors (``ranef``, ``ranef_sd``, ``fixef``) and compute nothing of their own
beyond the raw means.
"""

from __future__ import annotations

import numpy as np

from .errors import ColumnError
from .lmm.multi import MultiFit

__all__ = ["plot_nested", "plot_ranef"]


def plot_ranef(fit: MultiFit, factor: str | None = None, term: str | None = None, ax=None):
    """One factor's conditional modes, sorted, with 95% intervals (+-1.96 conditional SDs:
    lme4's caterpillar, ``dotplot(ranef(m, condVar = TRUE))``)."""
    import matplotlib.pyplot as plt

    b = fit.ranef(factor)
    sd = fit.ranef_sd(factor)
    term = b.columns[0] if term is None else term
    if term not in b.columns:
        raise ColumnError(f"`term` must be one of {list(b.columns)}; got {term!r}.")
    order = np.argsort(b[term].to_numpy())
    vals, sds = b[term].to_numpy()[order], sd[term].to_numpy()[order]
    labels = [str(v) for v in b.index[order]]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, max(2.5, 0.18 * len(vals) + 1)))
    y = np.arange(len(vals))
    ax.errorbar(vals, y, xerr=1.959964 * sds, fmt="o", ms=3, lw=1, capsize=0, color="C0")
    ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
    ax.set_yticks(y, labels, fontsize=7 if len(vals) > 30 else 9)
    name = factor if factor is not None else fit.factors[0]
    ax.set_xlabel(f"conditional mode of {term} (95%: ±1.96 conditional SDs)")
    ax.set_title(name)
    return ax


def plot_nested(
    fit: MultiFit, inner: str, outer: str, term: str = "Intercept", ax=None, max_outer: int = 10
):
    """Shrinkage through a nesting: inner level's own mean -> its BLUP -> outer BLUP -> mu.

    ``inner`` and ``outer`` are factor names (``cask:batch`` and ``batch`` for
    ``(1 | batch/cask)``); only intercepts are drawn (``term="Intercept"``). Up to ``max_outer``
    outer levels are shown, in the order of their BLUPs.
    """
    import matplotlib.pyplot as plt

    for name in (inner, outer):
        if name not in fit.factors:
            raise ColumnError(f"`{name}` must be one of the grouping factors {fit.factors}.")
    d = fit.design
    fin = next(f for f in d.factors if f.name == inner)
    fout = next(f for f in d.factors if f.name == outer)
    mu = float(fit.fixef[term]) if term in fit.fixef else 0.0
    # the rows' response with the fixed covariates other than the term removed
    other = fit.fixef.drop(term, errors="ignore")
    cols = [fit.fixed_terms.index(t) for t in other.index]
    adj = d.y - (d.X[:, cols] @ other.to_numpy() if cols else 0.0)
    n_in = np.bincount(fin.codes, minlength=fin.n_levels)
    own = np.bincount(fin.codes, weights=adj, minlength=fin.n_levels) / np.maximum(n_in, 1)
    b_in = fit.ranef(inner)[term].to_numpy()
    b_out = fit.ranef(outer)[term].to_numpy()
    parent = np.full(fin.n_levels, -1)
    parent[fin.codes] = fout.codes  # nested: each inner level has one outer level
    shown = np.argsort(b_out)[:: max(1, int(np.ceil(fout.n_levels / max_outer)))]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    x = np.array([0.0, 1.0, 2.0, 3.0])
    for k, o in enumerate(shown):
        color = f"C{k % 10}"
        school = mu + b_out[o]
        for i in np.flatnonzero(parent == o):
            blup = school + b_in[i]
            ax.plot(x[:2], [own[i], blup], color=color, lw=0.8, alpha=0.7)
            ax.plot(x[1:3], [blup, school], color=color, lw=0.8, alpha=0.7)
            ax.plot(x[0], own[i], "o", ms=3, color=color)
        ax.plot(x[2:], [school, mu], color=color, lw=1.6)
        ax.plot(x[2], school, "s", ms=5, color=color)
    ax.plot(x[3], mu, "D", ms=7, color="k")
    ax.set_xticks(
        x, [f"{inner}\nown mean", f"{inner}\nBLUP", f"{outer}\nBLUP", "population\n(fixef)"]
    )
    ax.set_ylabel(f"{fit.design.spec.response} ({term})")
    ax.set_title(f"Shrinkage through the nesting {outer} / {inner}")
    return ax

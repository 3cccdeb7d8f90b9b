"""``bs.check``: the sampler's and LOO's diagnostics in one report, with a verdict in words."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataTypeError
from ..posterior import convergence_table, count_divergences
from .checks import ESS_PER_CHAIN_MIN, RHAT_MAX, diagnosed_vars, worst
from .workflow import remembered

__all__ = ["CheckReport", "check"]


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check` found: a table, the counts, and a verdict in plain words.

    ``table``: one row per checked variable (the free parameters and the group effects), with
    the worst R-hat, the smallest bulk and tail ESS over its elements and ``ok``.
    ``divergences``: divergent transitions. ``pareto_k``: counts of the observations whose LOO
    Pareto k is good (at most ``good_k``), bad (up to 1) and very bad (above 1); ``loo`` is
    ArviZ's LOO result (None without a log_likelihood group). ``verdict``: one sentence per
    finding, starting with "OK" when nothing was found.
    """

    table: pd.DataFrame
    divergences: int
    draws: int
    pareto_k: dict
    good_k: float
    loo: object
    verdict: str

    @property
    def ok(self) -> bool:
        return self.verdict.startswith("OK")

    def __str__(self) -> str:
        shown = self.table.copy()
        shown["rhat"] = shown["rhat"].map(lambda v: f"{v:.3f}")
        for col in ("ess_bulk", "ess_tail"):
            shown[col] = shown[col].map(lambda v: f"{v:.0f}")
        k = self.pareto_k
        lines = [
            "Sampler checks",
            shown.to_string(),
            f"divergent transitions: {self.divergences} of {self.draws} draws",
        ]
        if self.loo is not None:
            lines.append(
                f"LOO Pareto k: {k['good']} good (<= {self.good_k:.2f}), {k['bad']} bad "
                f"(<= 1), {k['very_bad']} very bad (> 1); elpd_loo = {self.loo.elpd:.2f} "
                f"(SE {self.loo.se:.2f})"
            )
        lines.append(self.verdict)
        return "\n".join(lines)

    __repr__ = __str__


def check(draws, model=None) -> CheckReport:
    """R-hat, bulk and tail ESS, divergences and LOO's Pareto k of ``draws``, with a verdict.

    The rules are PyMC's and ArviZ's: R-hat above 1.01 or an ESS below 100 per chain means the
    chains have not converged; any divergent transition means the sampler missed part of the
    posterior; a Pareto k above ``1 - 1 / log10(draws)`` (at most 0.7) means LOO's estimate for
    that observation is unreliable.

    Examples
    --------
    >>> import bayeshrink as bs
    >>> fit = bs.fit_summary(bs.load_dataset("eight_schools"), estimate="y", se="sigma",
    ...                      group="school")
    >>> report = bs.check(bs.sample(bs.hierarchical_model(fit)))  # doctest: +SKIP
    >>> print(report.verdict)  # doctest: +SKIP
    OK: the chains agree (R-hat <= 1.01), ...
    """
    try:
        post = draws["posterior"]
    except (TypeError, KeyError):
        raise DataTypeError(
            "`draws` must be the draws returned by bs.sample (an xarray DataTree with a "
            f"posterior group); got {type(draws).__name__}."
        ) from None
    if model is None:
        model = remembered(draws)
    chains = int(post.sizes.get("chain", 1))
    n_draws = chains * int(post.sizes.get("draw", 0))
    names = diagnosed_vars(draws, model)
    if model is None:  # every variable with few elements, and the effects
        names = [v for v in post.data_vars if post[v].size <= 50 * n_draws] or names
    diag = convergence_table(draws, names)
    rows = {}
    for v in names:
        rhat = worst(diag["rhat"][v], True)
        bulk = worst(diag["ess_bulk"][v], False)
        tail = worst(diag["ess_tail"][v], False)
        rows[v] = {
            "rhat": rhat[0],
            "rhat_at": rhat[1],
            "ess_bulk": bulk[0],
            "ess_tail": tail[0],
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    need = ESS_PER_CHAIN_MIN * chains
    rhat_ok = table["rhat"].isna() | (table["rhat"] <= RHAT_MAX) if chains > 1 else True
    table["ok"] = rhat_ok & (table["ess_bulk"] >= need) & (table["ess_tail"] >= need)
    n_div = count_divergences(draws)
    findings = []
    if chains > 1 and (table["rhat"] > RHAT_MAX).any():
        at = table["rhat"].idxmax()
        findings.append(
            f"the chains disagree: R-hat of {at}{table.loc[at, 'rhat_at']} is "
            f"{table.loc[at, 'rhat']:.3f} (above {RHAT_MAX}); sample longer"
        )
    low = table[["ess_bulk", "ess_tail"]].min(axis=1)
    if (low < need).any():
        at = low.idxmin()
        findings.append(
            f"too few effective draws: {at} has an ESS of {low[at]:.0f} (below "
            f"{ESS_PER_CHAIN_MIN} per chain x {chains}); sample longer"
        )
    if n_div:
        findings.append(
            f"{n_div} divergent transitions: the sampler missed part of the posterior and the "
            "estimates may be biased; try target_accept=0.99 or the other parametrization"
        )
    loo, counts, good_k = None, {"good": 0, "bad": 0, "very_bad": 0}, math.nan
    if "log_likelihood" in draws.children:
        import arviz as az

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the Pareto k warning: reported below, in words
            loo = az.loo(draws, pointwise=True)
        k = np.asarray(loo.pareto_k).ravel()
        good_k = float(loo.good_k)
        counts = {
            "good": int((k <= good_k).sum()),
            "bad": int(((k > good_k) & (k <= 1)).sum()),
            "very_bad": int((k > 1).sum()),
        }
        n_high = counts["bad"] + counts["very_bad"]
        if n_high:
            findings.append(
                f"{n_high} of {k.size} observations have a Pareto k above {good_k:.2f}: LOO's "
                "estimate leans on them and is unreliable; more draws can lower k, otherwise "
                "use K-fold cross-validation or a model less sensitive to them"
            )
    if findings:
        verdict = "Problems: " + "; ".join(findings) + "."
    else:
        verdict = (
            f"OK: the chains agree (R-hat <= {RHAT_MAX}), every ESS is at least "
            f"{ESS_PER_CHAIN_MIN} per chain, no divergent transitions"
            + (f", every Pareto k is at most {good_k:.2f}" if loo is not None else "")
            + "."
        )
    return CheckReport(table, n_div, n_draws, counts, good_k, loo, verdict)

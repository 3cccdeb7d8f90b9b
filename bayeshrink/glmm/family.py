"""Response distributions and link functions of the GLMMs (R's ``binomial()`` and ``poisson()``).

Each family gives, for a linear predictor ``eta`` and prior weights ``wt``:

- ``mu = linkinv(eta)`` and ``dmu/deta``;
- the variance function ``V(mu)``;
- the per-row log-density ``log p(y | mu)`` (R's ``family$aic`` is ``-2`` times its sum);
- the deviance residuals (R's ``family$dev.resids``), whose sum is lme4's ``deviance()``.

For binomial data ``y`` is the proportion of successes and ``wt`` the number of trials, as in
R's ``glm`` after ``cbind(successes, failures)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from ..errors import MethodError

__all__ = ["FAMILIES", "Family", "get_family"]

_EPS = np.finfo(float).eps
_THRESH = 30.0  # R's logit linkinv clamps eta to +-30 (mu within DBL_EPSILON of 0 and 1)


def _xlogy(x, y):
    return special.xlogy(x, y)


@dataclass(frozen=True)
class Link:
    name: str

    def linkinv(self, eta):
        if self.name == "logit":
            mu = special.expit(np.clip(eta, -_THRESH, _THRESH))
            return np.clip(mu, _EPS, 1 - _EPS)
        if self.name == "probit":
            t = -special.ndtri(_EPS)
            return special.ndtr(np.clip(eta, -t, t))
        if self.name == "cloglog":
            return np.clip(-np.expm1(-np.exp(eta)), _EPS, 1 - _EPS)
        if self.name == "log":
            return np.maximum(np.exp(eta), _EPS)
        raise AssertionError(self.name)  # pragma: no cover

    def mu_eta(self, eta):
        if self.name == "logit":
            e = np.clip(eta, -_THRESH, _THRESH)
            p = special.expit(e)
            return np.maximum(p * (1 - p), _EPS)
        if self.name == "probit":
            return np.maximum(np.exp(-0.5 * eta * eta) / np.sqrt(2 * np.pi), _EPS)
        if self.name == "cloglog":
            eta = np.minimum(eta, 700.0)
            return np.maximum(np.exp(eta - np.exp(eta)), _EPS)
        if self.name == "log":
            return np.maximum(np.exp(eta), _EPS)
        raise AssertionError(self.name)  # pragma: no cover

    def link(self, mu):
        mu = np.asarray(mu, dtype=float)
        if self.name == "logit":
            return special.logit(mu)
        if self.name == "probit":
            return special.ndtri(mu)
        if self.name == "cloglog":
            return np.log(-np.log1p(-mu))
        return np.log(mu)


@dataclass(frozen=True)
class Family:
    """A response distribution with its link (``binomial``/``poisson``)."""

    name: str
    link: Link

    @property
    def canonical(self) -> bool:
        return (self.name, self.link.name) in {("binomial", "logit"), ("poisson", "log")}

    def variance(self, mu):
        if self.name == "binomial":
            return np.maximum(mu * (1 - mu), _EPS * _EPS)
        return mu

    def loglik_rows(self, y, mu, wt):
        """``log p(y_i | mu_i)`` per row (binomial: ``dbinom(round(wt*y), round(wt), mu)``)."""
        if self.name == "binomial":
            m = np.round(wt)
            s = np.round(wt * y)
            lchoose = special.gammaln(m + 1) - special.gammaln(s + 1) - special.gammaln(m - s + 1)
            return lchoose + _xlogy(s, mu) + _xlogy(m - s, 1 - mu)
        return wt * (_xlogy(y, mu) - mu - special.gammaln(y + 1))

    def loglik_kernel(self, y, mu, wt):
        """The parts of ``loglik_rows`` that depend on mu (faster; differs by a constant).
        mu is kept inside (0, 1) / above 0 by ``linkinv``, so the logs are finite."""
        if self.name == "binomial":
            return wt * (y * np.log(mu) + (1 - y) * np.log1p(-mu))
        return wt * (y * np.log(mu) - mu)

    def kernel_eta(self, y, eta, wt):
        """``loglik_kernel`` from eta directly, for the canonical links (no mu needed)."""
        if self.name == "binomial":
            e = np.clip(eta, -_THRESH, _THRESH)
            softplus = np.log1p(np.exp(-np.abs(e)))
            softplus += np.maximum(e, 0.0)
            return wt * (y * e - softplus)
        return wt * (y * eta - np.exp(eta))

    def eval_eta(self, y, eta, wt):
        """(-2 x the kernel, score of eta, IRLS weights) per row, in one pass: for the logit
        link one exp and one log1p per row."""
        if self.canonical and self.name == "binomial":
            e = np.clip(eta, -_THRESH, _THRESH)
            t = np.exp(-np.abs(e))
            dev = np.log1p(t)
            dev += np.maximum(e, 0.0)
            dev -= y * e
            dev *= 2.0 * wt
            mu = np.where(e >= 0, 1.0, t) / (1.0 + t)
            return dev, wt * (y - mu), wt * mu * (1.0 - mu)
        if self.canonical:
            mu = np.exp(eta)
            return -2.0 * wt * (y * eta - mu), wt * (y - mu), wt * mu
        mu, r, W = self.irls(y, eta, wt)
        return -2.0 * self.loglik_kernel(y, mu, wt), r, W

    def irls(self, y, eta, wt):
        """(mu, the score of eta, the IRLS weights) at eta."""
        if self.canonical:
            if self.name == "binomial":
                mu = special.expit(np.clip(eta, -_THRESH, _THRESH))
                return mu, wt * (y - mu), np.maximum(wt * mu * (1 - mu), 0.0)
            mu = np.exp(eta)
            return mu, wt * (y - mu), wt * mu
        mu = self.link.linkinv(eta)
        d = self.link.mu_eta(eta)
        v = self.variance(mu)
        return mu, wt * (y - mu) * d / v, wt * d * d / v

    def loglik_constant(self, y, wt) -> float:
        """``sum(loglik_rows - loglik_kernel)``: the part that does not depend on mu."""
        if self.name == "binomial":
            m = np.round(wt)
            s = np.round(wt * y)
            lchoose = special.gammaln(m + 1) - special.gammaln(s + 1) - special.gammaln(m - s + 1)
            # the kernel uses wt*y and wt*(1-y) where loglik_rows uses their rounded values
            return float(np.sum(lchoose))
        return float(-np.sum(wt * special.gammaln(y + 1)))

    def dev_resids(self, y, mu, wt):
        """R's ``family$dev.resids``: ``2 wt (l(y; y) - l(y; mu))`` per row."""
        if self.name == "binomial":
            return 2 * wt * (_xlogy(y, y / mu) + _xlogy(1 - y, (1 - y) / (1 - mu)))
        return 2 * wt * (_xlogy(y, y / mu) - (y - mu))

    def saturated_loglik(self, y, wt) -> float:
        """``sum(loglik_kernel(y, y))``: kernel log-likelihood of the saturated model."""
        if self.name == "binomial":
            return float(np.sum(wt * (_xlogy(y, y) + _xlogy(1 - y, 1 - y))))
        return float(np.sum(wt * (_xlogy(y, y) - y)))


FAMILIES = {"binomial": ("logit", "probit", "cloglog"), "poisson": ("log",)}


def get_family(family, link: str | None = None) -> Family:
    """``family`` ("binomial" or "poisson") with ``link`` (default logit / log)."""
    if not isinstance(family, str) or family.lower() not in FAMILIES:
        raise MethodError(
            f"`family` must be one of 'gaussian', 'binomial' or 'poisson'; got {family!r}. "
            "Binary or binomial data take family='binomial', counts family='poisson'."
        )
    family = family.lower()
    links = FAMILIES[family]
    if link is None:
        link = links[0]
    if not isinstance(link, str) or link not in links:
        raise MethodError(
            f"`link` must be one of {', '.join(map(repr, links))} for family={family!r}; got "
            f"{link!r}."
        )
    return Family(family, Link(link))

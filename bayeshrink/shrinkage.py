"""BLUPs, shrinkage factors, conditional and prediction SDs, and the pooling baselines.

Plain numpy functions of the estimated components; see :mod:`bayeshrink.estimate` for the
glossary. Every quantity is finite on a boundary fit (tau = 0): the shrinkage factor is then
exactly 1, the BLUP equals mu, and cond_sd is 0.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "blup",
    "complete_pooling",
    "cond_sd",
    "pred_sd",
    "shrinkage_factor",
]


def shrinkage_factor(se: np.ndarray, tau2: float) -> np.ndarray:
    """B_j = se_j^2 / (se_j^2 + tau^2): 0 keeps the group's own estimate, 1 pools it fully."""
    se2 = np.asarray(se, dtype=float) ** 2
    return se2 / (se2 + tau2)


def blup(no_pooling: np.ndarray, mu: float, shrinkage: np.ndarray) -> np.ndarray:
    """mu + (1 - B_j) (no_pooling_j - mu): the posterior mean under the prior N(mu, tau^2)."""
    return mu + (1.0 - shrinkage) * (np.asarray(no_pooling, dtype=float) - mu)


def cond_sd(se: np.ndarray, shrinkage: np.ndarray) -> np.ndarray:
    """SD of theta_j given the data and mu = mu_hat: sqrt((1 - B_j) se_j^2) (lme4's condVar).

    Equal to 1 / sqrt(1 / tau^2 + 1 / se_j^2), the plug-in posterior SD.
    """
    return np.sqrt((1.0 - shrinkage) * np.asarray(se, dtype=float) ** 2)


def pred_sd(se: np.ndarray, shrinkage: np.ndarray, mu_se: float) -> np.ndarray:
    """Prediction-error SD counting the uncertainty of mu_hat (metafor's ``blup()`` se).

    sqrt(cond_sd^2 + B_j^2 mu_se^2): the posterior SD of theta_j when mu has a flat prior
    (Henderson's equivalence).
    """
    return np.sqrt(cond_sd(se, shrinkage) ** 2 + (shrinkage * mu_se) ** 2)


def complete_pooling(no_pooling: np.ndarray, weights: np.ndarray) -> float:
    """The single estimate that ignores groups: the precision-weighted mean of the groups.

    For long data the weights are the group sizes (the grand mean of all rows); for summary data
    they are 1 / se_j^2 (the fixed-effect meta-analysis mean).
    """
    w = np.asarray(weights, dtype=float)
    return float(np.dot(w, no_pooling) / w.sum())

"""Small datasets bundled with bayeshrink, readable offline.

>>> import bayeshrink as bs
>>> sorted(bs.list_datasets())[:3]
['cbpp', 'dyestuff', 'dyestuff2']
>>> bs.load_dataset("eight_schools").shape
(8, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import pandas as pd

from ..errors import DataError

__all__ = ["DatasetInfo", "describe_dataset", "list_datasets", "load_dataset"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    file: str
    description: str
    citation: str
    dtypes: dict


_REGISTRY: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo(
            "seed_demo",
            "seed_demo.csv",
            "The worked example: columns `model` ('1', '2', '3', '1b'), `group` (g1..g5), `y`. "
            "Models 1-3 have 5 groups x 5 observations around a population mean of 16 with "
            "between/within SD ratios tau/sigma = 1/5, 5/5 and 5/1; model 1b repeats the "
            "1/5 ratio with 5 groups x 500 observations. Drawn in R after set.seed(1673).",
            "bayeshrink worked example (R rnorm draws after set.seed(1673)).",
            {"model": str, "group": str},
        ),
        DatasetInfo(
            "eight_schools",
            "eight_schools.csv",
            "Coaching effects on SAT-V scores in eight schools: `school`, `y` (estimated "
            "effect), `sigma` (its standard error).",
            "Rubin, D. B. (1981). Estimation in parallel randomized experiments. Journal of "
            "Educational Statistics 6(4), 377-401; Gelman et al., Bayesian Data Analysis, 3rd "
            "ed. (2013), section 5.5.",
            {"school": str},
        ),
        DatasetInfo(
            "efron_morris",
            "efron_morris.csv",
            "18 major-league batters of 1970: `y` = batting average over their first 45 at-bats, "
            "`p` = average over the rest of the season (`n` further at-bats), with `name`, "
            "`team`, `league` and `r` (hits in the first 45 at-bats).",
            "Efron, B. and Morris, C. (1975). Data analysis using Stein's estimator and its "
            "generalizations. JASA 70(350), 311-319, Table 1 (as in R's pscl::EfronMorris).",
            {"name": str},
        ),
        DatasetInfo(
            "radon",
            "radon.csv",
            "Minnesota household radon, 919 houses in 85 counties: `county`, `floor` (0 = "
            "basement, 1 = first floor), `log_radon` (log activity, 0 replaced by 0.1), "
            "`log_uranium` (county-level soil uranium), plus `idnum`, `county_idx`, `activity`.",
            "Gelman, A. and Hill, J. (2007). Data Analysis Using Regression and "
            "Multilevel/Hierarchical Models, chapter 12 (built from srrs2.dat and cty.dat).",
            {"county": str},
        ),
        DatasetInfo(
            "sleepstudy",
            "sleepstudy.csv",
            "Reaction times (ms) of 18 subjects over 10 days of sleep deprivation: `Reaction`, "
            "`Days`, `Subject`.",
            "Belenky, G. et al. (2003). Patterns of performance degradation and restoration "
            "during sleep restriction and subsequent recovery. J. Sleep Research 12, 1-12; "
            "lme4's sleepstudy.",
            {"Subject": str},
        ),
        DatasetInfo(
            "dyestuff",
            "dyestuff.csv",
            "Yield of dyestuff (grams of standard color) from 6 batches of an intermediate "
            "product, 5 preparations each: `Batch`, `Yield`.",
            "Davies, O. L. and Goldsmith, P. L. (1972). Statistical Methods in Research and "
            "Production, 4th ed., Table 6.3; lme4's Dyestuff.",
            {"Batch": str},
        ),
        DatasetInfo(
            "dyestuff2",
            "dyestuff2.csv",
            "Simulated data shaped like dyestuff (6 batches x 5) whose between-batch variance "
            "is estimated as 0: a boundary (singular) fit. `Batch`, `Yield`.",
            "Box, G. E. P. and Tiao, G. C. (1973). Bayesian Inference in Statistical Analysis, "
            "Table 5.1.4; lme4's Dyestuff2.",
            {"Batch": str},
        ),
        DatasetInfo(
            "penicillin",
            "penicillin.csv",
            "Diameters (mm) of the zone of inhibited growth for 6 penicillin samples, each on "
            "each of 24 agar plates: `diameter`, `plate` (a..x), `sample` (A..F). Two crossed "
            "grouping factors: y ~ 1 + (1 | plate) + (1 | sample).",
            "Davies, O. L. and Goldsmith, P. L. (1972). Statistical Methods in Research and "
            "Production, 4th ed., section 6.6; lme4's Penicillin.",
            {"plate": str, "sample": str},
        ),
        DatasetInfo(
            "pastes",
            "pastes.csv",
            "Strength of a chemical paste: 2 assays of each of 3 casks from each of 10 delivery "
            "batches: `strength`, `batch` (A..J), `cask` (a..c, the same labels in every batch), "
            "`sample` (batch:cask). Casks are nested in batches: y ~ 1 + (1 | batch/cask).",
            "Davies, O. L. and Goldsmith, P. L. (1972). Statistical Methods in Research and "
            "Production, 4th ed., section 6.5; lme4's Pastes.",
            {"batch": str, "cask": str, "sample": str},
        ),
        DatasetInfo(
            "cbpp",
            "cbpp.csv",
            "Contagious bovine pleuropneumonia in 15 commercial herds of zebu cattle in Ethiopia, "
            "followed over 4 periods: `herd` (1..15), `period` (1..4, a categorical covariate), "
            "`incidence` (new serological cases in the period), `size` (herd size at the start "
            "of the period). A binomial GLMM: cbind(incidence, size - incidence) ~ period + "
            "(1 | herd).",
            "Lesnoff, M. et al. (2004). Within-herd spread of contagious bovine pleuropneumonia "
            "in Ethiopian highlands. Preventive Veterinary Medicine 64, 27-40; lme4's cbpp.",
            {"period": str},
        ),
        DatasetInfo(
            "rat_tumors",
            "rat_tumors.csv",
            "Tumour incidence in the control groups of 71 experiments on F344 laboratory rats: "
            "`experiment` (1..71), `y` (rats with a tumour), `n` (rats in the experiment). "
            "Experiments 1-70 are the historical controls, 71 the current experiment (4 of 14). "
            "A binomial GLMM: cbind(y, n - y) ~ 1 + (1 | experiment).",
            "Tarone, R. E. (1982). The use of historical control information in testing for a "
            "trend in proportions. Biometrics 38, 215-220; Gelman et al., Bayesian Data "
            "Analysis, 3rd ed. (2013), Table 5.1 (http://www.stat.columbia.edu/~gelman/book/"
            "data/rats.asc).",
            {"experiment": str},
        ),
    ]
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return list(_REGISTRY)


def _info(name: str) -> DatasetInfo:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise DataError(f"`name` must be one of {list_datasets()}; got {name!r}.") from None


def describe_dataset(name: str) -> str:
    """Description and citation of a bundled dataset."""
    info = _info(name)
    return f"{info.name}: {info.description}\nSource: {info.citation}"


def load_dataset(name: str) -> pd.DataFrame:
    """Load a bundled dataset as a DataFrame (offline; the description is in ``df.attrs``)."""
    info = _info(name)
    with resources.files(__package__).joinpath(info.file).open("rb") as fh:
        df = pd.read_csv(fh, dtype=info.dtypes)
    if "rownames" in df.columns:
        df = df.drop(columns="rownames")
    df.attrs["name"] = info.name
    df.attrs["description"] = info.description
    df.attrs["citation"] = info.citation
    return df

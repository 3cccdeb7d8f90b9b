# lme4 fits of the near-boundary simulations (tests/reference/lmm_near_boundary.csv.gz, made by
# make_near_boundary_data.py). Writes lmm_near_boundary.json: per case, logLik (REML) with
# lme4's default optimiser and with bobyqa at rhoend 2e-12, and isSingular of the latter.
#   Rscript tests/reference/make_near_boundary_references.R   (from the repository root)
suppressMessages({library(lme4); library(jsonlite)})
d <- read.csv(gzfile("tests/reference/lmm_near_boundary.csv.gz"))
tight <- lmerControl(optimizer = "bobyqa",
                     optCtrl = list(rhobeg = 2e-4, rhoend = 2e-12, maxfun = 1e6))
out <- list()
for (s in unique(d$case)) {
  dd <- d[d$case == s, ]
  f <- as.formula(dd$formula[1])
  m1 <- suppressWarnings(suppressMessages(lmer(f, dd, REML = TRUE)))
  m2 <- suppressWarnings(suppressMessages(lmer(f, dd, REML = TRUE, control = tight)))
  out[[as.character(s)]] <- list(formula = dd$formula[1],
                                 logLik_default = as.numeric(logLik(m1)),
                                 logLik_bobyqa = as.numeric(logLik(m2)),
                                 singular = isSingular(m2))
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/reference/lmm_near_boundary.json")

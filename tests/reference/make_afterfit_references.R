# References for the after-fit methods: fitted(), residuals() and the parametric bootstrap
# (confint(method = "boot"), lme4's bootMer) on sleepstudy with correlated slopes and on
# Penicillin (two crossed factors).
#
#   Rscript tests/reference/make_afterfit_references.R   (from the repository root)
#
# Writes tests/reference/afterfit_{sleepstudy_slopes,penicillin}.json. The test suite never runs
# R. Fits use the tight bobyqa control of the other reference scripts, restarted twice from
# lme4's own optimum. The bootstrap uses many replicates (nsim below) so that its quantiles are
# a reference whose own Monte Carlo error is small next to that of the test's few replicates;
# the density of each parameter's bootstrap distribution at the quantiles is written too, for
# the Monte Carlo standard error of an estimated quantile, sqrt(p (1 - p) / n) / f(q_p).
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
out <- "tests/reference"
ctrl <- lmerControl(optimizer = "bobyqa",
                    optCtrl = list(rhobeg = 2e-4, rhoend = 2e-12, maxfun = 1e6))
tight <- function(m) {
  for (i in 1:2) m <- update(m, start = getME(m, "theta"))
  m
}
num <- function(x) unname(as.numeric(x))

boot_ref <- function(m, nsim, seed) {
  # confint(m, method = "boot", nsim = nsim, seed = seed) is the percentile interval of these
  # replicates (lme4's bootMer with FUN = the parameters in confint's order)
  ci <- confint(m, method = "boot", nsim = nsim, seed = seed, oldNames = FALSE,
                boot.type = "perc", level = 0.95)
  set.seed(seed)
  FUN <- function(fit) {
    vc <- as.data.frame(VarCorr(fit), order = "lower.tri")
    c(num(vc$sdcor), num(fixef(fit)))
  }
  bb <- bootMer(m, FUN, nsim = nsim, seed = seed)
  t <- bb$t
  dens <- function(v, at) {
    d <- density(v, n = 2048)
    approx(d$x, d$y, xout = at)$y
  }
  q_lo <- apply(t, 2, quantile, probs = 0.025, names = FALSE)
  q_hi <- apply(t, 2, quantile, probs = 0.975, names = FALSE)
  list(
    parm = rownames(ci),
    confint_lo = num(ci[, 1]),
    confint_hi = num(ci[, 2]),
    nsim = nsim,
    seed = seed,
    q_lo = q_lo,
    q_hi = q_hi,
    dens_lo = vapply(seq_len(ncol(t)), function(k) dens(t[, k], q_lo[k]), 0),
    dens_hi = vapply(seq_len(ncol(t)), function(k) dens(t[, k], q_hi[k]), 0),
    boot_mean = num(colMeans(t)),
    boot_sd = num(apply(t, 2, sd))
  )
}

sleep <- read.csv("bayeshrink/datasets/sleepstudy.csv")
sleep$Subject <- factor(sleep$Subject)
m <- tight(lmer(Reaction ~ Days + (Days | Subject), sleep, control = ctrl))
x <- list(formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE,
          fitted = num(fitted(m)), residuals = num(residuals(m)),
          sigma = sigma(m))
write_json(x, file.path(out, "afterfit_sleepstudy_slopes.json"), digits = NA, auto_unbox = TRUE)
cat("sleepstudy done\n")

pen <- read.csv(file.path(out, "penicillin.csv"), colClasses = c(plate = "character",
                                                                   sample = "character"))
m <- tight(lmer(diameter ~ 1 + (1 | plate) + (1 | sample), pen, control = ctrl))
x <- list(formula = "diameter ~ 1 + (1 | plate) + (1 | sample)", REML = TRUE,
          fitted = num(fitted(m)), residuals = num(residuals(m)),
          sigma = sigma(m),
          bootstrap = boot_ref(m, nsim = 4000, seed = 101))
write_json(x, file.path(out, "afterfit_penicillin.json"), digits = NA, auto_unbox = TRUE)
cat("penicillin done\n")

# After-fit references for tests/test_glmm_inference.py: lme4's confint (Wald, profile),
# anova, simulate and bootMer on cbpp.
# Run from the repository root: Rscript tests/reference/make_glmm_afterfit_references.R
# (R 4.2.2, lme4 1.1-31, jsonlite; writes tests/reference/cbpp_afterfit.json).
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
out <- "tests/reference"
tight <- glmerControl(optimizer = c("bobyqa", "bobyqa"),
                      optCtrl = list(rhobeg = 2e-3, rhoend = 1e-11, maxfun = 1e6),
                      tolPwrss = 1e-11)
f1 <- cbind(incidence, size - incidence) ~ period + (1 | herd)
f0 <- cbind(incidence, size - incidence) ~ 1 + (1 | herd)
gm <- glmer(f1, cbpp, binomial, control = tight)
gm0 <- glmer(f0, cbpp, binomial, control = tight)

ci_table <- function(ci) {
  list(names = rownames(ci), lo = unname(ci[, 1]), hi = unname(ci[, 2]))
}
wald <- confint(gm, method = "Wald", oldNames = FALSE)
prof <- confint(gm, method = "profile", oldNames = FALSE)
# the same at level 0.8, a second point of each profile
prof80 <- confint(gm, method = "profile", oldNames = FALSE, level = 0.8)

a <- anova(gm0, gm)
anova_tab <- list(npar = a$npar, AIC = a$AIC, BIC = a$BIC, logLik = a$logLik,
                  deviance = a$deviance, Chisq = a$Chisq, Df = a$Df,
                  p = a[["Pr(>Chisq)"]])

# simulate(gm): incidence per row, its mean and variance over many draws
nsim <- 20000
sims <- simulate(gm, nsim = nsim, seed = 1)
inc <- sapply(sims, function(s) s[, 1])
# use.u = TRUE from the default fit: the tight fit's stored u is not at its final modes
# (its use.u row means are 4.65 for herd 1 / period 1 where size x fitted() is 4.31)
gmd <- glmer(f1, cbpp, binomial)
sim_u <- simulate(gmd, nsim = nsim, seed = 2, use.u = TRUE)
inc_u <- sapply(sim_u, function(s) s[, 1])

# bootMer: the parametric bootstrap of (sd, fixef), from the default fit
stat <- function(m) c(sd = sqrt(VarCorr(m)$herd[1]), fixef(m))
nboot <- 500
bt <- bootMer(gmd, stat, nsim = nboot, seed = 1)
tt <- bt$t[stats::complete.cases(bt$t), , drop = FALSE]

res <- list(
  logLik = as.numeric(logLik(gm)), logLik0 = as.numeric(logLik(gm0)),
  sd = sqrt(VarCorr(gm)$herd[1]), fixef = as.list(fixef(gm)),
  wald = ci_table(wald), profile = ci_table(prof), profile80 = ci_table(prof80),
  anova = anova_tab,
  simulate = list(nsim = nsim, mean = unname(rowMeans(inc)),
                  var = unname(apply(inc, 1, var)),
                  mean_use_u = unname(rowMeans(inc_u)), var_use_u = unname(apply(inc_u, 1, var))),
  bootstrap = list(n = nrow(tt), names = c("sd_(Intercept)|herd", names(fixef(gm))),
                   mean = unname(colMeans(tt)), sd = unname(apply(tt, 2, sd)),
                   q025 = unname(apply(tt, 2, quantile, 0.025)),
                   q975 = unname(apply(tt, 2, quantile, 0.975)))
)
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"),
           file.path(out, "cbpp_afterfit.json"))
cat("done\n")

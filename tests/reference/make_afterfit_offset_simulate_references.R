# References for fitted(), residuals() and simulate() beyond make_afterfit_references.R:
# fitted() and residuals() of fits with an offset() term (one and two grouping factors: lme4's
# fitted values include the offset), and the moments of lme4's simulate() on Penicillin.
#
#   Rscript tests/reference/make_afterfit_offset_simulate_references.R   (from the repository root)
#
# Writes tests/reference/afterfit_offsets.json and afterfit_simulate_penicillin.json. The test
# suite never runs R. simulate(m, nsim, seed) draws new random effects (use.u = FALSE) and new
# residuals; its row means, variances and a few covariances are written with nsim, so that a
# test compares them with its own simulations within the Monte Carlo error of both.
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

sleep <- read.csv("bayeshrink/datasets/sleepstudy.csv")
sleep$Subject <- factor(sleep$Subject)
m1 <- tight(lmer(Reaction ~ Days + offset(2 * Days) + (Days | Subject), sleep, control = ctrl))
crossed <- read.csv(file.path(out, "multi_sim_crossed.csv"),
                    colClasses = c(subj = "character", item = "character"))
m2 <- tight(lmer(y ~ x + offset(x) + (1 | subj) + (1 | item), crossed, control = ctrl))
fits <- function(m, formula) list(formula = formula, REML = TRUE, fitted = num(fitted(m)),
                                  residuals = num(residuals(m)), fixef = as.list(fixef(m)))
write_json(list(
  sleepstudy = fits(m1, "Reaction ~ Days + offset(2 * Days) + (Days | Subject)"),
  sim_crossed = fits(m2, "y ~ x + offset(x) + (1 | subj) + (1 | item)")
), file.path(out, "afterfit_offsets.json"), digits = NA, auto_unbox = TRUE)
cat("offsets done\n")

pen <- read.csv(file.path(out, "penicillin.csv"), colClasses = c(plate = "character",
                                                                   sample = "character"))
m <- tight(lmer(diameter ~ 1 + (1 | plate) + (1 | sample), pen, control = ctrl))
nsim <- 20000
sims <- as.matrix(simulate(m, nsim = nsim, seed = 2026))
# rows (1-based) sharing the first row's plate only, its sample only, neither
p <- pen$plate; s <- pen$sample
pairs <- c(which(p == p[1] & s != s[1])[1], which(p != p[1] & s == s[1])[1],
           which(p != p[1] & s != s[1])[1])
write_json(list(
  formula = "diameter ~ 1 + (1 | plate) + (1 | sample)", REML = TRUE, nsim = nsim, seed = 2026,
  mean = num(rowMeans(sims)),
  var = num(apply(sims, 1, var)),
  pairs = pairs - 1L,  # 0-based rows paired with row 0
  cov = vapply(pairs, function(j) cov(sims[1, ], sims[j, ]), 0),
  fourth = num(rowMeans((sims - rowMeans(sims))^4))  # for the SE of a variance
), file.path(out, "afterfit_simulate_penicillin.json"), digits = NA, auto_unbox = TRUE)
cat("simulate done\n")

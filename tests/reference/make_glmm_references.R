# Reference fits for tests/test_glmm.py: lme4's glmer at tight settings.
# Run from the repository root: Rscript tests/reference/make_glmm_references.R
# (R 4.2.2, lme4 1.1-31, mlmRev, jsonlite from Debian's r-cran-* packages).
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
  library(mlmRev)
})
out <- "tests/reference"
tight <- glmerControl(optimizer = c("bobyqa", "bobyqa"),
                      optCtrl = list(rhobeg = 2e-3, rhoend = 1e-11, maxfun = 1e6),
                      tolPwrss = 1e-11)

# the tight fit restarted from its own optimum; the better of that and the default fit is kept
tight_fit <- function(formula, data, family, nAGQ = 1L) {
  m0 <- glmer(formula, data = data, family = family, nAGQ = nAGQ)
  m1 <- glmer(formula, data = data, family = family, nAGQ = nAGQ, control = tight)
  start <- if (nAGQ == 0) list(theta = getME(m1, "theta"))
           else list(theta = getME(m1, "theta"), fixef = fixef(m1))
  m2 <- glmer(formula, data = data, family = family, nAGQ = nAGQ, control = tight, start = start)
  fits <- list(m0, m1, m2)
  devs <- sapply(fits, function(m) -2 * as.numeric(logLik(m)))
  fits[[which.min(devs)]]
}

by_factor <- function(m) {
  re <- ranef(m, condVar = TRUE)
  lapply(re, function(r) {
    pv <- attr(r, "postVar")
    sds <- lapply(seq_len(ncol(r)), function(k) sqrt(pv[k, k, ]))
    names(sds) <- colnames(r)
    list(levels = rownames(r), values = as.list(r), sd = sds)
  })
}

describe <- function(m, name, extra = list()) {
  vc <- as.data.frame(VarCorr(m))
  c(list(
    name = name,
    formula = paste(deparse(formula(m)), collapse = " "),
    family = family(m)$family,
    link = family(m)$link,
    nAGQ = m@devcomp$dims[["nAGQ"]],
    fixef = as.list(fixef(m)),
    fixef_se = as.list(sqrt(diag(as.matrix(vcov(m))))),
    vcov = unname(as.matrix(vcov(m))),
    theta = unname(getME(m, "theta")),
    varcorr = vc,
    logLik = as.numeric(logLik(m)),
    AIC = AIC(m), BIC = BIC(m),
    deviance = deviance(m),
    ranef = by_factor(m),
    fitted = unname(fitted(m))
  ), extra)
}

save <- function(x, file) {
  writeLines(toJSON(x, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"),
             file.path(out, file))
}

# ---------------------------------------------------------------- cbpp, nAGQ = 25 and nAGQ = 0
cbpp_f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
m25 <- tight_fit(cbpp_f, cbpp, binomial, nAGQ = 25L)
# the marginal log-likelihood at lme4's estimates, by brute-force integration per herd
beta <- fixef(m25); sdh <- getME(m25, "theta")[[1]]
X <- getME(m25, "X")
marg <- 0
for (h in levels(cbpp$herd)) {
  rows <- which(cbpp$herd == h)
  eta0 <- drop(X[rows, , drop = FALSE] %*% beta)
  f <- function(z) sapply(z, function(zz) prod(dbinom(cbpp$incidence[rows], cbpp$size[rows],
                                                       plogis(eta0 + sdh * zz))) * dnorm(zz))
  marg <- marg + log(integrate(f, -Inf, Inf, rel.tol = 1e-13, abs.tol = 0)$value)
}
save(describe(m25, "cbpp_agq25", list(marginal_logLik = marg)), "cbpp_agq25.json")
m0 <- tight_fit(cbpp_f, cbpp, binomial, nAGQ = 0L)
save(describe(m0, "cbpp_nagq0"), "cbpp_nagq0.json")

# ---------------------------------------------------------------- grouseticks: crossed / nested
gt <- grouseticks
write.csv(gt[, c("INDEX", "TICKS", "BROOD", "HEIGHT", "YEAR", "LOCATION")],
          file.path(out, "grouseticks.csv"), row.names = FALSE)
mg <- tight_fit(TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION),
                gt, poisson)
save(describe(mg, "grouseticks_poisson"), "grouseticks_poisson.json")

# ---------------------------------------------------------------- Contraception: probit and logit
ct <- Contraception
write.csv(ct[, c("district", "use", "livch", "age", "urban")],
          file.path(out, "contraception.csv"), row.names = FALSE)
cf <- use ~ age + I(age^2) + urban + livch + (1 | district)
save(describe(tight_fit(cf, ct, binomial(link = "probit")), "contraception_probit"),
     "contraception_probit.json")
save(describe(tight_fit(cf, ct, binomial(link = "logit")), "contraception_logit"),
     "contraception_logit.json")

# ---------------------------------------------------------------- simulated: random slopes, offset
set.seed(20260)
J <- 40; nj <- 30
g <- rep(sprintf("g%02d", 1:J), each = nj)
x <- rnorm(J * nj)
b0 <- rnorm(J, 0, 0.8); b1 <- rnorm(J, 0, 0.5)
gi <- rep(1:J, each = nj)
y <- rbinom(J * nj, 1, plogis(-0.4 + 0.9 * x + b0[gi] + b1[gi] * x))
slopes <- data.frame(g = g, x = x, y = y)
write.csv(slopes, file.path(out, "glmm_slopes.csv"), row.names = FALSE)
save(describe(tight_fit(y ~ x + (x | g), slopes, binomial), "slopes_binomial"),
     "slopes_binomial.json")

K <- 30
site <- rep(sprintf("s%02d", 1:K), each = 8)
exposure <- round(runif(K * 8, 0.5, 20), 2)
z <- rnorm(K * 8)
ki <- rep(1:K, each = 8)
count <- rpois(K * 8, exposure * exp(-1 + 0.3 * z + rnorm(K, 0, 0.6)[ki]))
rates <- data.frame(site = site, exposure = exposure, z = z, count = count)
write.csv(rates, file.path(out, "glmm_rates.csv"), row.names = FALSE)
save(describe(tight_fit(count ~ z + offset(log(exposure)) + (1 | site), rates, poisson),
              "rates_poisson"), "rates_poisson.json")
cat("done\n")

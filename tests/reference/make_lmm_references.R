# Reference fits for bayeshrink's general mixed models (covariates, correlated random slopes).
#
#   Rscript tests/reference/make_lmm_references.R   (from the repository root)
#
# Writes tests/reference/lmm_*.json and the simulated data sets tests/reference/lmm_sim_*.csv.
# The test suite only reads those files; it never runs R. Same tight bobyqa control as
# make_references.R, so the fits sit at the optimum to ~1e-8.
suppressPackageStartupMessages(library(lme4))
out <- "tests/reference"
ds <- "bayeshrink/datasets"
ctrl <- lmerControl(optimizer = "bobyqa",
                    optCtrl = list(rhobeg = 2e-4, rhoend = 2e-12, maxfun = 1e6))
# the simulated boundary fits are the point: do not let lme4 refuse or warn them away
ctrl_sing <- lmerControl(optimizer = "bobyqa",
                         optCtrl = list(rhobeg = 2e-4, rhoend = 2e-12, maxfun = 1e6),
                         check.conv.singular = "ignore")

num <- function(x) unname(as.numeric(x))
enc <- function(v) {
  if (is.null(v)) return("null")
  if (is.list(v)) {
    inner <- vapply(names(v), function(k) paste0('"', k, '": ', enc(v[[k]])), "")
    return(paste0("{", paste(inner, collapse = ", "), "}"))
  }
  if (is.character(v)) s <- paste0('"', v, '"')
  else if (is.logical(v)) s <- ifelse(v, "true", "false")
  else s <- ifelse(is.na(v), "null", formatC(v, digits = 17, format = "g"))
  if (length(v) == 1 && is.null(attr(v, "array"))) s else paste0("[", paste(s, collapse = ", "), "]")
}
arr <- function(v) { attr(v, "array") <- TRUE; v }
named <- function(x) { l <- as.list(num(x)); names(l) <- names(x); l }
per_term <- function(df, grp) {
  l <- lapply(colnames(df), function(k) arr(num(df[grp, k])))
  names(l) <- colnames(df)
  l
}

ref <- function(name, data, formula, REML = TRUE, control = ctrl) {
  m <- lmer(formula, data = data, REML = REML, control = control)
  # bobyqa stops where its trust region is below rhoend, which on a flat criterion can leave
  # theta ~1e-6 (relative) from the optimum; restarting it from there twice removes that.
  for (i in 1:2) m <- update(m, start = getME(m, "theta"))
  re <- ranef(m, condVar = TRUE)[[1]]
  pv <- attr(re, "postVar")
  grp <- rownames(re)
  # one array per random-effects term; several terms on one factor give a list of them
  if (!is.list(pv)) pv <- list(pv)
  sds <- do.call(cbind, lapply(pv, function(a) {
    s <- sqrt(apply(a, 3, diag)); if (is.null(dim(s))) matrix(s, ncol = 1) else t(s)
  }))
  sds <- as.data.frame(sds); colnames(sds) <- colnames(re); rownames(sds) <- grp
  vc <- as.data.frame(VarCorr(m))
  x <- list(
    name = name, formula = paste(deparse(formula), collapse = ""), REML = REML,
    fixef = named(fixef(m)), fixef_se = named(sqrt(diag(as.matrix(vcov(m))))),
    sigma = num(sigma(m)),
    cov_re = arr(num(as.matrix(Matrix::bdiag(VarCorr(m))))),
    cov_re_terms = arr(unlist(lapply(VarCorr(m), colnames), use.names = FALSE)),
    theta = arr(num(getME(m, "theta"))),
    logLik = num(logLik(m)), singular = isSingular(m),
    groups = arr(grp),
    ranef = per_term(re, grp), ranef_sd = per_term(sds, grp),
    coef = per_term(coef(m)[[1]], grp)
  )
  writeLines(enc(x), file.path(out, paste0(name, ".json")))
  cat(name, ": singular =", isSingular(m), " theta =", format(getME(m, "theta"), digits = 6), "\n")
  invisible(m)
}

sleep <- read.csv(file.path(ds, "sleepstudy.csv"), colClasses = c(Subject = "character"))
ref("lmm_sleepstudy_slopes_ML", sleep, Reaction ~ Days + (Days | Subject), REML = FALSE)
ref("lmm_sleepstudy_uncorrelated", sleep, Reaction ~ Days + (1 | Subject) + (0 + Days | Subject))
# a categorical covariate with a random effect (treatment coding), and a random-only term
sleep$phase <- ifelse(sleep$Days < 2, "baseline", "deprived")
ref("lmm_sleepstudy_phase", sleep, Reaction ~ phase + (phase | Subject))
ref("lmm_sleepstudy_random_only", sleep, Reaction ~ 1 + (Days | Subject))
# a polynomial term: lme4's I(Days^2) is bayeshrink's I(Days**2) or {Days**2}
ref("lmm_sleepstudy_quadratic", sleep, Reaction ~ Days + I(Days^2) + (Days | Subject))

radon <- read.csv(file.path(ds, "radon.csv"), colClasses = c(county = "character"))
for (R in c(TRUE, FALSE)) {
  tag <- if (R) "REML" else "ML"
  ref(paste0("lmm_radon_floor_", tag), radon, log_radon ~ floor + (1 | county), REML = R)
  ref(paste0("lmm_radon_uranium_", tag), radon, log_radon ~ floor + log_uranium + (1 | county), REML = R)
  ref(paste0("lmm_radon_slopes_", tag), radon, log_radon ~ floor + (1 + floor | county), REML = R)
}

# Simulated data whose REML fits sit on the boundary of the covariance space.
# (a) random slopes with true SD 0: the slope variance is estimated at 0;
# (b) slopes exactly proportional to intercepts (correlation 1): the estimate is |corr| = 1.
# (c) a random intercept, slope and a third term (x2) with 3 x 3 covariance, interior.
# For (a) and (b) the first seed from 1 whose fit is singular is used; the seed is recorded.
sim <- function(seed, J, n, sd_int, sd_slope, corr1 = FALSE) {
  set.seed(seed)
  g <- rep(sprintf("s%02d", seq_len(J)), each = n)
  x <- rep(seq(0, 1, length.out = n), J)
  u0 <- rnorm(J, 0, sd_int)
  u1 <- if (corr1) u0 * sd_slope / sd_int else rnorm(J, 0, sd_slope)
  y <- 2 + 0.5 * x + u0[as.integer(factor(g))] + u1[as.integer(factor(g))] * x + rnorm(J * n)
  data.frame(g = g, x = x, y = y)
}
pick <- function(name, J, n, sd_int, sd_slope, corr1) {
  for (seed in 1:200) {
    d <- sim(seed, J, n, sd_int, sd_slope, corr1)
    m <- lmer(y ~ x + (x | g), data = d, control = ctrl_sing)
    th <- getME(m, "theta")
    # want a clear boundary: a zero in the relative covariance factor's diagonal
    if (isSingular(m) && min(th[c(1, 3)]) == 0) {
      d$seed <- seed
      write.csv(d, file.path(out, paste0(name, ".csv")), row.names = FALSE)
      return(d)
    }
  }
  stop("no singular seed for ", name)
}
d_a <- pick("lmm_sim_zero_slope", J = 8, n = 6, sd_int = 1, sd_slope = 0, corr1 = FALSE)
ref("lmm_sim_zero_slope", d_a, y ~ x + (x | g), control = ctrl_sing)
d_b <- pick("lmm_sim_corr_one", J = 8, n = 6, sd_int = 1, sd_slope = 1, corr1 = TRUE)
ref("lmm_sim_corr_one", d_b, y ~ x + (x | g), control = ctrl_sing)

set.seed(20261125)
J <- 40; n <- 12
g <- rep(sprintf("s%02d", seq_len(J)), each = n)
x <- rnorm(J * n); x2 <- rnorm(J * n)
L <- matrix(c(1, 0, 0, 0.5, 0.8, 0, -0.3, 0.2, 0.6), 3, byrow = TRUE)
u <- matrix(rnorm(J * 3), J) %*% t(L)
gi <- as.integer(factor(g))
y <- 1 + 0.5 * x - 0.25 * x2 + u[gi, 1] + u[gi, 2] * x + u[gi, 3] * x2 + rnorm(J * n, 0, 0.7)
d_c <- data.frame(g = g, x = x, x2 = x2, y = y)
write.csv(d_c, file.path(out, "lmm_sim_three_terms.csv"), row.names = FALSE)
ref("lmm_sim_three_terms", d_c, y ~ x + x2 + (1 + x + x2 | g))
ref("lmm_sim_three_terms_ML", d_c, y ~ x + x2 + (1 + x + x2 | g), REML = FALSE)

# Three groups, 11 rows (found by a property test): started at Lambda = I, a gradient optimiser
# can stop at theta_22 = 0, where the criterion's derivative in it vanishes; the optimum is inside.
d_t <- data.frame(
  g = c(rep("g00", 4), rep("g01", 3), rep("g02", 4)),
  x = c(-0.263134, -0.236817, 1.118802, 0.133110, 0.358902, 0.005798, -0.898409, 0.171838,
        0.726194, 0.117237, -0.548014),
  y = c(-2.269727, -3.161859, -4.060425, -2.614036, 4.711420, 4.837553, 7.494871, -0.956348,
        -1.524577, -1.817902, -1.388801))
write.csv(d_t, file.path(out, "lmm_sim_tiny.csv"), row.names = FALSE)
ref("lmm_sim_tiny", d_t, y ~ x + (x | g), control = ctrl_sing)

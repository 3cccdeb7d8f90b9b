# Reference fits for mixed models with several grouping factors, crossed and nested.
#
#   Rscript tests/reference/make_multi_references.R   (from the repository root)
#
# Writes tests/reference/multi_*.json and the data they were fitted on (multi_*.csv, and the
# gzipped InstEval extract). Every fit reads its data back from the committed CSV, so the JSON
# describes exactly the file the tests read. The test suite never runs R.
#
# Control as make_lmm_references.R: bobyqa with rhoend 2e-12, restarted twice from lme4's own
# optimum. On a large data set the criterion is flat to rounding well before theta is settled
# (InstEval: bobyqa stops with theta_dept 5e-6 off, where the gradient is 1e-3), so the bobyqa
# optimum is then polished by Newton steps on lme4's own deviance function (central differences,
# steps of 1e-4, on the coordinates away from the boundary) and the fit is rebuilt at the
# polished theta with lme4's mkMerMod: every number below is lme4's at theta settled to ~1e-9.
# (The gradient is Richardson-extrapolated central differences of lme4's deviance function.)
# `theta_bobyqa` and `grad_bobyqa` / `grad` (the criterion's gradient before / after) are kept.
suppressPackageStartupMessages({
  library(lme4)
  library(mlmRev)
})
out <- "tests/reference"
ctrl <- lmerControl(optimizer = "bobyqa",
                    optCtrl = list(rhobeg = 2e-4, rhoend = 2e-12, maxfun = 1e6),
                    check.conv.singular = "ignore")

num <- function(x) unname(as.numeric(x))
enc <- function(v) {
  if (is.null(v)) return("null")
  if (is.list(v)) {
    if (is.null(names(v))) {
      return(paste0("[", paste(vapply(v, enc, ""), collapse = ", "), "]"))
    }
    inner <- vapply(names(v), function(k) paste0('"', k, '": ', enc(v[[k]])), "")
    return(paste0("{", paste(inner, collapse = ", "), "}"))
  }
  if (length(v) == 1 && is.na(v) && is.null(attr(v, "array"))) return("null")
  if (is.character(v)) s <- ifelse(is.na(v), "null", paste0('"', v, '"'))
  else if (is.logical(v)) s <- ifelse(v, "true", "false")
  else s <- ifelse(is.na(v), "null", trimws(formatC(v, digits = 17, format = "g")))
  if (length(v) == 1 && is.null(attr(v, "array"))) s else paste0("[", paste(s, collapse = ", "), "]")
}
arr <- function(v) { attr(v, "array") <- TRUE; v }
named <- function(x) { l <- as.list(num(x)); names(l) <- names(x); l }
per_term <- function(df) {
  l <- lapply(colnames(df), function(k) arr(num(df[[k]])))
  names(l) <- colnames(df)
  l
}

# conditional SDs of one factor's effects: level x term, from ranef(condVar = TRUE)'s postVar
cond_sd <- function(re) {
  pv <- attr(re, "postVar")
  if (!is.list(pv)) pv <- list(pv)  # several blocks on one factor give a list of arrays
  sds <- do.call(cbind, lapply(pv, function(a) {
    s <- sqrt(apply(a, 3, diag)); if (is.null(dim(s))) matrix(s, ncol = 1) else t(s)
  }))
  sds <- as.data.frame(sds); colnames(sds) <- colnames(re)
  sds
}

# central differences with one Richardson extrapolation (error O(h^4)), steps relative to theta
num_grad <- function(f, th, free) {
  g <- numeric(length(th))
  for (i in which(free)) {
    h <- 2e-3 * max(abs(th[i]), 0.05)
    d <- function(h) {
      e <- replace(numeric(length(th)), i, h)
      (f(th + e) - f(th - e)) / (2 * h)
    }
    g[i] <- (4 * d(h / 2) - d(h)) / 3
  }
  g
}
num_hess <- function(f, th, free, h = 1e-4) {
  k <- which(free)
  H <- matrix(0, length(k), length(k))
  for (a in seq_along(k)) for (b in seq_along(k)) {
    ea <- replace(numeric(length(th)), k[a], h); eb <- replace(numeric(length(th)), k[b], h)
    H[a, b] <- (f(th + ea + eb) - f(th + ea - eb) - f(th - ea + eb) + f(th - ea - eb)) / (4 * h^2)
  }
  (H + t(H)) / 2
}
polish <- function(m, formula, data, REML) {
  lf <- lFormula(formula, data = data, REML = REML)
  dfun <- do.call(mkLmerDevfun, lf)
  th0 <- getME(m, "theta")
  lower <- getME(m, "lower")
  free <- !(lower == 0 & th0 == 0)  # boundary coordinates stay at 0
  g0 <- num_grad(dfun, th0, free)
  th <- th0
  if (any(free) && min(th0[free & lower == 0], Inf) > 1e-3) {
    H <- num_hess(dfun, th, free)
    for (it in 1:5) {
      g <- num_grad(dfun, th, free)
      step <- -solve(H, g[free])
      trial <- th; trial[free] <- th[free] + step
      if (any(trial < lower) || dfun(trial) > dfun(th) + 1e-9 * abs(dfun(th))) break
      th <- trial
      if (max(abs(step)) < 1e-11) break
    }
  }
  g <- num_grad(dfun, th, free)
  v <- dfun(th)
  m2 <- mkMerMod(environment(dfun), opt = list(par = th, fval = v, conv = 0, message = ""),
                 lf$reTrms, fr = lf$fr)
  list(m = m2, theta_bobyqa = th0, grad_bobyqa = g0, grad = g)
}

ref <- function(name, data, formula, REML = TRUE) {
  t0 <- proc.time()[["elapsed"]]
  m <- lmer(formula, data = data, REML = REML, control = ctrl)
  # bobyqa stops where its trust region is below rhoend, which on a flat criterion can leave
  # theta ~1e-6 (relative) from the optimum; restarting it from there twice removes that.
  for (i in 1:2) m <- update(m, start = getME(m, "theta"))
  secs <- proc.time()[["elapsed"]] - t0
  pol <- polish(m, formula, data, REML)
  m <- pol$m
  re <- ranef(m, condVar = TRUE)
  cf <- coef(m)
  vc <- as.data.frame(VarCorr(m))
  varcorr <- lapply(seq_len(nrow(vc)), function(i) list(
    grp = vc$grp[i], var1 = vc$var1[i], var2 = vc$var2[i], vcov = vc$vcov[i], sdcor = vc$sdcor[i]))
  fac <- names(re)
  ranef_l <- lapply(fac, function(f) list(levels = arr(rownames(re[[f]])), values = per_term(re[[f]])))
  sd_l <- lapply(fac, function(f) list(levels = arr(rownames(re[[f]])), values = per_term(cond_sd(re[[f]]))))
  coef_l <- lapply(fac, function(f) list(levels = arr(rownames(cf[[f]])), values = per_term(cf[[f]])))
  names(ranef_l) <- names(sd_l) <- names(coef_l) <- fac
  x <- list(
    name = name, formula = paste(deparse(formula), collapse = ""), REML = REML,
    nobs = num(nobs(m)),
    factors = arr(fac),
    fixef = named(fixef(m)), fixef_se = named(sqrt(diag(as.matrix(vcov(m))))),
    sigma = num(sigma(m)),
    varcorr = varcorr,
    theta = arr(num(getME(m, "theta"))),
    theta_bobyqa = arr(num(pol$theta_bobyqa)),
    grad_bobyqa = arr(num(pol$grad_bobyqa)), grad = arr(num(pol$grad)),
    logLik = num(logLik(m)), REMLcrit = num(REMLcrit(m)), deviance_ML = num(-2 * logLik(m, REML = FALSE)),
    singular = isSingular(m),
    ranef = ranef_l, ranef_sd = sd_l, coef = coef_l,
    lme4_seconds = secs
  )
  writeLines(enc(x), file.path(out, paste0(name, ".json")))
  cat(name, ": singular =", isSingular(m), " theta =", format(getME(m, "theta"), digits = 6),
      " logLik =", format(num(logLik(m)), digits = 12), " (", round(secs, 1), "s)",
      " |grad| bobyqa", format(max(abs(pol$grad_bobyqa)), digits = 2), "polished",
      format(max(abs(pol$grad)), digits = 2), "\n")
  invisible(m)
}

chr <- function(path, cols) {
  cc <- rep("character", length(cols)); names(cc) <- cols
  read.csv(path, colClasses = cc)
}

# --- Penicillin: 24 plates x 6 samples, fully crossed ---------------------------------------
pen <- chr(file.path(out, "penicillin.csv"), c("plate", "sample"))
ref("multi_penicillin_REML", pen, diameter ~ 1 + (1 | plate) + (1 | sample))
ref("multi_penicillin_ML", pen, diameter ~ 1 + (1 | plate) + (1 | sample), REML = FALSE)

# --- Pastes: casks nested in batches (cask labels a, b, c repeat in every batch) -------------
pastes <- chr(file.path(out, "pastes.csv"), c("batch", "cask", "sample"))
ref("multi_pastes_nested_REML", pastes, strength ~ 1 + (1 | batch/cask))
ref("multi_pastes_nested_ML", pastes, strength ~ 1 + (1 | batch/cask), REML = FALSE)
ref("multi_pastes_interaction_REML", pastes, strength ~ 1 + (1 | batch) + (1 | batch:cask))

# --- Simulated subjects x items, crossed, unbalanced ----------------------------------------
# 60 subjects x 40 items, each pair observed with probability 0.8; x is a trial-level covariate
# centred far from 0 (mean 3) so the intercept-slope block is not orthogonal.
set.seed(20261126)
S <- 60; I <- 40
grid <- expand.grid(item = sprintf("i%02d", seq_len(I)), subj = sprintf("S%02d", seq_len(S)),
                    stringsAsFactors = FALSE)
grid <- grid[runif(nrow(grid)) < 0.8, c("subj", "item")]
n <- nrow(grid)
x <- rnorm(n, 3, 1)
Ls <- matrix(c(0.8, 0, -0.3, 0.35), 2, byrow = TRUE)  # subject (intercept, slope) factor
us <- matrix(rnorm(S * 2), S) %*% t(Ls)
ui <- rnorm(I, 0, 0.5)
si <- as.integer(factor(grid$subj)); ii <- as.integer(factor(grid$item))
y <- 1 + 0.4 * x + us[si, 1] + us[si, 2] * x + ui[ii] + rnorm(n, 0, 0.9)
crossed <- data.frame(subj = grid$subj, item = grid$item, x = round(x, 6), y = round(y, 6))
write.csv(crossed, file.path(out, "multi_sim_crossed.csv"), row.names = FALSE)
crossed <- chr(file.path(out, "multi_sim_crossed.csv"), c("subj", "item"))
ref("multi_sim_crossed_REML", crossed, y ~ x + (1 + x | subj) + (1 | item))
ref("multi_sim_crossed_ML", crossed, y ~ x + (1 + x | subj) + (1 | item), REML = FALSE)

# a vector-valued term on a factor that is not eliminated first (40 items < 60 subjects); the
# simulation has no item slopes, so lme4 puts that block on the boundary
ref("multi_sim_crossed_item_slopes_REML", crossed, y ~ x + (1 | subj) + (1 + x | item))
# several blocks on one factor next to a crossed factor
ref("multi_sim_crossed_blocks_REML", crossed, y ~ x + (1 | subj) + (0 + x | subj) + (1 | item))

# --- Near-boundary crossed simulations: tau / sigma 0.01-0.1 for every term. Only lme4's
# REML criterion at its optimum is kept; bayeshrink's must never be higher.
nb <- list()
nb_crit <- list()
for (k in 1:8) {
  set.seed(1000 + k)
  S <- 30; I <- 20
  g <- expand.grid(item = sprintf("i%02d", seq_len(I)), subj = sprintf("S%02d", seq_len(S)),
                   stringsAsFactors = FALSE)
  g <- g[runif(nrow(g)) < 0.7, c("subj", "item")]
  n <- nrow(g)
  ratio <- c(0.01, 0.03, 0.1)[(k - 1) %% 3 + 1]
  x <- rnorm(n)
  si <- as.integer(factor(g$subj)); ii <- as.integer(factor(g$item))
  y <- 2 + 0.5 * x + rnorm(S, 0, ratio)[si] + rnorm(S, 0, ratio)[si] * x +
    rnorm(I, 0, ratio)[ii] + rnorm(n)
  d <- data.frame(sim = k, subj = g$subj, item = g$item, x = round(x, 6), y = round(y, 6))
  nb[[k]] <- d
}
nb <- do.call(rbind, nb)
write.csv(nb, file.path(out, "multi_sim_near_boundary.csv"), row.names = FALSE)
nb <- chr(file.path(out, "multi_sim_near_boundary.csv"), c("subj", "item"))
for (k in 1:8) {
  d <- nb[nb$sim == k, ]
  m <- lmer(y ~ x + (1 + x | subj) + (1 | item), data = d, control = ctrl)
  for (i in 1:2) m <- update(m, start = getME(m, "theta"))
  nb_crit[[k]] <- list(sim = k, REMLcrit = REMLcrit(m), theta = arr(num(getME(m, "theta"))),
                       singular = isSingular(m))
}
writeLines(enc(list(formula = "y ~ x + (1 + x | subj) + (1 | item)", fits = nb_crit)),
           file.path(out, "multi_sim_near_boundary.json"))
cat("near-boundary: singular", vapply(nb_crit, function(v) v$singular, TRUE), "\n")

# --- Simulated three-level nesting: pupils in classes in schools ----------------------------
# Class labels c1..c4 repeat in every school, so (1 | school/class) and (1 | class) differ.
nest <- function(seed, n_school, sd_school, sd_class) {
  set.seed(seed)
  rows <- list()
  for (s in seq_len(n_school)) {
    n_class <- sample(2:4, 1)
    for (k in seq_len(n_class)) {
      rows[[length(rows) + 1]] <- data.frame(school = sprintf("S%02d", s), class = paste0("c", k),
                                             n = sample(4:12, 1))
    }
  }
  cl <- do.call(rbind, rows)
  cl$u_s <- rnorm(n_school, 0, sd_school)[as.integer(factor(cl$school))]
  cl$u_c <- rnorm(nrow(cl), 0, sd_class)
  d <- cl[rep(seq_len(nrow(cl)), cl$n), ]
  d$x <- round(rnorm(nrow(d), 50, 10), 4)
  d$y <- round(10 + 0.05 * d$x + d$u_s + d$u_c + rnorm(nrow(d), 0, 1), 6)
  d[, c("school", "class", "x", "y")]
}
d3 <- nest(7, n_school = 15, sd_school = 1, sd_class = 0.6)
write.csv(d3, file.path(out, "multi_sim_nested.csv"), row.names = FALSE)
d3 <- chr(file.path(out, "multi_sim_nested.csv"), c("school", "class"))
ref("multi_sim_nested_REML", d3, y ~ x + (1 | school/class))
ref("multi_sim_nested_ML", d3, y ~ x + (1 | school/class), REML = FALSE)
# a random slope on the outer factor: a vector term on a factor that is not eliminated first
# (43 classes x 1 term against 15 schools x 2), x centred at 50
ref("multi_sim_nested_school_slopes_REML", d3, y ~ x + (1 | school:class) + (1 + x | school))

# Singular: the school variance is 0 in truth; the first seed from 1 whose REML fit puts the
# school's theta at exactly 0 is kept (its seed is recorded in the CSV).
for (seed in 1:500) {
  ds <- nest(seed, n_school = 8, sd_school = 0, sd_class = 0.5)
  m <- lmer(y ~ x + (1 | school/class), data = ds, control = ctrl)
  th <- getME(m, "theta")
  if (isSingular(m) && th[2] == 0 && th[1] > 0.05) break
}
ds$seed <- seed
write.csv(ds, file.path(out, "multi_sim_nested_singular.csv"), row.names = FALSE)
ds <- chr(file.path(out, "multi_sim_nested_singular.csv"), c("school", "class"))
ref("multi_sim_nested_singular_REML", ds, y ~ x + (1 | school/class))

# --- mlmRev's ScotsSec: pupils cross-classified by primary and secondary school -------------
data(ScotsSec, package = "mlmRev")
scots <- data.frame(attain = ScotsSec$attain, verbal = ScotsSec$verbal,
                    sex = as.character(ScotsSec$sex),
                    primary = as.character(ScotsSec$primary),
                    second = as.character(ScotsSec$second))
write.csv(scots, file.path(out, "multi_scotssec.csv"), row.names = FALSE)
scots <- chr(file.path(out, "multi_scotssec.csv"), c("sex", "primary", "second"))
ref("multi_scotssec_REML", scots, attain ~ verbal + sex + (1 | primary) + (1 | second))

# --- lme4's InstEval (SKIP_INSTEVAL=1 leaves its files as they are: the fit takes minutes)
if (nzchar(Sys.getenv("SKIP_INSTEVAL"))) quit(save = "no")
# 73,421 ratings, students x lecturers crossed, 14 departments
data(InstEval, package = "lme4")
inst <- data.frame(y = InstEval$y, service = as.integer(as.character(InstEval$service)),
                   s = as.character(InstEval$s), d = as.character(InstEval$d),
                   dept = as.character(InstEval$dept))
zz <- gzfile(file.path(out, "insteval_tmp.csv.gz"), "w")
write.csv(inst, zz, row.names = FALSE)
close(zz)
invisible(file.rename(file.path(out, "insteval_tmp.csv.gz"), file.path(out, "multi_insteval.csv.gz")))
inst <- chr(file.path(out, "multi_insteval.csv.gz"), c("s", "d", "dept"))
ref("multi_insteval_REML", inst, y ~ service + (1 | s) + (1 | d) + (1 | dept))

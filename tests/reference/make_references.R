# Reference fits for bayeshrink's tests, made with R's lme4 and metafor.
#
#   Rscript tests/reference/make_references.R   (from the repository root)
#
# Writes tests/reference/*.json. The test suite only reads those files; it never runs R.
# lme4 fits use a tight bobyqa tolerance so that they sit at the optimum to ~1e-8, as the
# references in the shared reference folder do.
suppressPackageStartupMessages({
  library(lme4)
  library(metafor)
})
out <- "tests/reference"
ds <- "bayeshrink/datasets"
ctrl <- lmerControl(optimizer = "bobyqa",
                    optCtrl = list(rhobeg = 2e-4, rhoend = 2e-12, maxfun = 1e6))

num <- function(x) unname(as.numeric(x))
write_json <- function(x, file) {
  # minimal JSON writer (jsonlite may not be installed); numbers at 17 significant digits
  enc <- function(v) {
    if (is.null(v)) return("null")
    if (is.list(v)) {
      inner <- vapply(names(v), function(k) paste0('"', k, '": ', enc(v[[k]])), "")
      return(paste0("{", paste(inner, collapse = ", "), "}"))
    }
    if (is.character(v)) {
      s <- paste0('"', v, '"')
    } else if (is.logical(v)) {
      s <- ifelse(v, "true", "false")
    } else {
      s <- formatC(v, digits = 17, format = "g")
    }
    if (length(v) == 1 && is.null(attr(v, "array"))) s else paste0("[", paste(s, collapse = ", "), "]")
  }
  writeLines(enc(x), file.path(out, file))
}
arr <- function(v) { attr(v, "array") <- TRUE; v }

lmer_ref <- function(name, data, formula, REML, call) {
  m <- lmer(formula, data = data, REML = REML, control = ctrl)
  vc <- as.data.frame(VarCorr(m))
  re <- ranef(m, condVar = TRUE)[[1]]
  pv <- attr(re, "postVar")
  grp <- rownames(re)
  list(
    name = name, call = call, REML = REML,
    mu = num(fixef(m)[1]), mu_se = num(sqrt(diag(vcov(m)))[1]),
    tau = num(vc$sdcor[1]), sigma = num(sigma(m)),
    logLik = num(logLik(m)), singular = isSingular(m),
    groups = arr(grp),
    blup = arr(num(coef(m)[[1]][grp, 1])),
    cond_sd = arr(num(sqrt(pv[1, 1, ])))
  )
}

demo <- read.csv(file.path(ds, "seed_demo.csv"), colClasses = c(model = "character"))
for (mm in c("1", "2", "3", "1b")) {
  d <- demo[demo$model == mm, ]
  write_json(lmer_ref(paste0("seed_demo_model", mm, "_ML"), d, y ~ (1 | group), FALSE,
                      sprintf("lmer(y ~ (1 | group), data = seed_demo[model == '%s', ], REML = FALSE)", mm)),
             paste0("seed_demo_model", mm, "_ML.json"))
}
for (nm in c("dyestuff", "dyestuff2")) {
  d <- read.csv(file.path(ds, paste0(nm, ".csv")))
  for (reml in c(TRUE, FALSE)) {
    tag <- if (reml) "REML" else "ML"
    write_json(lmer_ref(paste0(nm, "_", tag), d, Yield ~ (1 | Batch), reml,
                        sprintf("lmer(Yield ~ (1 | Batch), data = %s, REML = %s)", nm, reml)),
               paste0(nm, "_", tag, ".json"))
  }
}
radon <- read.csv(file.path(ds, "radon.csv"))
for (reml in c(TRUE, FALSE)) {
  tag <- if (reml) "REML" else "ML"
  write_json(lmer_ref(paste0("radon_intercept_", tag), radon, log_radon ~ (1 | county), reml,
                      sprintf("lmer(log_radon ~ (1 | county), data = radon, REML = %s)", reml)),
             paste0("radon_intercept_", tag, ".json"))
}

# Summary data with tau > 0: Efron-Morris batting averages with binomial standard errors at
# the pooled average, and a simulated unbalanced meta-analysis.
rma_ref <- function(name, yi, sei, groups, method, call) {
  m <- rma(yi = yi, sei = sei, method = method,
           control = list(threshold = 1e-12, maxiter = 10000, tau2.min = 0))
  b <- blup(m)
  list(name = name, call = call, method = method,
       mu = num(m$b), mu_se = num(m$se), tau2 = num(m$tau2), logLik = num(logLik(m)),
       groups = arr(groups), blup = arr(num(b$pred)), blup_se = arr(num(b$se)))
}
em <- read.csv(file.path(ds, "efron_morris.csv"))
pbar <- mean(em$y)
em_se <- rep(sqrt(pbar * (1 - pbar) / 45), nrow(em))
set.seed(20261125)
k <- 12
sim_se <- round(runif(k, 0.5, 3), 3)
sim_y <- round(rnorm(k, 2, sqrt(3^2 + sim_se^2)), 4)
sim_lab <- sprintf("s%02d", seq_len(k))
write.csv(data.frame(study = sim_lab, y = sim_y, se = sim_se),
          file.path(out, "sim_meta.csv"), row.names = FALSE)
for (method in c("REML", "ML", "DL")) {
  write_json(rma_ref(paste0("efron_morris_", method), em$y, em_se, em$name, method,
                     sprintf("rma(yi = y, sei = sqrt(pbar * (1 - pbar) / 45), method = '%s'); blup()", method)),
             paste0("efron_morris_", method, ".json"))
  write_json(rma_ref(paste0("sim_meta_", method), sim_y, sim_se, sim_lab, method,
                     sprintf("rma(yi = y, sei = se, data = sim_meta, method = '%s'); blup()", method)),
             paste0("sim_meta_", method, ".json"))
}
cat("wrote references to", out, "\n")

# References for lme4's everyday API after a fit: predict, AIC/BIC/logLik/deviance, anova, confint.
#
#   Rscript tests/reference/make_api_references.R   (from the repository root)
#
# Writes tests/reference/api_*.json. The test suite only reads those files; it never runs R.
# Same tight bobyqa control as make_lmm_references.R, so the fits sit at the optimum to ~1e-8;
# profile() and confint(method = "profile") refit with that control too.
suppressPackageStartupMessages(library(lme4))
out <- "tests/reference"
ds <- "bayeshrink/datasets"
ctrl <- lmerControl(optimizer = "bobyqa",
                    optCtrl = list(rhobeg = 2e-4, rhoend = 2e-12, maxfun = 1e6))

num <- function(x) unname(as.numeric(x))
enc <- function(v) {
  if (is.null(v)) return("null")
  if (is.list(v)) {
    inner <- vapply(names(v), function(k) paste0('"', k, '": ', enc(v[[k]])), "")
    return(paste0("{", paste(inner, collapse = ", "), "}"))
  }
  if (is.character(v)) s <- paste0('"', v, '"')
  else if (is.logical(v) && all(is.na(v))) s <- rep("null", length(v))
  else if (is.logical(v)) s <- ifelse(v, "true", "false")
  else s <- ifelse(is.na(v), "null", formatC(v, digits = 17, format = "g"))
  if (length(v) == 1 && is.null(attr(v, "array"))) s else paste0("[", paste(s, collapse = ", "), "]")
}
arr <- function(v) { attr(v, "array") <- TRUE; v }
# a confint matrix as {parameter: [lower, upper]} (NA -> null)
ci <- function(m) {
  l <- lapply(seq_len(nrow(m)), function(i) arr(num(m[i, ])))
  names(l) <- rownames(m)
  l
}
tight <- function(m) {
  # bobyqa stops where its trust region is below rhoend; two restarts from there remove the rest
  for (i in 1:2) m <- update(m, start = getME(m, "theta"))
  m
}

sleep <- read.csv(file.path(ds, "sleepstudy.csv"), colClasses = c(Subject = "character"))
sleep$phase <- ifelse(sleep$Days < 2, "baseline", "deprived")
# new rows: two observed subjects at whole and fractional days, and a subject never observed
newdata <- data.frame(
  Subject = c("308", "308", "309", "372", "new", "new", "new"),
  Days = c(0, 4.5, 9, 12, 0, 3, 9)
)
newdata$phase <- ifelse(newdata$Days < 2, "baseline", "deprived")

models <- list(
  slopes = Reaction ~ Days + (Days | Subject),
  intercepts = Reaction ~ Days + (1 | Subject),
  oneway = Reaction ~ 1 + (1 | Subject),
  # a categorical covariate and a transformation: new rows must be encoded as the fit's rows
  phase_log = Reaction ~ phase + log(Days + 1) + (1 | Subject)
)
fits <- list()
for (name in names(models)) {
  for (REML in c(TRUE, FALSE)) {
    tag <- if (REML) "REML" else "ML"
    m <- tight(lmer(models[[name]], data = sleep, REML = REML, control = ctrl))
    fits[[paste(name, tag, sep = "_")]] <- m
    ll <- logLik(m)
    # lme4 1.1-31: deviance() of a REML fit warns that it is deprecated and returns REMLcrit(m)
    dev <- suppressWarnings(num(deviance(m)))
    x <- list(
      name = name, formula = paste(deparse(models[[name]]), collapse = ""), REML = REML,
      theta = arr(num(getME(m, "theta"))),
      logLik = num(ll), df = num(attr(ll, "df")), nobs = num(nobs(m)),
      AIC = num(AIC(m)), BIC = num(BIC(m)),
      deviance = dev,
      REMLcrit = if (REML) num(REMLcrit(m)) else NA_real_,
      deviance_ML = num(deviance(m, REML = FALSE)),
      fitted = arr(num(predict(m))),
      newdata_subject = arr(newdata$Subject), newdata_days = arr(newdata$Days),
      predict_new = arr(num(predict(m, newdata = newdata, allow.new.levels = TRUE))),
      predict_population = arr(num(predict(m, newdata = newdata, re.form = NA))),
      confint_wald = ci(confint(m, method = "Wald", oldNames = FALSE)),
      confint_wald_90 = ci(confint(m, method = "Wald", level = 0.9, oldNames = FALSE)),
      confint_profile = ci(confint(m, method = "profile", oldNames = FALSE))
    )
    if (name == "slopes" && REML) {
      x$confint_profile_90 <- ci(confint(m, method = "profile", level = 0.9, oldNames = FALSE))
    }
    writeLines(enc(x), file.path(out, paste0("api_sleepstudy_", name, "_", tag, ".json")))
    cat(name, tag, ": deviance() =", format(dev), " REMLcrit =", format(x$REMLcrit), "\n")
  }
}

# anova(): REML fits are refitted by ML (refit = TRUE, lme4's default)
av <- function(...) {
  a <- anova(...)
  list(models = arr(rownames(a)), npar = arr(num(a$npar)), AIC = arr(num(a$AIC)),
       BIC = arr(num(a$BIC)), logLik = arr(num(a$logLik)), deviance = arr(num(a$deviance)),
       Chisq = arr(num(a$Chisq)), Df = arr(num(a$Df)), p = arr(num(a[["Pr(>Chisq)"]])))
}
x <- list(
  intercepts_slopes_REML = av(fits$intercepts_REML, fits$slopes_REML),
  intercepts_slopes_ML = av(fits$intercepts_ML, fits$slopes_ML),
  oneway_intercepts_slopes_REML = av(fits$oneway_REML, fits$intercepts_REML, fits$slopes_REML)
)
writeLines(enc(x), file.path(out, "api_sleepstudy_anova.json"))

# A boundary fit: Dyestuff2's batch SD is estimated at 0; its profile interval starts at 0.
dye2 <- read.csv(file.path(ds, "dyestuff2.csv"), colClasses = c(Batch = "character"))
for (REML in c(TRUE, FALSE)) {
  tag <- if (REML) "REML" else "ML"
  m <- lmer(Yield ~ 1 + (1 | Batch), data = dye2, REML = REML, control = ctrl)
  x <- list(
    name = "dyestuff2", REML = REML, singular = isSingular(m),
    logLik = num(logLik(m)), AIC = num(AIC(m)), BIC = num(BIC(m)),
    confint_wald = ci(confint(m, method = "Wald", oldNames = FALSE)),
    confint_profile = ci(confint(m, method = "profile", oldNames = FALSE))
  )
  writeLines(enc(x), file.path(out, paste0("api_dyestuff2_", tag, ".json")))
}
cat(format(packageVersion("lme4")), "\n")

# Summary data (metafor): fitstats() of rma() on the eight schools, REML and ML
suppressPackageStartupMessages(library(metafor))
schools <- read.csv(file.path(ds, "eight_schools.csv"))
x <- list()
for (m in c("REML", "ML")) {
  r <- rma(yi = schools$y, sei = schools$sigma, method = m)
  fs <- fitstats(r)
  x[[m]] <- list(logLik = num(fs["logLik:", 1]), AIC = num(fs["AIC:", 1]),
                 BIC = num(fs["BIC:", 1]), parms = num(r$parms))
}
writeLines(enc(x), file.path(out, "api_eight_schools_fitstats.json"))

# A 3 x 3 random-effects covariance (simulated data of make_lmm_references.R): profile intervals
d3 <- read.csv(file.path(out, "lmm_sim_three_terms.csv"), colClasses = c(g = "character"))
m3 <- tight(lmer(y ~ x + x2 + (1 + x + x2 | g), data = d3, REML = TRUE, control = ctrl))
x <- list(confint_profile = ci(confint(m3, method = "profile", oldNames = FALSE)),
          confint_wald = ci(confint(m3, method = "Wald", oldNames = FALSE)),
          AIC = num(AIC(m3)), BIC = num(BIC(m3)))
writeLines(enc(x), file.path(out, "api_sim_three_terms_REML.json"))

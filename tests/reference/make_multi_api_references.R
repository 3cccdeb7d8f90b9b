# References for lme4's everyday API on models with several grouping factors: predict (observed
# and new levels of each factor, population level), AIC/BIC/logLik, anova between nested crossed
# models, and confint (Wald and profile).
#
#   Rscript tests/reference/make_multi_api_references.R   (from the repository root)
#
# Writes tests/reference/api_multi_*.json from the data files written by
# make_multi_references.R (penicillin.csv, multi_sim_crossed.csv). The test suite never runs R.
# Same tight bobyqa control as make_api_references.R (two restarts from lme4's own optimum);
# profile() and confint(method = "profile") refit with that control too.
suppressPackageStartupMessages(library(lme4))
out <- "tests/reference"
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
ci <- function(m) {
  l <- lapply(seq_len(nrow(m)), function(i) arr(num(m[i, ])))
  names(l) <- rownames(m)
  l
}
tight <- function(m) {
  for (i in 1:2) m <- update(m, start = getME(m, "theta"))
  m
}
chr <- function(path, cols) {
  cc <- rep("character", length(cols)); names(cc) <- cols
  read.csv(path, colClasses = cc)
}
av <- function(...) {
  a <- anova(...)
  list(models = arr(rownames(a)), npar = arr(num(a$npar)), AIC = arr(num(a$AIC)),
       BIC = arr(num(a$BIC)), logLik = arr(num(a$logLik)), deviance = arr(num(a$deviance)),
       Chisq = arr(num(a$Chisq)), Df = arr(num(a$Df)), p = arr(num(a[["Pr(>Chisq)"]])))
}
newcols <- function(newdata) {
  l <- lapply(newdata, function(v) arr(v))
  names(l) <- paste0("newdata_", names(newdata))
  l
}
basic <- function(m, name, formula, REML, newdata) {
  ll <- logLik(m)
  c(list(
    name = name, formula = paste(deparse(formula), collapse = ""), REML = REML,
    theta = arr(num(getME(m, "theta"))),
    logLik = num(ll), df = num(attr(ll, "df")), nobs = num(nobs(m)),
    AIC = num(AIC(m)), BIC = num(BIC(m)),
    deviance_ML = num(deviance(m, REML = FALSE)),
    fitted = arr(num(predict(m))),
    predict_new = arr(num(predict(m, newdata = newdata, allow.new.levels = TRUE))),
    predict_population = arr(num(predict(m, newdata = newdata, re.form = NA))),
    confint_wald = ci(confint(m, method = "Wald", oldNames = FALSE))
  ), newcols(newdata))
}

# --- Penicillin: diameter ~ 1 + (1 | plate) + (1 | sample) ---------------------------------
pen <- chr(file.path(out, "penicillin.csv"), c("plate", "sample"))
# observed plate and sample; a new plate with an observed sample; an observed plate with a new
# sample; both new
pen_new <- data.frame(plate = c("a", "x", "new", "b", "new"),
                      sample = c("A", "F", "C", "new", "new"), stringsAsFactors = FALSE)
f1 <- diameter ~ 1 + (1 | plate) + (1 | sample)
f0 <- diameter ~ 1 + (1 | plate)
fits <- list()
for (REML in c(TRUE, FALSE)) {
  tag <- if (REML) "REML" else "ML"
  m <- tight(lmer(f1, data = pen, REML = REML, control = ctrl))
  m0 <- tight(lmer(f0, data = pen, REML = REML, control = ctrl))
  x <- basic(m, "penicillin", f1, REML, pen_new)
  x$confint_profile <- ci(confint(m, method = "profile", oldNames = FALSE))
  x$anova <- av(m0, m)
  writeLines(enc(x), file.path(out, paste0("api_multi_penicillin_", tag, ".json")))
  cat("penicillin", tag, "done\n")
}

# --- Crossed subjects x items: y ~ x + (1 + x | subj) + (1 | item) ---------------------------
crossed <- chr(file.path(out, "multi_sim_crossed.csv"), c("subj", "item"))
cr_new <- data.frame(subj = c("S01", "S17", "new", "S05", "new"),
                     item = c("i01", "i22", "i03", "new", "new"),
                     x = c(3.1, 0.5, 2.2, 4.75, 3), stringsAsFactors = FALSE)
g1 <- y ~ x + (1 + x | subj) + (1 | item)
g0 <- y ~ x + (1 + x | subj)
for (REML in c(TRUE, FALSE)) {
  tag <- if (REML) "REML" else "ML"
  m <- tight(lmer(g1, data = crossed, REML = REML, control = ctrl))
  m0 <- tight(lmer(g0, data = crossed, REML = REML, control = ctrl))
  x <- basic(m, "sim_crossed", g1, REML, cr_new)
  # profile intervals for an unstructured 2 x 2 block next to a crossed factor (REML fit only)
  if (REML) x$confint_profile <- ci(confint(m, method = "profile", oldNames = FALSE))
  x$anova <- av(m0, m)
  writeLines(enc(x), file.path(out, paste0("api_multi_sim_crossed_", tag, ".json")))
  cat("sim_crossed", tag, "done\n")
}
cat(format(packageVersion("lme4")), "\n")

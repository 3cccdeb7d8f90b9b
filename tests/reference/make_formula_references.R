# References for the formula layer: categorical coding (a non-alphabetical reference level and
# contr.sum) and offset(), on R's ChickWeight (weights of 50 chicks on 4 diets over 21 days).
#
#   Rscript tests/reference/make_formula_references.R   (from the repository root)
#
# Writes tests/reference/chickweight.csv (the data, Chick as text) and
# tests/reference/formula_chickweight.json. The suite only reads those files; it never runs R.
suppressPackageStartupMessages(library(lme4))
out <- "tests/reference"
ctrl <- lmerControl(optimizer = "bobyqa",
                    optCtrl = list(rhobeg = 2e-4, rhoend = 2e-12, maxfun = 1e6))
num <- function(x) unname(as.numeric(x))
enc <- function(v) {
  if (is.list(v)) {
    inner <- vapply(names(v), function(k) paste0('"', k, '": ', enc(v[[k]])), "")
    return(paste0("{", paste(inner, collapse = ", "), "}"))
  }
  if (is.character(v)) s <- paste0('"', v, '"')
  else s <- formatC(v, digits = 17, format = "g")
  if (length(v) == 1 && is.null(attr(v, "array"))) s else paste0("[", paste(s, collapse = ", "), "]")
}
arr <- function(v) { attr(v, "array") <- TRUE; v }
tight <- function(m) {
  for (i in 1:2) m <- update(m, start = getME(m, "theta"))
  m
}
cw <- data.frame(weight = as.numeric(ChickWeight$weight), Time = as.numeric(ChickWeight$Time),
                 Chick = as.character(ChickWeight$Chick), Diet = as.character(ChickWeight$Diet))
write.csv(cw, file.path(out, "chickweight.csv"), row.names = FALSE)

summ <- function(m) {
  fe <- fixef(m)
  re <- ranef(m)$Chick
  vc <- as.data.frame(VarCorr(m))
  list(
    fixef_names = arr(names(fe)), fixef = arr(num(fe)), se = arr(num(sqrt(diag(vcov(m))))),
    loglik = num(logLik(m)), sd_chick = num(vc$sdcor[1]), sigma = num(sigma(m)),
    ranef_levels = arr(rownames(re)), ranef = arr(num(re[, 1])),
    fitted_head = arr(num(fitted(m)[1:5]))
  )
}
# the reference level is diet 3, not the alphabetically first
cw3 <- transform(cw, Diet = relevel(factor(Diet), ref = "3"))
m_ref3 <- tight(lmer(weight ~ Time + Diet + (1 | Chick), cw3, REML = TRUE, control = ctrl))
# sum-to-zero coding: columns Diet1..Diet3, diet 4 coded -1
cwf <- transform(cw, Diet = factor(Diet))
m_sum <- tight(lmer(weight ~ Time + Diet + (1 | Chick), cwf, REML = TRUE, control = ctrl,
                    contrasts = list(Diet = "contr.sum")))
# an offset with coefficient 1, and two offsets that add
m_off <- tight(lmer(weight ~ Diet + offset(log(Time + 1)) + (1 | Chick), cwf, REML = TRUE,
                    control = ctrl))
m_off2 <- tight(lmer(weight ~ Diet + offset(Time) + offset(log(Time + 1)) + (1 | Chick), cwf,
                     REML = TRUE, control = ctrl))
res <- list(
  R = paste(R.version$major, R.version$minor, sep = "."),
  lme4 = as.character(packageVersion("lme4")),
  ref3 = summ(m_ref3), sum = summ(m_sum), offset = summ(m_off), offset2 = summ(m_off2)
)
writeLines(enc(res), file.path(out, "formula_chickweight.json"))

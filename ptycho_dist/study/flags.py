"""Quality flags of an ok scenario: names, meanings and rules (no dependencies: the light
commands show them).
"""

from __future__ import annotations

__all__ = [
           "FLAG_MEANINGS",
           "FLAG_RULES",
           "LEARN_MIN_GAIN",
           "LEARN_MIN_SCORE",
           "LEARN_SE_FACTOR",
           "SCALE_COLLAPSE",
           "UNSCANNED_BELOW",
]

#: quality-flag thresholds (README "Quality flags"): a trained model whose patch score (the Pearson
#: r of predicted vs true amplitude over the illuminated central windows of up to 128 training groups,
#: :func:`ptycho_dist.evaluation.patch_scores`; the train diagnostics ``patch_score_*``) gains less than
#: max(LEARN_SE_FACTOR x its standard error, LEARN_MIN_GAIN) over the untrained network's, or stays
#: below LEARN_MIN_SCORE, learned nothing; a scan covering less than UNSCANNED_BELOW of the object
#: leaves it mostly unscanned; an intensity scale that ends below SCALE_COLLAPSE x its start collapsed
LEARN_SE_FACTOR, LEARN_MIN_GAIN, LEARN_MIN_SCORE = 2.0, 0.01, 0.05
UNSCANNED_BELOW = 0.5
SCALE_COLLAPSE = 1e-2
FLAG_MEANINGS = {
    "learned_nothing": "the trained model's patch-level structure score is within noise of the untrained "
                       "network's, or of 0",
    "mostly_unscanned": "the scan covers less than half of the object",
    "scale_collapsed": "the intensity scale collapsed while the loss stayed finite",
}
FLAG_RULES = {
    "learned_nothing": f"patch_score_trained - patch_score_untrained < max({LEARN_SE_FACTOR:g} x "
                       f"patch_score_gain_se, {LEARN_MIN_GAIN:g}), or patch_score_trained < {LEARN_MIN_SCORE:g}",
    "mostly_unscanned": f"scanned_fraction < {UNSCANNED_BELOW:g} on a dataset",
    "scale_collapsed": f"exp(train_log_scale - initial_log_scale) < {SCALE_COLLAPSE:g} with a finite loss",
}



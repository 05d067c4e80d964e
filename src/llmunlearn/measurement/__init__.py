"""Measurement: perplexity and the metric registry (:mod:`.metrics`), membership
inference attacks, their AUC, TPR at low FPR and intervals over documents (:mod:`.mia`).
"""

"""Unlearning: the methods, one file each (:mod:`.methods`), and the runner that
applies one to an original model and selects its step (:mod:`.runner`).
"""

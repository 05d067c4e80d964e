"""Reporting: tidy tables (:mod:`.results`), figures (:mod:`.plotting`), and the book
build with its glue and downloads (:mod:`.book`).
"""

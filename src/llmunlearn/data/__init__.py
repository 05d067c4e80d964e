"""The data layer: real text from the registries (:mod:`.sources`) and the corpus
built from it: documents, splits under each design, chunks, the manifest (:mod:`.corpus`).
"""

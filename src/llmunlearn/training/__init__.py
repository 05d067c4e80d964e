"""Training: the loop on accelerate (:mod:`.loop`), SophiaG (:mod:`.optim`), where
runs execute (:mod:`.executor`), and the zoo of pre-trained models (:mod:`.pretraining`).
"""

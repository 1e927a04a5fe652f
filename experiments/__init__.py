"""Specs linking each theoretical prediction to its empirical table, the papers' tables as data,
our own results, and the claims ledger that joins them."""

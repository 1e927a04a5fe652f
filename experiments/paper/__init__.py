"""The papers' tables as data (one CSV per table, indexed by tables.toml) and their arithmetic checks."""

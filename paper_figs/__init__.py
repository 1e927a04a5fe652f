"""Scripts that regenerate the papers' figures and tables from the paper's numbers and our runs."""

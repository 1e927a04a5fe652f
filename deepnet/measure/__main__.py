"""``python -m deepnet.measure --help``."""
from deepnet.measure.cli import main

main()

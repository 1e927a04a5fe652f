"""``python -m deepnet.measure --help``."""
import sys

from deepnet.measure.cli import main

sys.exit(main())

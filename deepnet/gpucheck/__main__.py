"""``python -m deepnet.gpucheck --help``."""
import sys

from deepnet.gpucheck.cli import main

sys.exit(main())

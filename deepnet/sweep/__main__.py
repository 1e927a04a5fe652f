"""``python -m deepnet.sweep {sweep,collect} ...`` (the same commands as ``python -m deepnet``)."""
import sys

from deepnet.sweep.cli import main

sys.exit(main())

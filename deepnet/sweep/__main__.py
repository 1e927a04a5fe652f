"""``python -m deepnet.sweep {sweep,collect} ...`` (the same commands as ``python -m deepnet``)."""
import sys

from common.shutdown import freeze_at_exit
from deepnet.sweep.cli import main

freeze_at_exit()
sys.exit(main())

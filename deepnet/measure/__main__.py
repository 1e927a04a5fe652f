"""``python -m deepnet.measure --help``."""
import sys

from common.shutdown import freeze_at_exit
from deepnet.measure.cli import main

freeze_at_exit()
sys.exit(main())

"""`python -m torch2mcu ...`: the same as the torch2mcu command."""
import sys

from torch2mcu.cli import main

sys.exit(main())

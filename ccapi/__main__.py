import sys

from ccapi.cli import main

sys.exit(main())

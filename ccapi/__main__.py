import sys

from ccapi.daemon.cli import main

sys.exit(main())

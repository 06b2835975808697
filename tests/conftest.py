import os
import sys

# Test helpers (simulator, contract suites) are imported as plain modules.
sys.path.insert(0, os.path.dirname(__file__))

"""Make the in-memory frame generator (synth.py) importable by the face tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

#!/usr/bin/env python
"""The quality study at scale (issue 14), resumable: see analysis/study.py or `--help`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.study import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

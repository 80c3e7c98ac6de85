#!/usr/bin/env python3
"""Readiness probe for a restored sample app: exits 0 once its status file says it runs restored."""
import json
import sys

try:
    with open(sys.argv[1]) as f:
        sys.exit(0 if json.load(f).get("phase") == "restored" else 1)
except (OSError, ValueError, IndexError):
    sys.exit(1)

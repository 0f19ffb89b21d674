import os
from pathlib import Path

# compiled models are cached per checkout, so the suite compiles once
os.environ.setdefault("CARTSIM_CACHE", str(Path(__file__).resolve().parents[1] / ".cartsim-cache"))

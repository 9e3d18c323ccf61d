"""``python -m rewardkit.cli VERB ...`` (what ``accelerate launch -m rewardkit.cli train ...`` runs)."""
import sys

from .main import main

sys.exit(main())

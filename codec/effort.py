"""Encoder effort: latent refinement steps per tile (:mod:`lqz.nn.refine`).

Kept free of torch so that the CLI can show and check it without loading the model.
"""

from __future__ import annotations

#: Steps when none are asked for. 0 is the fastest encode (the analysis transform's tokens);
#: each step costs about one synthesis forward and backward pass. Chosen on held-out training
#: crops (``models/MODEL_CARD.md``); the decoder does not depend on it.
DEFAULT_EFFORT = 3
MAX_EFFORT = 100

"""Average the weights of checkpoints fine-tuned from one another (a model soup; Wortsman et al., ICML 2022).

    python3 scripts/average_checkpoints.py OUT.safetensors A.safetensors B.safetensors [...]

All checkpoints must share the architecture; float tensors are averaged uniformly, integer ones
(batch-norm counters) taken from the last; the input normalisation (mean/std, which fine-tuning may
have re-measured) is the last checkpoint's and must lie within 5 % of every other's. The metadata is the
last checkpoint's, with ``info.weight_average`` naming the sources.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

from geocd.checkpoint import NORMALISATION, load_checkpoint, save_checkpoint

NORMALISATION_TOLERANCE = 0.05


def main(out: str, *sources: str) -> None:
    loaded = [load_checkpoint(s) for s in sources]
    last = loaded[-1]
    states = [m.model.state_dict() for m in loaded]
    for m, state in zip(loaded, states):
        for name in NORMALISATION:
            if not torch.allclose(state[name], states[-1][name], rtol=NORMALISATION_TOLERANCE):
                raise SystemExit(f"{m.path}: {name} {state[name].flatten().tolist()} differs from the last checkpoint's")
    averaged = {name: torch.stack([s[name] for s in states]).mean(0)
                if tensor.is_floating_point() and name not in NORMALISATION else tensor
                for name, tensor in states[-1].items()}
    last.model.load_state_dict(averaged)
    info = {**last.metadata.info, "weight_average": [str(Path(s)) for s in sources]}
    save_checkpoint(out, last.model, replace(last.metadata, info=info))
    print(f"{out}: average of {len(sources)} checkpoints")


if __name__ == "__main__":
    main(*sys.argv[1:])

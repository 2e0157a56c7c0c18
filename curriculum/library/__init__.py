"""The course's library: plumbing the days import (plotly figures, batched activation patching and pruning, fast
causal scrubbing), never an exercise's answer."""

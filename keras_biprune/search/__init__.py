"""The searches: bi-level co-evolution (CEMBA), one-shot NSGA-II, blended criteria.

This is the only package that imports PyGAD. Searches never build Keras
models: they hand plans to a `keras_biprune.Evaluator`.

Example:

```python
import keras_biprune as kb
evaluator = kb.Evaluator(model, (x_val, y_val))
result = kb.search.BiLevelSearch(evaluator, target=0.5, max_accuracy_drop=None).run()
front = kb.search.NSGA2Search(evaluator, max_accuracy_drop=0.05).run().front
```
"""

from keras_biprune.errors import SearchError
from keras_biprune.search.base import Search, SearchResult
from keras_biprune.search.bilevel import BiLevelSearch
from keras_biprune.search.blend_calibration import calibrate_blend
from keras_biprune.search.front import ParetoFront, Solution
from keras_biprune.search.nsga2 import NSGA2Search
from keras_biprune.search.objective import Objective
from keras_biprune.search.space import Budget, LowerEncoding, UpperEncoding

__all__ = [
    "BiLevelSearch",
    "Budget",
    "LowerEncoding",
    "NSGA2Search",
    "Objective",
    "ParetoFront",
    "Search",
    "SearchError",
    "SearchResult",
    "Solution",
    "UpperEncoding",
    "calibrate_blend",
]

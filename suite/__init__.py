"""suite: benchmark and compress neural networks.

Importing this package is cheap on purpose: torch, scikit-learn and plotly are imported
only by the plugins and stages that need them.
"""

__version__ = "0.1.0"

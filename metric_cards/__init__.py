"""Metric cards: the prompt catalog, reward and tooling behind MetricCardEnv."""

__version__ = "1.0.0"

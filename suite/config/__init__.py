"""Reading and checking a scenario: the configuration layer, which imports nothing of the engine."""

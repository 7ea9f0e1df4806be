"""The torch code of the reference models. Kept apart from the registration files in models/ so
that listing models and validating scenarios never imports torch."""

"""A runtime module without the class its model-settings.json names."""

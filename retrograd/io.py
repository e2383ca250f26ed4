"""Save and load state dicts as safetensors, atomically."""

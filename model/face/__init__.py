"""The face model package: the model file and its graph ops, the UV layout, the builder library."""

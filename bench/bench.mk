bench-build:

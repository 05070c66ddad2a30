"""tinyedge benchmarks: ``python -m benchmarks --out results.json`` (see README.md, "Benchmarks")."""
